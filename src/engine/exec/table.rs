//! `CREATE TABLE` (its columns, keys, defaults, partitioning and TBLPROPERTIES; `LIKE` another
//! table; `AS SELECT`), `ALTER TABLE`,
//! `DROP TABLE` and `DESCRIBE`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{Field, Schema};
use datafusion::common::{DFSchema, DataFusionError};
use datafusion::physical_plan::collect;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{self, ColumnOption};
use datafusion::sql::sqlparser::dialect::GenericDialect;

use super::declaration::declared;
use super::foreign_key::DeclaredForeignKey;
use super::{Engine, EngineError, Outcome, Session, drop_outcome};
use crate::catalog::{
    AsOf, CatalogError, check_writable, column_type_name, new_table, split_as_of,
};
use crate::engine::Listing;
use crate::engine::ingest::stored_schema;
use crate::engine::insert;
use crate::engine::running::task_context;
use crate::engine::sql::{TableName, normalize, output_name, table_name};
use crate::engine::types::column_field;
use crate::table::clone;
use crate::table::evolution::{
    ColumnChange, NewColumn, add_columns, change_column, drop_columns, rename_column, widens,
};
use crate::table::foreign_keys::{foreign_keys, without_foreign_keys};
use crate::table::partitioning::{PARTITIONING_PROPERTY, Partitioner, Partitioning};
use crate::table::{
    DEFAULTS_PROPERTY, DeltaTableProvider, INDEXES_PROPERTY, IndexDef, PRIMARY_KEY_PROPERTY,
    PendingCommit, UNIQUE_PROPERTY, properties, set_properties,
};
use crate::txlog::{Action, Add, Operation, STATISTICS_PROPERTY};

/// A declared table: its columns, its table properties (keys, indexes, defaults) and its foreign
/// keys, not resolved yet.
type Declared = (Schema, Vec<(String, String)>, Vec<DeclaredForeignKey>);

impl Engine {
    /// `CREATE TABLE` with its columns declared, `… LIKE other`, or `… AS SELECT`.
    pub(super) async fn create_table(
        &self,
        session: &Session,
        create: &ast::CreateTable,
        partitioning: Option<Partitioning>,
    ) -> Result<Outcome, EngineError> {
        if let Some(expr) = &create.partition_by {
            return Err(EngineError::InvalidInput(format!(
                "PARTITION BY {expr}: expected PARTITION BY HASH (column) or PARTITION BY RANGE (column)"
            )));
        }
        if let Some(source) = &create.clone {
            return Err(EngineError::NotSupported(format!(
                "CREATE TABLE … CLONE {source}"
            )));
        }
        let name = table_name(&create.name)?;
        let database = session.database_or_current(name.database.clone());
        let (schema, properties, declared_keys) = match (&create.like, &create.query) {
            (Some(like), None) if create.columns.is_empty() && partitioning.is_none() => {
                let like = match like {
                    ast::CreateTableLikeKind::Parenthesized(like)
                    | ast::CreateTableLikeKind::Plain(like) => like,
                };
                let (schema, properties) = self.like_definition(session, &like.name).await?;
                (schema, properties, Vec::new())
            }
            (Some(_), _) => {
                return Err(EngineError::InvalidInput(
                    "CREATE TABLE … LIKE takes everything from the other table: no columns, \
                     PARTITION BY or AS SELECT of its own"
                        .into(),
                ));
            }
            (None, Some(query)) if create.columns.is_empty() => {
                let schema = self.query_schema(session, query).await?;
                (schema, Vec::new(), Vec::new())
            }
            _ => self.declared_definition(create)?,
        };
        if !declared_keys.is_empty() && create.query.is_some() {
            return Err(EngineError::NotSupported(
                "FOREIGN KEY in CREATE TABLE … AS SELECT; declare the columns, then INSERT … SELECT"
                    .into(),
            ));
        }
        let mut properties: Vec<(String, String)> = properties;
        if let Some(partitioning) = partitioning {
            Partitioner::new(partitioning.clone(), &schema).map_err(EngineError::InvalidInput)?;
            let json = serde_json::to_value(&partitioning)
                .map_err(|e| EngineError::InvalidInput(format!("partitioning: {e}")))?;
            properties.push((PARTITIONING_PROPERTY.to_string(), json.to_string()));
        }
        properties.extend(table_properties(&create.table_options)?);
        let Some(query) = &create.query else {
            if !declared_keys.is_empty() {
                return self
                    .create_child_table(
                        session,
                        create,
                        &database,
                        &schema,
                        properties,
                        declared_keys,
                    )
                    .await;
            }
            return match self
                .catalog
                .create_table(&database, &name.table, &schema, properties)
                .await
            {
                Ok(_) => Ok(Outcome::TableCreated(name.table)),
                Err(CatalogError::TableExists(t)) if create.if_not_exists => {
                    Ok(Outcome::NothingToDo(format!("Table {t} already exists")))
                }
                Err(e) => Err(e.into()),
            };
        };
        if session.transaction().is_some() {
            return Err(EngineError::NotSupported(
                "CREATE TABLE … AS SELECT inside a transaction".into(),
            ));
        }
        if let Some(exists) = self
            .existing_table(&database, &name.table, create.if_not_exists)
            .await?
        {
            return Ok(exists);
        }
        self.create_table_as(session, &database, &name.table, &schema, properties, query)
            .await
    }

    /// What a CREATE TABLE that writes files before its table exists says when the table exists
    /// already: nothing to do with `IF NOT EXISTS`, else the error; `None` when it does not.
    async fn existing_table(
        &self,
        database: &str,
        table: &str,
        if_not_exists: bool,
    ) -> Result<Option<Outcome>, EngineError> {
        match self.catalog.table(database, table).await {
            Ok(_) if if_not_exists => Ok(Some(Outcome::NothingToDo(format!(
                "Table {database}.{table} already exists"
            )))),
            Ok(_) => Err(CatalogError::TableExists(format!("{database}.{table}")).into()),
            Err(CatalogError::TableNotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// `CREATE TABLE … AS query` in one commit: the query's rows are written as the files of a
    /// table that does not exist yet, and the commit that creates it (protocol, metadata, the
    /// files) is the only one; until then nobody sees the table, and a statement that fails
    /// leaves none.
    async fn create_table_as(
        &self,
        session: &Session,
        database: &str,
        table: &str,
        schema: &Schema,
        properties: Vec<(String, String)>,
        query: &ast::Query,
    ) -> Result<Outcome, EngineError> {
        let mut actions = new_table(table, schema, properties)?;
        let handle = self
            .catalog
            .pending_table(database, table, actions.clone())?;
        let pending = Arc::new(PendingCommit::default());
        let insert = format!(
            "INSERT INTO {}.{} {query}",
            ast::Ident::with_quote('"', database),
            ast::Ident::with_quote('"', table)
        );
        let parsed = DFParser::parse_sql_with_dialect(&insert, &GenericDialect {})
            .map_err(|e| EngineError::InvalidInput(format!("syntax error: {e}")))?
            .pop_front()
            .ok_or_else(|| EngineError::InvalidInput("empty query".into()))?;
        let view = self.statement_catalog(session, &parsed).await?;
        let provider = DeltaTableProvider::new(
            format!("{database}.{table}"),
            Arc::clone(&handle),
            handle.cached(),
            view.store_url().clone(),
        )
        .with_column_defaults()?
        .committing_into(Arc::clone(&pending));
        view.pin(database, table, Arc::new(provider));
        let state = self.statement_state(session, view);
        let plan = insert::name_bad_values(state.statement_to_plan(parsed).await?)?;
        let physical = state.create_physical_plan(&plan).await?;
        let counts = collect(physical, task_context(&state)?).await?;
        let rows = counts
            .first()
            .and_then(|b| b.column(0).as_any().downcast_ref::<UInt64Array>())
            .map_or(0, |counts| counts.value(0));
        let adds: Vec<Add> = pending
            .take()
            .into_iter()
            .filter_map(|action| match action {
                Action::Add(add) => Some(add),
                _ => None,
            })
            .collect();
        let operation = Operation {
            name: "CREATE TABLE AS SELECT".into(),
            parameters: HashMap::from([("mode".into(), serde_json::json!("ErrorIfExists"))]),
            metrics: HashMap::from([
                ("numFiles".into(), serde_json::json!(adds.len())),
                ("numOutputRows".into(), serde_json::json!(rows)),
            ]),
            blind_append: false,
        };
        actions.extend(adds.iter().cloned().map(Action::Add));
        if let Err(e) = self
            .catalog
            .create_table_with(database, table, operation, actions)
            .await
        {
            // The files have names of their own (a new UUID each): nobody else's table uses them.
            clone::delete_files(handle.log(), &adds).await;
            return Err(e.into());
        }
        Ok(Outcome::TableCreatedAs {
            table: table.to_string(),
            rows,
        })
    }

    /// `CREATE TABLE t DEEP CLONE source [VERSION AS OF n | TIMESTAMP AS OF …]`: a new table
    /// holding copies of the files of that version of `source` (the newest by default), with
    /// its definition; the source's history stays behind.
    pub(super) async fn clone_table(
        &self,
        session: &Session,
        name: TableName,
        source: TableName,
        if_not_exists: bool,
        shallow: bool,
    ) -> Result<Outcome, EngineError> {
        let database = session.database_or_current(name.database.clone());
        check_writable(&database, &name.table)?;
        if let Some(exists) = self
            .existing_table(&database, &name.table, if_not_exists)
            .await?
        {
            return Ok(exists);
        }
        let (table, as_of) = match split_as_of(&source.table) {
            Some((table, as_of)) => (table.to_string(), Some(as_of)),
            None => (source.table.clone(), None),
        };
        let source = TableName {
            database: source.database,
            table,
        };
        let (source_database, handle) = self.named_table(session, &source).await?;
        let snapshot = match as_of {
            None => handle.refresh().await.map_err(CatalogError::from)?,
            Some(as_of) => {
                let version = match as_of {
                    AsOf::Version(version) => version,
                    AsOf::Timestamp(millis) => handle
                        .log()
                        .version_at(millis)
                        .await
                        .map_err(CatalogError::from)?,
                };
                Arc::new(
                    handle
                        .log()
                        .load_version(version)
                        .await
                        .map_err(CatalogError::from)?,
                )
            }
        };
        let source_name = format!("{source_database}.{}", source.table);
        let target = self.catalog.table_log(&database, &name.table);
        let adds = match shallow {
            true => clone::reference_files(handle.log(), &snapshot)?,
            false => clone::copy_files(handle.log(), &target, &snapshot).await?,
        };
        let mut metadata = snapshot.metadata().clone();
        without_foreign_keys(&mut metadata.configuration);
        metadata.id = uuid::Uuid::new_v4().to_string();
        metadata.name = Some(name.table.clone());
        metadata.created_time = Some(chrono::Utc::now().timestamp_millis());
        let mut actions = vec![
            Action::Protocol(snapshot.protocol().clone()),
            Action::Metadata(metadata),
        ];
        let bytes: i64 = adds.iter().map(|add| add.size).sum();
        let operation = Operation {
            name: "CLONE".into(),
            parameters: HashMap::from([
                ("source".into(), serde_json::json!(source_name)),
                (
                    "sourceVersion".into(),
                    serde_json::json!(snapshot.version()),
                ),
                ("isShallow".into(), serde_json::json!(shallow)),
            ]),
            metrics: HashMap::from([
                ("sourceNumOfFiles".into(), serde_json::json!(adds.len())),
                ("sourceTableSize".into(), serde_json::json!(bytes)),
                (
                    "numCopiedFiles".into(),
                    serde_json::json!(if shallow { 0 } else { adds.len() }),
                ),
                (
                    "copiedFilesSize".into(),
                    serde_json::json!(if shallow { 0 } else { bytes }),
                ),
            ]),
            blind_append: false,
        };
        actions.extend(adds.iter().cloned().map(Action::Add));
        match self
            .catalog
            .create_table_with(&database, &name.table, operation, actions)
            .await
        {
            Ok(_) => {}
            // Another statement created the table first, over the same file names: the files
            // are its table's now.
            Err(e @ (CatalogError::TableExists(_) | CatalogError::ViewExists(_))) => {
                return Err(e.into());
            }
            Err(e) => {
                if !shallow {
                    clone::delete_files(&target, &adds).await;
                }
                return Err(e.into());
            }
        }
        Ok(Outcome::TableCloned {
            table: name.table,
            source: source_name,
            version: snapshot.version(),
        })
    }

    /// The columns a `CREATE TABLE … AS SELECT` gets from its query: their names and the
    /// nearest types MiniDB stores, all nullable.
    async fn query_schema(
        &self,
        session: &Session,
        query: &ast::Query,
    ) -> Result<Schema, EngineError> {
        let statement =
            DFStatement::Statement(Box::new(ast::Statement::Query(Box::new(query.clone()))));
        let (plan, ..) = self.logical_plan(session, statement).await?;
        let mut fields: Vec<Field> = Vec::new();
        for field in plan.schema().fields() {
            let name = output_name(field.name());
            if fields.iter().any(|f| f.name().eq_ignore_ascii_case(name)) {
                return Err(EngineError::InvalidInput(format!(
                    "the query names column '{name}' twice; give one an alias"
                )));
            }
            fields.push(field.as_ref().clone().with_name(name));
        }
        let stored = stored_schema(&Schema::new(fields))?;
        let fields: Vec<Field> = stored
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        Ok(Schema::new(fields))
    }

    /// What `CREATE TABLE … LIKE source` copies: the columns with NOT NULL, and every table
    /// property — DEFAULTs, keys and indexes, partitioning, Delta properties — except the
    /// statistics of the source's rows and its foreign keys.
    async fn like_definition(
        &self,
        session: &Session,
        source: &ast::ObjectName,
    ) -> Result<(Schema, Vec<(String, String)>), EngineError> {
        let source = table_name(source)?;
        let (_, handle) = self.named_table(session, &source).await?;
        let snapshot = handle.cached();
        let mut configuration = snapshot.metadata().configuration.clone();
        without_foreign_keys(&mut configuration);
        let properties = configuration
            .into_iter()
            .filter(|(key, _)| {
                key.as_str() != STATISTICS_PROPERTY && !properties::is_schema_feature(key)
            })
            .filter_map(|(key, value)| Some((key, value?)))
            .collect();
        Ok((snapshot.schema().as_ref().clone(), properties))
    }

    /// The columns and keys of a `CREATE TABLE` that declares them, and its foreign keys (not
    /// resolved against their parent tables yet).
    fn declared_definition(&self, create: &ast::CreateTable) -> Result<Declared, EngineError> {
        let name = table_name(&create.name)?;
        let mut primary_key: Vec<String> = Vec::new();
        let mut unique: Vec<Vec<String>> = Vec::new();
        let mut references: Vec<DeclaredForeignKey> = Vec::new();
        for constraint in &create.constraints {
            match constraint {
                ast::TableConstraint::PrimaryKey(pk) if primary_key.is_empty() => {
                    primary_key = index_columns(&pk.columns, "PRIMARY KEY")?;
                }
                ast::TableConstraint::PrimaryKey(_) => {
                    return Err(EngineError::InvalidInput(
                        "a table has at most one PRIMARY KEY".into(),
                    ));
                }
                ast::TableConstraint::Unique(key) => {
                    unique.push(index_columns(&key.columns, "UNIQUE")?);
                }
                ast::TableConstraint::ForeignKey(key) => {
                    let columns = key.columns.iter().map(normalize).collect();
                    let name = key.name.as_ref().map(normalize);
                    references.push(DeclaredForeignKey::new(name, columns, key)?);
                }
                other => {
                    return Err(EngineError::NotSupported(format!(
                        "table constraint {other} (MiniDB enforces PRIMARY KEY, UNIQUE, FOREIGN KEY, NOT NULL and DEFAULT)"
                    )));
                }
            }
        }
        let mut defaults = serde_json::Map::new();
        if create.columns.is_empty() {
            return Err(EngineError::InvalidInput(
                "a table needs at least one column".into(),
            ));
        }
        let mut fields: Vec<Field> = Vec::with_capacity(create.columns.len());
        for column in &create.columns {
            let column_name = normalize(&column.name);
            if fields
                .iter()
                .any(|f| f.name().eq_ignore_ascii_case(&column_name))
            {
                return Err(EngineError::InvalidInput(format!(
                    "column '{column_name}' is declared twice"
                )));
            }
            let mut nullable = true;
            for option in &column.options {
                match &option.option {
                    ColumnOption::NotNull => nullable = false,
                    ColumnOption::PrimaryKey(_) if primary_key.is_empty() => {
                        primary_key.push(column_name.clone());
                    }
                    ColumnOption::PrimaryKey(_) => {
                        return Err(EngineError::InvalidInput(
                            "a table has at most one PRIMARY KEY".into(),
                        ));
                    }
                    ColumnOption::Null => nullable = true,
                    ColumnOption::Unique(_) => unique.push(vec![column_name.clone()]),
                    ColumnOption::Default(expr) => {
                        let text = self.default_text(&column_name, expr)?;
                        defaults.insert(column_name.clone(), text.into());
                    }
                    ColumnOption::ForeignKey(key) => {
                        let name = option.name.as_ref().map(normalize);
                        references.push(DeclaredForeignKey::new(
                            name,
                            vec![column_name.clone()],
                            key,
                        )?);
                    }
                    other => {
                        return Err(EngineError::NotSupported(format!(
                            "column option {other} on '{column_name}' (MiniDB enforces PRIMARY KEY, UNIQUE, FOREIGN KEY, NOT NULL and DEFAULT)"
                        )));
                    }
                }
            }
            fields.push(column_field(&column_name, &column.data_type, nullable)?);
        }
        for key in unique.iter().flatten() {
            if !fields.iter().any(|f| f.name() == key) {
                return Err(EngineError::InvalidInput(format!(
                    "UNIQUE column '{key}' is not a column of the table"
                )));
            }
        }
        for key in &primary_key {
            let Some(field) = fields.iter_mut().find(|f| f.name() == key) else {
                return Err(EngineError::InvalidInput(format!(
                    "PRIMARY KEY column '{key}' is not a column of the table"
                )));
            };
            // Key columns are NOT NULL, which the Delta schema itself records.
            *field = field.clone().with_nullable(false);
        }
        let schema = Schema::new(fields);
        let mut properties = Vec::new();
        // Every key gets an index, which answers "does this key exist?" for its checks.
        let mut indexes: Vec<IndexDef> = Vec::new();
        if !primary_key.is_empty() {
            properties.push((PRIMARY_KEY_PROPERTY, serde_json::json!(primary_key)));
            let key = primary_key.clone();
            indexes.push(IndexDef::for_constraint(&name.table, "PRIMARY KEY", key));
        }
        if !unique.is_empty() {
            properties.push((UNIQUE_PROPERTY, serde_json::json!(unique)));
        }
        for columns in &unique {
            if !indexes.iter().any(|i| &i.columns == columns) {
                let key = columns.clone();
                indexes.push(IndexDef::for_constraint(&name.table, "UNIQUE", key));
            }
        }
        if !indexes.is_empty() {
            let json = serde_json::to_value(&indexes)
                .map_err(|e| EngineError::InvalidInput(format!("index definitions: {e}")))?;
            properties.push((INDEXES_PROPERTY, json));
        }
        if !defaults.is_empty() {
            properties.push((DEFAULTS_PROPERTY, serde_json::Value::Object(defaults)));
        }
        let properties = properties
            .into_iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Ok((schema, properties, references))
    }

    /// The text of a column's DEFAULT, checked to be a constant expression.
    fn default_text(&self, column: &str, expr: &ast::Expr) -> Result<String, EngineError> {
        let text = expr.to_string();
        let parsed = self
            .state
            .create_logical_expr(&text, &DFSchema::empty())
            .map_err(|e| match e.find_root() {
                DataFusionError::SchemaError(..) => {
                    EngineError::InvalidInput(format!("DEFAULT of '{column}' cannot name columns"))
                }
                _ => EngineError::InvalidInput(format!(
                    "DEFAULT of '{column}' must be a constant expression: {}",
                    e.strip_backtrace()
                )),
            })?;
        if !parsed.column_refs().is_empty() {
            return Err(EngineError::InvalidInput(format!(
                "DEFAULT of '{column}' cannot name columns"
            )));
        }
        Ok(text)
    }

    /// `ALTER TABLE t SET TBLPROPERTIES ('key' = 'value', …)` and `ALTER TABLE t ADD [COLUMN]
    /// [IF NOT EXISTS] c TYPE [NULL | NOT NULL] [DEFAULT expr][, ADD …]`.
    pub(super) async fn alter_table(
        &self,
        session: &Session,
        alter: &ast::AlterTable,
    ) -> Result<Outcome, EngineError> {
        let name = table_name(&alter.name)?;
        match alter.operations.as_slice() {
            [ast::AlterTableOperation::SetTblProperties { table_properties }] => {
                let (_, handle) = self.named_table(session, &name).await?;
                let set = property_list(table_properties)?;
                let count = set.len();
                set_properties(&handle, set).await?;
                Ok(Outcome::TableAltered {
                    table: name.table,
                    change: format!("{count} propert{}", if count == 1 { "y" } else { "ies" }),
                })
            }
            operations
                if !operations.is_empty()
                    && operations
                        .iter()
                        .all(|o| matches!(o, ast::AlterTableOperation::AddColumn { .. })) =>
            {
                self.add_columns(session, name, operations).await
            }
            [ast::AlterTableOperation::AlterColumn { column_name, op }] => {
                self.alter_column(session, name, normalize(column_name), op)
                    .await
            }
            [
                ast::AlterTableOperation::RenameColumn {
                    old_column_name,
                    new_column_name,
                },
            ] => {
                let (database, handle) = self.named_table(session, &name).await?;
                let (old, new) = (normalize(old_column_name), normalize(new_column_name));
                let qualified = format!("{database}.{}", name.table);
                rename_column(&handle, &qualified, &old, &new).await?;
                Ok(Outcome::TableAltered {
                    table: name.table,
                    change: format!("column {old} renamed to {new}"),
                })
            }
            operations
                if !operations.is_empty()
                    && operations
                        .iter()
                        .all(|o| matches!(o, ast::AlterTableOperation::DropColumn { .. })) =>
            {
                self.drop_columns(session, name, operations).await
            }
            _ => Err(EngineError::NotSupported(format!(
                "{alter} (ALTER TABLE supports SET TBLPROPERTIES, ADD COLUMN, DROP COLUMN, \
                 RENAME COLUMN and ALTER COLUMN … TYPE, SET/DROP NOT NULL, SET/DROP DEFAULT)"
            ))),
        }
    }

    /// `ALTER TABLE t ALTER [COLUMN] c SET NOT NULL | DROP NOT NULL | SET DEFAULT expr | DROP
    /// DEFAULT`: one metadata commit. SET NOT NULL first checks, holding the writer's turn,
    /// that no row has a NULL there.
    async fn alter_column(
        &self,
        session: &Session,
        name: TableName,
        column: String,
        op: &ast::AlterColumnOperation,
    ) -> Result<Outcome, EngineError> {
        let change = match op {
            ast::AlterColumnOperation::SetNotNull => ColumnChange::Nullable(false),
            ast::AlterColumnOperation::DropNotNull => ColumnChange::Nullable(true),
            ast::AlterColumnOperation::SetDefault { value } => {
                ColumnChange::Default(Some(self.default_text(&column, value)?))
            }
            ast::AlterColumnOperation::DropDefault => ColumnChange::Default(None),
            ast::AlterColumnOperation::SetDataType {
                data_type,
                using: None,
                ..
            } => ColumnChange::Type(column_field(&column, data_type, true)?),
            other => {
                return Err(EngineError::NotSupported(format!(
                    "ALTER COLUMN … {other} (ALTER COLUMN changes a column's type, NOT NULL \
                     and DEFAULT)"
                )));
            }
        };
        let target = self.autocommit_target(session, &name).await?;
        let qualified = format!("{}.{}", target.database, target.table);
        if let (ColumnChange::Type(new), Ok(field)) =
            (&change, target.snapshot.schema().field_with_name(&column))
            && field.data_type() != new.data_type()
            && !widens(field.data_type(), new.data_type())
        {
            return Err(EngineError::InvalidInput(format!(
                "column '{column}' of {qualified} cannot change from {} to {}: a type changes \
                 only to a wider one (a smaller integer to a larger one, to DOUBLE or to a \
                 DECIMAL with room for its digits; REAL to DOUBLE; DECIMAL to more digits; DATE \
                 to TIMESTAMP)",
                column_type_name(field),
                column_type_name(new),
            )));
        }
        if change == ColumnChange::Nullable(false)
            && target.snapshot.schema().index_of(&column).is_ok()
        {
            let sql = format!(
                "SELECT count(*) FROM {}.{} WHERE {} IS NULL",
                ast::Ident::with_quote('"', &target.database),
                ast::Ident::with_quote('"', &target.table),
                ast::Ident::with_quote('"', &column)
            );
            let (plan, state, _) = self.plan_on_target(session, &target, &sql).await?;
            let physical = state.create_physical_plan(&plan).await?;
            let batches = collect(physical, task_context(&state)?).await?;
            let nulls = batches
                .first()
                .and_then(|b| b.column(0).as_any().downcast_ref::<Int64Array>())
                .map_or(0, |counts| counts.value(0));
            if nulls > 0 {
                return Err(EngineError::InvalidInput(format!(
                    "column '{column}' of {qualified} holds {nulls} NULL value(s), so it cannot be \
                     SET NOT NULL"
                )));
            }
        }
        let text = format!("{op}");
        change_column(
            &target.handle,
            &target.snapshot,
            &qualified,
            &column,
            change,
        )
        .await?;
        Ok(Outcome::TableAltered {
            table: name.table,
            change: format!("column {column}: {text}"),
        })
    }

    /// `ALTER TABLE t DROP [COLUMN] [IF EXISTS] c[, DROP …]`: one metadata commit.
    async fn drop_columns(
        &self,
        session: &Session,
        name: TableName,
        operations: &[ast::AlterTableOperation],
    ) -> Result<Outcome, EngineError> {
        let mut columns = Vec::new();
        for operation in operations {
            if let ast::AlterTableOperation::DropColumn {
                column_names,
                if_exists: when_present,
                drop_behavior,
                ..
            } = operation
            {
                if drop_behavior == &Some(ast::DropBehavior::Cascade) {
                    return Err(EngineError::NotSupported(
                        "DROP COLUMN … CASCADE (drop the indexes and keys that use the column \
                         first)"
                            .into(),
                    ));
                }
                columns.extend(column_names.iter().map(|c| (normalize(c), *when_present)));
            }
        }
        let (database, handle) = self.named_table(session, &name).await?;
        let qualified = format!("{database}.{}", name.table);
        let dropped = drop_columns(&handle, &qualified, &columns).await?;
        if dropped == 0 {
            return Ok(Outcome::NothingToDo(format!(
                "Table {qualified} has none of those columns"
            )));
        }
        Ok(Outcome::TableAltered {
            table: name.table,
            change: format!(
                "{dropped} column{} dropped",
                if dropped == 1 { "" } else { "s" }
            ),
        })
    }

    async fn add_columns(
        &self,
        session: &Session,
        name: TableName,
        operations: &[ast::AlterTableOperation],
    ) -> Result<Outcome, EngineError> {
        let (database, handle) = self.named_table(session, &name).await?;
        let mut columns = Vec::with_capacity(operations.len());
        for operation in operations {
            let ast::AlterTableOperation::AddColumn {
                if_not_exists,
                column_def,
                column_position,
                ..
            } = operation
            else {
                continue;
            };
            if column_position.is_some() {
                return Err(EngineError::NotSupported(
                    "ADD COLUMN … FIRST/AFTER (new columns go last)".into(),
                ));
            }
            let column = normalize(&column_def.name);
            let mut nullable = true;
            let mut default = None;
            for option in &column_def.options {
                match &option.option {
                    ColumnOption::NotNull => nullable = false,
                    ColumnOption::Null => nullable = true,
                    ColumnOption::Default(expr) => {
                        default = Some(self.default_text(&column, expr)?)
                    }
                    other => {
                        return Err(EngineError::NotSupported(format!(
                            "ADD COLUMN with {other} (a new column takes NOT NULL and DEFAULT; \
                             keys and indexes are declared with CREATE TABLE and CREATE INDEX)"
                        )));
                    }
                }
            }
            columns.push(NewColumn {
                field: column_field(&column, &column_def.data_type, nullable)?,
                default,
                if_not_exists: *if_not_exists,
            });
        }
        let qualified = format!("{database}.{}", name.table);
        let added = add_columns(&handle, &qualified, columns).await?;
        if added == 0 {
            return Ok(Outcome::NothingToDo(format!(
                "Table {qualified} has those columns already"
            )));
        }
        Ok(Outcome::TableAltered {
            table: name.table,
            change: format!("{added} column{} added", if added == 1 { "" } else { "s" }),
        })
    }

    pub(super) async fn describe(
        &self,
        session: &Session,
        name: TableName,
    ) -> Result<Outcome, EngineError> {
        let mut keys: HashMap<String, &str> = HashMap::new();
        let mut defaults: HashMap<String, String> = HashMap::new();
        let (database, schema) = match self.named_table(session, &name).await {
            Ok((database, handle)) => {
                let snapshot = handle.cached();
                let unique: Vec<Vec<String>> =
                    declared(&snapshot, UNIQUE_PROPERTY)?.unwrap_or_default();
                for key in unique {
                    if let [column] = key.as_slice() {
                        keys.insert(column.clone(), "UNI");
                    }
                }
                let primary_key: Vec<String> =
                    declared(&snapshot, PRIMARY_KEY_PROPERTY)?.unwrap_or_default();
                keys.extend(primary_key.into_iter().map(|column| (column, "PRI")));
                defaults = declared(&snapshot, DEFAULTS_PROPERTY)?.unwrap_or_default();
                (database, Arc::clone(snapshot.schema()))
            }
            Err(e) => {
                // A view's columns are those its query returns.
                let database = session.database_or_current(name.database.clone());
                match self.catalog.view(&database, &name.table).await {
                    Ok(Some(_)) => {
                        let schema = self.view_schema(&database, &name.table).await?;
                        (database, Arc::new(schema))
                    }
                    _ => return Err(e),
                }
            }
        };
        let fields = schema.fields();
        let batch = RecordBatch::try_new(
            Outcome::columns_schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    fields.iter().map(|f| f.name()),
                )),
                Arc::new(StringArray::from_iter_values(
                    fields.iter().map(|f| column_type_name(f)),
                )),
                Arc::new(StringArray::from_iter_values(
                    fields
                        .iter()
                        .map(|f| if f.is_nullable() { "YES" } else { "NO" }),
                )),
                Arc::new(StringArray::from_iter(
                    fields.iter().map(|f| keys.get(f.name()).copied()),
                )),
                Arc::new(StringArray::from_iter(
                    fields.iter().map(|f| defaults.get(f.name()).cloned()),
                )),
            ],
        )
        .map_err(|e| EngineError::DataFusion(e.into()))?;
        Ok(Outcome::Listing(
            Listing::Columns {
                table: format!("{database}.{}", name.table),
            },
            batch,
        ))
    }

    pub(super) async fn drop_tables(
        &self,
        session: &Session,
        names: Vec<TableName>,
        if_exists: bool,
    ) -> Result<Outcome, EngineError> {
        let mut dropped = Vec::new();
        let mut missing = Vec::new();
        let dropping: Vec<String> = names
            .iter()
            .map(|n| {
                format!(
                    "{}.{}",
                    session.database_or_current(n.database.clone()),
                    n.table
                )
            })
            .collect();
        for name in names {
            let database = session.database_or_current(name.database);
            // A parent stays locked from the check that no other table references it to its
            // drop, so no child can be created in between.
            let (keys, turn) = match self.catalog.table(&database, &name.table).await {
                Ok(handle) => {
                    let turn = handle.lock_for_write().await.map_err(CatalogError::from)?;
                    handle.refresh().await.map_err(CatalogError::from)?;
                    self.check_not_referenced(&database, &name.table, &dropping)
                        .await?;
                    (foreign_keys(&handle.cached())?, turn)
                }
                Err(_) => (Vec::new(), None),
            };
            let result = self.catalog.drop_table(&database, &name.table).await;
            drop(turn);
            match result {
                Ok(()) => {
                    self.unlist_dropped_child(&database, &name.table, &keys)
                        .await;
                    dropped.push(name.table)
                }
                Err(e) => match self.table_error(&database, &name.table, e).await {
                    EngineError::Catalog(CatalogError::TableNotFound(t)) if if_exists => {
                        missing.push(t)
                    }
                    e => return Err(e),
                },
            }
        }
        Ok(drop_outcome(
            "Table",
            dropped,
            missing,
            Outcome::TableDropped,
        ))
    }
}

/// The plain column names of a PRIMARY KEY or UNIQUE constraint.
fn index_columns(columns: &[ast::IndexColumn], kind: &str) -> Result<Vec<String>, EngineError> {
    columns
        .iter()
        .map(|column| match &column.column.expr {
            ast::Expr::Identifier(ident) => Ok(normalize(ident)),
            other => Err(EngineError::InvalidInput(format!(
                "{kind} lists columns, not expressions like {other}"
            ))),
        })
        .collect()
}

/// The `TBLPROPERTIES ('key' = 'value', …)` of a CREATE TABLE, checked.
fn table_properties(
    options: &ast::CreateTableOptions,
) -> Result<Vec<(String, String)>, EngineError> {
    match options {
        ast::CreateTableOptions::None => Ok(Vec::new()),
        ast::CreateTableOptions::TableProperties(options) => property_list(options),
        other => Err(EngineError::NotSupported(format!(
            "table options {other}; set table properties with TBLPROPERTIES ('key' = 'value', …)"
        ))),
    }
}

/// Key/value pairs of a property list, each checked with [`properties::check`].
fn property_list(options: &[ast::SqlOption]) -> Result<Vec<(String, String)>, EngineError> {
    options
        .iter()
        .map(|option| {
            let ast::SqlOption::KeyValue { key, value } = option else {
                return Err(EngineError::InvalidInput(format!(
                    "expected 'key' = 'value' in a property list, found {option}"
                )));
            };
            let value = match value {
                ast::Expr::Value(v) => match &v.value {
                    ast::Value::SingleQuotedString(s) | ast::Value::DoubleQuotedString(s) => {
                        s.clone()
                    }
                    ast::Value::Number(n, _) => n.clone(),
                    ast::Value::Boolean(b) => b.to_string(),
                    other => other.to_string(),
                },
                other => other.to_string(),
            };
            properties::check(&key.value, &value).map_err(EngineError::InvalidInput)?;
            Ok((key.value.clone(), value))
        })
        .collect()
}
