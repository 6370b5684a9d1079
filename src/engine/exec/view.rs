//! `CREATE VIEW` and `DROP VIEW`, and telling a view from a table where only one will do.

use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast;

use super::{Engine, EngineError, Outcome, Session, drop_outcome};
use crate::catalog::{CatalogError, ViewDef};
use crate::engine::sql::{NAME_MARK, TableName, normalize, output_name, table_name};

impl Engine {
    /// Stores a view after planning its query in the view's database, so that a view that
    /// could not run is refused when created.
    pub(super) async fn create_view(
        &self,
        session: &Session,
        create: ast::CreateView,
    ) -> Result<Outcome, EngineError> {
        if create.materialized || create.temporary || create.or_alter || create.params.is_some() {
            return Err(EngineError::NotSupported(format!(
                "{} (MiniDB has plain views: CREATE [OR REPLACE] VIEW [IF NOT EXISTS] name [(columns)] AS query)",
                create.name
            )));
        }
        if !matches!(create.options, ast::CreateTableOptions::None) {
            return Err(EngineError::NotSupported("view options".into()));
        }
        let name = table_name(&create.name)?;
        let database = session.database_or_current(name.database);
        let mut columns: Vec<String> = create.columns.iter().map(|c| normalize(&c.name)).collect();
        let query = create.query.to_string();
        // Names in the query resolve from the view's database, when it is planned now and
        // whenever a statement reads the view.
        let in_view_database = Session::in_database(database.clone());
        let (plan, ..) = self
            .logical_plan(
                &in_view_database,
                DFStatement::Statement(Box::new(ast::Statement::Query(create.query))),
            )
            .await?;
        let returned = plan.schema().fields().len();
        if columns.is_empty()
            && plan
                .schema()
                .fields()
                .iter()
                .any(|f| f.name().contains(NAME_MARK))
        {
            // Columns the front end named apart: the view's columns take the names a client
            // sees, which must then differ.
            let names: Vec<String> = plan
                .schema()
                .fields()
                .iter()
                .map(|f| output_name(f.name()).to_string())
                .collect();
            if let Some(repeated) = names
                .iter()
                .enumerate()
                .find_map(|(i, n)| names[..i].contains(n).then_some(n))
            {
                return Err(EngineError::InvalidInput(format!(
                    "view {}: its query returns more than one column named {repeated}; alias them apart or name the view's columns (CREATE VIEW {} (c1, c2, …) AS …)",
                    name.table, name.table
                )));
            }
            columns = names;
        }
        if !columns.is_empty() && columns.len() != returned {
            return Err(EngineError::InvalidInput(format!(
                "view {} names {} columns but its query returns {returned}",
                name.table,
                columns.len()
            )));
        }
        let view = ViewDef {
            name: name.table.clone(),
            query,
            columns,
            created_time: chrono::Utc::now().timestamp_millis(),
        };
        if create.if_not_exists && self.catalog.view(&database, &name.table).await?.is_some() {
            return Ok(Outcome::NothingToDo(format!(
                "View {} already exists",
                name.table
            )));
        }
        match self
            .catalog
            .create_view(&database, &view, create.or_replace)
            .await
        {
            Ok(()) => Ok(Outcome::ViewCreated(name.table)),
            Err(CatalogError::ViewExists(v)) if create.if_not_exists => {
                Ok(Outcome::NothingToDo(format!("View {v} already exists")))
            }
            Err(CatalogError::TableExists(t)) => Err(CatalogError::WrongKind {
                name: t,
                is: "table",
                wanted: "view",
            }
            .into()),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn drop_views(
        &self,
        session: &Session,
        names: Vec<TableName>,
        if_exists: bool,
    ) -> Result<Outcome, EngineError> {
        let mut dropped = Vec::new();
        let mut missing = Vec::new();
        for name in names {
            let database = session.database_or_current(name.database);
            match self.catalog.drop_view(&database, &name.table).await {
                Ok(()) => dropped.push(name.table),
                Err(CatalogError::ViewNotFound(v)) => {
                    if self.catalog.table(&database, &name.table).await.is_ok() {
                        return Err(CatalogError::WrongKind {
                            name: v,
                            is: "table",
                            wanted: "view",
                        }
                        .into());
                    }
                    if !if_exists {
                        return Err(CatalogError::ViewNotFound(v).into());
                    }
                    missing.push(v);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(drop_outcome("View", dropped, missing, Outcome::ViewDropped))
    }

    /// `error`, from looking for the table `database.table`, as said to a statement that
    /// writes or drops tables: a view of that name is named as a view.
    pub(super) async fn table_error(
        &self,
        database: &str,
        table: &str,
        error: CatalogError,
    ) -> EngineError {
        if matches!(error, CatalogError::TableNotFound(_))
            && let Ok(Some(_)) = self.catalog.view(database, table).await
        {
            return CatalogError::WrongKind {
                name: format!("{database}.{table}"),
                is: "view",
                wanted: "table",
            }
            .into();
        }
        error.into()
    }
}
