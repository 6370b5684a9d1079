//! Bulk ingest: a stream of record batches appended to a table, creating or replacing it as
//! asked (Flight SQL's `CommandStatementIngest`, ADBC's `adbc_ingest`).
//!
//! The batches flow through the same INSERT plan SQL builds — columns matched by name, each
//! value cast to its column's type (a value that does not fit fails with the column's name),
//! keys and NOT NULL checked, Parquet files rolled at the target size — so an ingest holds a
//! few batches in memory at a time, whatever its size, and commits once at the end.

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::{Column, ScalarValue, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast, lit};
use datafusion::physical_plan::collect;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::sql::sqlparser::ast::Ident;

use super::{Engine, EngineError, Session, insert};
use crate::catalog::{CATALOG_NAME, CatalogError, Scope, StatementCatalog};

/// What to do when the table does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    Create,
    Fail,
}

/// What to do when the table exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfExists {
    Fail,
    Append,
    /// Delete every row, then append; one commit.
    Replace,
}

/// A stream that can be executed once, as the source of an ingest's INSERT plan.
struct OneShot {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl fmt::Debug for OneShot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneShot")
            .field("schema", &self.schema)
            .finish()
    }
}

impl PartitionStream for OneShot {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _context: Arc<TaskContext>) -> SendableRecordBatchStream {
        self.stream
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("an ingest plan executes its source once")
    }
}

impl Engine {
    /// Appends `rows` to `database.table` in `session`, creating or replacing the table as
    /// `if_missing`/`if_exists` say; returns the number of rows written.
    ///
    /// A table this ingest created is dropped again when the rows fail to arrive, so a failed
    /// ingest leaves nothing behind.
    pub async fn ingest(
        &self,
        session: &mut Session,
        database: Option<String>,
        table: &str,
        (if_missing, if_exists): (IfMissing, IfExists),
        rows: SendableRecordBatchStream,
    ) -> Result<u64, EngineError> {
        let database = session.database_or_current(database);
        let name = format!("{database}.{table}");
        let exists = match self.catalog.table(&database, table).await {
            Ok(_) => true,
            Err(CatalogError::TableNotFound(_)) => false,
            Err(e) => return Err(e.into()),
        };
        let mut created = false;
        match (exists, if_missing, if_exists) {
            (false, IfMissing::Fail, _) => {
                return Err(CatalogError::TableNotFound(name).into());
            }
            (false, IfMissing::Create, _) => {
                if session.transaction().is_some() {
                    return Err(EngineError::NotSupported(
                        "creating a table inside a transaction; ingest in append mode".into(),
                    ));
                }
                let schema = table_schema(&rows.schema())?;
                self.catalog
                    .create_table(&database, table, &schema, Vec::new())
                    .await?;
                created = true;
            }
            (true, _, IfExists::Fail) => return Err(CatalogError::TableExists(name).into()),
            (true, _, IfExists::Append | IfExists::Replace) => {}
        }
        let replace = exists && if_exists == IfExists::Replace;
        let result = if replace {
            self.replace(session, &database, table, rows).await
        } else {
            self.append(session, &database, table, rows).await
        };
        if result.is_err() && created {
            let _ = self.catalog.drop_table(&database, table).await;
        }
        result
    }

    /// Deletes every row and appends `rows`, atomically: inside the session's transaction or
    /// one of its own.
    async fn replace(
        &self,
        session: &mut Session,
        database: &str,
        table: &str,
        rows: SendableRecordBatchStream,
    ) -> Result<u64, EngineError> {
        let own = session.transaction().is_none();
        if own {
            session.begin(self.begin());
        }
        let delete = format!(
            "DELETE FROM {}.{}",
            Ident::with_quote('"', database),
            Ident::with_quote('"', table)
        );
        let result = match self.execute(session, &delete).await {
            Ok(_) => self.append(session, database, table, rows).await,
            Err(e) => Err(e),
        };
        if own && let Some(transaction) = session.end_transaction() {
            let rows = result?;
            self.commit(&transaction).await?;
            return Ok(rows);
        }
        result
    }

    /// Runs `INSERT INTO database.table SELECT <rows, matched by name>`.
    async fn append(
        &self,
        session: &Session,
        database: &str,
        table: &str,
        rows: SendableRecordBatchStream,
    ) -> Result<u64, EngineError> {
        let view = StatementCatalog::load(
            Arc::clone(&self.catalog),
            Scope::Databases([database.to_string()].into()),
            session.transaction().cloned(),
        )
        .await?;
        let state = self.statement_state(session, view);
        let reference = TableReference::full(CATALOG_NAME, database, table);
        let target = state
            .schema_for_ref(reference.clone())?
            .table(table)
            .await?
            .ok_or_else(|| CatalogError::TableNotFound(format!("{database}.{table}")))?;
        let source_schema = rows.schema();
        let columns = matched_columns(&source_schema, &target.schema(), table)?;
        let source = OneShot {
            schema: Arc::clone(&source_schema),
            stream: Mutex::new(Some(rows)),
        };
        let source = StreamingTable::try_new(source_schema, vec![Arc::new(source)])?;
        let plan = LogicalPlanBuilder::scan("ingest", provider_as_source(Arc::new(source)), None)?
            .project(columns)?
            .build()?;
        let plan = LogicalPlanBuilder::insert_into(
            plan,
            reference,
            provider_as_source(target),
            InsertOp::Append,
        )?
        .build()?;
        let plan = insert::name_bad_values(plan)?;
        let physical = state.create_physical_plan(&plan).await?;
        let counts = collect(physical, state.task_ctx()).await?;
        Ok(counts
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::UInt64Array>()
                    .map(|c| c.value(0))
            })
            .unwrap_or(0))
    }
}

/// One expression per table column: the incoming column of the same name cast to the column's
/// type, or NULL when the rows do not have it. An incoming column the table does not have is an
/// error, not something to drop silently.
fn matched_columns(rows: &Schema, table: &Schema, name: &str) -> Result<Vec<Expr>, EngineError> {
    if let Some(extra) = rows
        .fields()
        .iter()
        .find(|f| table.field_with_name(f.name()).is_err())
    {
        return Err(EngineError::InvalidInput(format!(
            "table '{name}' has no column '{}'",
            extra.name()
        )));
    }
    Ok(table
        .fields()
        .iter()
        .map(|field| {
            let value = match rows.field_with_name(field.name()) {
                Ok(_) => Expr::Column(Column::new_unqualified(field.name())),
                Err(_) => lit(ScalarValue::Null),
            };
            cast(value, field.data_type().clone()).alias(field.name())
        })
        .collect())
}

/// The table a stream of `rows` creates: each column in the nearest type MiniDB stores.
fn table_schema(rows: &Schema) -> Result<Schema, EngineError> {
    let fields = rows
        .fields()
        .iter()
        .map(|field| {
            let stored = stored_type(field.data_type()).ok_or_else(|| {
                EngineError::NotSupported(format!(
                    "ingesting column '{}' of type {}",
                    field.name(),
                    field.data_type()
                ))
            })?;
            Ok(Field::new(field.name(), stored, field.is_nullable()))
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    Ok(Schema::new(fields))
}

/// The column type that stores values of Arrow type `incoming` without loss.
fn stored_type(incoming: &DataType) -> Option<DataType> {
    use DataType::*;
    Some(match incoming {
        Boolean | Int8 | Int16 | Int32 | Int64 | Float32 | Float64 | Date32 | Binary | Utf8 => {
            incoming.clone()
        }
        UInt8 => Int16,
        UInt16 => Int32,
        UInt32 => Int64,
        UInt64 => Decimal128(20, 0),
        Float16 => Float32,
        Decimal128(..) => incoming.clone(),
        Decimal32(p, s) | Decimal64(p, s) => Decimal128(*p, *s),
        Date64 => Date32,
        LargeUtf8 | Utf8View => Utf8,
        LargeBinary | BinaryView | FixedSizeBinary(_) => Binary,
        Timestamp(_, None) => Timestamp(TimeUnit::Microsecond, None),
        Timestamp(_, Some(_)) => Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Dictionary(_, values) => stored_type(values)?,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_types_map_to_stored_types_or_are_refused() {
        assert_eq!(stored_type(&DataType::Utf8View), Some(DataType::Utf8));
        assert_eq!(stored_type(&DataType::UInt32), Some(DataType::Int64));
        assert_eq!(
            stored_type(&DataType::Timestamp(
                TimeUnit::Nanosecond,
                Some("+02:00".into())
            )),
            Some(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into())
            ))
        );
        assert_eq!(
            stored_type(&DataType::Dictionary(
                Box::new(DataType::Int32),
                Box::new(DataType::LargeUtf8)
            )),
            Some(DataType::Utf8)
        );
        assert_eq!(stored_type(&DataType::Time64(TimeUnit::Microsecond)), None);
    }
}
