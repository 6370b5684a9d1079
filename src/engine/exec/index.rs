//! `CREATE INDEX`, `DROP INDEX` and `SHOW INDEXES`.

use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::execution::object_store::ObjectStoreUrl;

use super::{Engine, EngineError, Outcome, Session};
use crate::catalog::CatalogError;
use crate::engine::Listing;
use crate::engine::running::task_context;
use crate::engine::sql::TableName;
use crate::table::{IndexDef, create_index, drop_index, table_indexes};

/// What every index is, for `SHOW INDEXES`: per data file, a sorted run whose Parquet footer
/// and row groups form a two-level B-tree.
const INDEX_TYPE: &str = "BTREE";

impl Engine {
    pub(super) async fn create_index(
        &self,
        session: &Session,
        name: String,
        table: TableName,
        columns: Vec<String>,
        unique: bool,
        if_not_exists: bool,
    ) -> Result<Outcome, EngineError> {
        let (_, handle) = self.named_table(session, &table).await?;
        let store_url = ObjectStoreUrl::parse(self.catalog.store().engine_url())?;
        let index = IndexDef::new(name.clone(), columns, unique);
        let created = create_index(
            &handle,
            &table.table,
            index,
            store_url,
            task_context(&self.state)?,
        )
        .await?;
        match (created, if_not_exists) {
            (true, _) => Ok(Outcome::IndexCreated(name)),
            (false, true) => Ok(Outcome::NothingToDo(format!("Index {name} already exists"))),
            (false, false) => Err(EngineError::InvalidInput(format!(
                "index {name} already exists on {}",
                table.table
            ))),
        }
    }

    pub(super) async fn drop_index(
        &self,
        session: &Session,
        name: String,
        table: Option<TableName>,
        if_exists: bool,
    ) -> Result<Outcome, EngineError> {
        let (database, table) = match table {
            Some(table) => (
                session.database_or_current(table.database),
                Some(table.table),
            ),
            None => (session.database().to_string(), None),
        };
        let table = match table {
            Some(table) => Some(table),
            None => self.table_with_index(&database, &name).await?,
        };
        let dropped = match &table {
            Some(table) => {
                let handle = self.catalog.table(&database, table).await?;
                drop_index(&handle, table, &name).await?
            }
            None => false,
        };
        match (dropped, if_exists) {
            (true, _) => Ok(Outcome::IndexDropped(name)),
            (false, true) => Ok(Outcome::NothingToDo(format!("Index {name} does not exist"))),
            (false, false) => Err(EngineError::InvalidInput(match table {
                Some(table) => format!("index {name} does not exist on {table}"),
                None => format!("index {name} does not exist in database {database}"),
            })),
        }
    }

    /// The table of `database` that has an index called `name`; an error when several do.
    async fn table_with_index(
        &self,
        database: &str,
        name: &str,
    ) -> Result<Option<String>, EngineError> {
        let mut found = Vec::new();
        for table in self.catalog.tables(database).await? {
            let handle = self.catalog.table(database, &table).await?;
            let snapshot = handle.refresh().await.map_err(CatalogError::from)?;
            let indexes = table_indexes(&snapshot).map_err(CatalogError::from)?;
            if indexes.iter().any(|i| i.name == name) {
                found.push(table);
            }
        }
        if found.len() > 1 {
            return Err(EngineError::InvalidInput(format!(
                "tables {} all have an index {name}; say which with DROP INDEX {name} ON table",
                found.join(", ")
            )));
        }
        Ok(found.pop())
    }

    pub(super) async fn show_indexes(
        &self,
        session: &Session,
        table: TableName,
    ) -> Result<Outcome, EngineError> {
        let (database, handle) = self.named_table(session, &table).await?;
        let snapshot = handle.refresh().await.map_err(CatalogError::from)?;
        let indexes = table_indexes(&snapshot).map_err(CatalogError::from)?;
        let entries: Vec<(&IndexDef, usize, &String)> = indexes
            .iter()
            .flat_map(|index| {
                index
                    .columns
                    .iter()
                    .enumerate()
                    .map(move |(i, column)| (index, i + 1, column))
            })
            .collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("index_name", DataType::Utf8, false),
            Field::new("column_name", DataType::Utf8, false),
            Field::new("seq_in_index", DataType::UInt32, false),
            Field::new("is_unique", DataType::Boolean, false),
            Field::new("index_type", DataType::Utf8, false),
            Field::new("constraint_type", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(
                    entries.iter().map(|(index, _, _)| &index.name),
                )),
                Arc::new(StringArray::from_iter_values(
                    entries.iter().map(|(_, _, column)| column),
                )),
                Arc::new(UInt32Array::from_iter_values(
                    entries.iter().map(|(_, seq, _)| *seq as u32),
                )),
                Arc::new(BooleanArray::from_iter(
                    entries.iter().map(|(index, _, _)| Some(index.unique)),
                )),
                Arc::new(StringArray::from_iter_values(
                    entries.iter().map(|_| INDEX_TYPE),
                )),
                Arc::new(StringArray::from_iter(
                    entries
                        .iter()
                        .map(|(index, _, _)| index.constraint.as_deref()),
                )),
            ],
        )
        .map_err(|e| EngineError::DataFusion(e.into()))?;
        Ok(Outcome::Listing(
            Listing::Indexes {
                table: format!("{database}.{}", table.table),
            },
            batch,
        ))
    }
}
