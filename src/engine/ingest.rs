//! Bulk ingest: a stream of record batches appended to a table, creating or replacing it as
//! asked (Flight SQL's `CommandStatementIngest`, ADBC's `adbc_ingest`).
//!
//! The batches flow through the same INSERT plan SQL builds — columns matched by name, each
//! value cast to its column's type (a value that does not fit fails with the column's name),
//! keys and NOT NULL checked, Parquet files rolled at the target size — so an ingest holds a
//! few batches in memory at a time, whatever its size, and commits once at the end.

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray};
use arrow::compute::can_cast_types;
use arrow::datatypes::{
    DataType, Field, Fields, Schema, SchemaRef, TimeUnit, TimestampNanosecondType,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::{Column, DataFusionError, ScalarValue, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast, lit};
use datafusion::physical_plan::collect;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::sql::sqlparser::ast::Ident;
use futures::StreamExt;

use super::running::task_context;
use super::types::{list_of, map_of};
use super::{Engine, EngineError, Session, insert};
use crate::catalog::{CATALOG_NAME, CatalogError, Scope, StatementCatalog, column_type_name};

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
    /// A table this ingest created is dropped again when the rows fail to arrive or the ingest
    /// is stopped (`CANCEL QUERY`, the statement timeout), so a failed ingest leaves nothing
    /// behind.
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
        // Listed by sys.queries, admitted, timed and cancellable like a statement.
        let watch = self
            .watch(session, &format!("INGEST INTO {name}"))
            .admitted(self.admission.as_deref())
            .await?;
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
                let schema = stored_schema(&rows.schema())?;
                self.catalog
                    .create_table(&database, table, &schema, Vec::new())
                    .await?;
                created = true;
            }
            (true, _, IfExists::Fail) => return Err(CatalogError::TableExists(name).into()),
            (true, _, IfExists::Append | IfExists::Replace) => {}
        }
        let replace = exists && if_exists == IfExists::Replace;
        let result = watch
            .run(async {
                if replace {
                    self.replace(session, &database, table, rows).await
                } else {
                    self.append(session, &database, table, rows).await
                }
            })
            .await;
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
        let rows = exact_microseconds(rows);
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
        let counts = collect(physical, task_context(&state)?).await?;
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
/// type, or NULL when the rows do not have it. An incoming column the table does not have, or
/// one whose type cannot become the column's, is a schema mismatch, not something to drop or
/// fail on row by row.
fn matched_columns(rows: &Schema, table: &Schema, name: &str) -> Result<Vec<Expr>, EngineError> {
    for incoming in rows.fields() {
        let Ok(column) = table.field_with_name(incoming.name()) else {
            return Err(EngineError::SchemaMismatch(format!(
                "table '{name}' has no column '{}'",
                incoming.name()
            )));
        };
        if !can_cast_types(incoming.data_type(), column.data_type()) {
            return Err(EngineError::SchemaMismatch(format!(
                "column '{}' of table '{name}' is {}; the rows carry {}",
                incoming.name(),
                column_type_name(column),
                incoming.data_type()
            )));
        }
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
pub(in crate::engine) fn stored_schema(rows: &Schema) -> Result<Schema, EngineError> {
    let fields = rows
        .fields()
        .iter()
        .map(|field| {
            let stored = stored_type(field.data_type()).map_err(|reason| {
                EngineError::NotSupported(format!(
                    "ingesting column '{}' of type {}: {reason}",
                    field.name(),
                    field.data_type()
                ))
            })?;
            Ok(Field::new(field.name(), stored, field.is_nullable()))
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    Ok(Schema::new(fields))
}

/// `rows`, failing at the first nanosecond timestamp with a fraction of a microsecond, which a
/// Delta timestamp cannot hold; whole microseconds convert without loss.
fn exact_microseconds(rows: SendableRecordBatchStream) -> SendableRecordBatchStream {
    let schema = rows.schema();
    let checked = rows.map(|batch| {
        let batch = batch?;
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            if !matches!(
                field.data_type(),
                DataType::Timestamp(TimeUnit::Nanosecond, _)
            ) {
                continue;
            }
            let nanos = column.as_primitive::<TimestampNanosecondType>();
            if let Some(row) =
                (0..nanos.len()).find(|&i| nanos.is_valid(i) && nanos.value(i) % 1000 != 0)
            {
                let shown = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default())?
                    .value(row)
                    .to_string();
                return Err(DataFusionError::Execution(format!(
                    "value {shown} of column '{}' has a fraction of a microsecond; Delta \
                     timestamps hold microseconds (round the column first)",
                    field.name()
                )));
            }
        }
        Ok(batch)
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, checked))
}

/// The column type that stores values of Arrow type `incoming` without loss, or why there is
/// none. Timestamps of any unit are stored in microseconds, Delta's unit (nanoseconds only
/// when no value has a fraction of a microsecond: see [`exact_microseconds`]); lists, structs
/// and maps nest the stored types of their parts.
fn stored_type(incoming: &DataType) -> Result<DataType, String> {
    use DataType::*;
    Ok(match incoming {
        Boolean | Int8 | Int16 | Int32 | Int64 | Float32 | Float64 | Date32 | Binary | Utf8 => {
            incoming.clone()
        }
        UInt8 => Int16,
        UInt16 => Int32,
        UInt32 => Int64,
        UInt64 => Decimal128(20, 0),
        Float16 => Float32,
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) if *s < 0 => {
            return Err(format!(
                "a negative scale has no Delta decimal (scale 0 to 38); cast it to DECIMAL({}, 0)",
                (i16::from(*p) - i16::from(*s)).min(38)
            ));
        }
        Decimal128(..) => incoming.clone(),
        Decimal32(p, s) | Decimal64(p, s) => Decimal128(*p, *s),
        Decimal256(..) => return Err("Delta decimals have at most 38 digits".into()),
        Date64 => Date32,
        LargeUtf8 | Utf8View => Utf8,
        LargeBinary | BinaryView | FixedSizeBinary(_) => Binary,
        Timestamp(_, None) => Timestamp(TimeUnit::Microsecond, None),
        Timestamp(_, Some(_)) => Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Time32(_) | Time64(_) => {
            return Err("Delta has no time-of-day type; send it as a string or a timestamp".into());
        }
        Dictionary(_, values) => stored_type(values)?,
        List(element)
        | LargeList(element)
        | FixedSizeList(element, _)
        | ListView(element)
        | LargeListView(element) => list_of(stored_type(element.data_type())?),
        Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| Ok(Field::new(f.name(), stored_type(f.data_type())?, true)))
                .collect::<Result<Fields, String>>()?,
        ),
        Map(entries, _) => match entries.data_type() {
            Struct(kv) if kv.len() == 2 => map_of(
                stored_type(kv[0].data_type())?,
                stored_type(kv[1].data_type())?,
            ),
            other => return Err(format!("map entries of type {other}")),
        },
        _ => return Err("no Delta type holds it".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_types_map_to_stored_types_or_are_refused() {
        assert_eq!(stored_type(&DataType::Utf8View), Ok(DataType::Utf8));
        assert_eq!(stored_type(&DataType::UInt32), Ok(DataType::Int64));
        assert_eq!(
            stored_type(&DataType::Timestamp(
                TimeUnit::Nanosecond,
                Some("+02:00".into())
            )),
            Ok(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into())
            ))
        );
        assert_eq!(
            stored_type(&DataType::Dictionary(
                Box::new(DataType::Int32),
                Box::new(DataType::LargeUtf8)
            )),
            Ok(DataType::Utf8)
        );
        assert!(stored_type(&DataType::Time64(TimeUnit::Microsecond)).is_err());
        assert!(
            stored_type(&DataType::Decimal128(5, -2))
                .unwrap_err()
                .contains("DECIMAL(7, 0)")
        );
        let tags = DataType::LargeList(Arc::new(Field::new("item", DataType::Utf8View, true)));
        assert_eq!(stored_type(&tags), Ok(list_of(DataType::Utf8)));
    }
}
