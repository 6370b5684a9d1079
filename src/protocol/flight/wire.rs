//! The Arrow types query results travel in over Flight.
//!
//! MiniDB's tables hold plain `Utf8`/`Binary` columns, but some SQL functions answer with
//! string views (`Utf8View`, `BinaryView`), which Flight SQL JDBC drivers before 19 cannot
//! read. With plain strings on (the default), views are sent as `Utf8`/`Binary`, nested ones
//! included; off, they go out as the engine produced them. Either way a column leaves without
//! the metadata that ties it to a table's data files (Delta column mapping, type history).

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use arrow::error::ArrowError;

use crate::engine::client_field;

/// Options of the Flight SQL service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlightOptions {
    /// Send string and binary views as plain `Utf8` and `Binary`.
    pub plain_strings: bool,
}

impl Default for FlightOptions {
    fn default() -> Self {
        Self {
            plain_strings: true,
        }
    }
}

impl FlightOptions {
    /// The schema clients receive for results of `schema`: without the metadata that ties a
    /// table's columns to its files, and with plain strings if asked for.
    pub fn wire_schema(&self, schema: &SchemaRef) -> SchemaRef {
        let views = self.plain_strings && schema.fields().iter().any(|f| has_view(f.data_type()));
        let fields: Vec<FieldRef> = schema
            .fields()
            .iter()
            .map(|f| match views {
                true => plain_field(f),
                false => Arc::clone(f),
            })
            .map(|f| match client_field(&f) {
                shown if shown == *f => f,
                shown => Arc::new(shown),
            })
            .collect();
        if fields
            .iter()
            .zip(schema.fields())
            .all(|(a, b)| Arc::ptr_eq(a, b))
        {
            return Arc::clone(schema);
        }
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
    }

    /// `batch` in `wire` types (a schema [`FlightOptions::wire_schema`] made for it).
    pub fn wire_batch(
        &self,
        batch: RecordBatch,
        wire: &SchemaRef,
    ) -> Result<RecordBatch, ArrowError> {
        if batch.schema_ref() == wire {
            return Ok(batch);
        }
        let columns = batch
            .columns()
            .iter()
            .zip(wire.fields())
            .map(|(column, field)| {
                if column.data_type() == field.data_type() {
                    Ok(Arc::clone(column))
                } else {
                    arrow::compute::cast(column, field.data_type())
                }
            })
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        RecordBatch::try_new(Arc::clone(wire), columns)
    }
}

fn has_view(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8View | DataType::BinaryView => true,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => has_view(f.data_type()),
        DataType::Struct(fields) => fields.iter().any(|f| has_view(f.data_type())),
        _ => false,
    }
}

fn plain_field(field: &FieldRef) -> FieldRef {
    if has_view(field.data_type()) {
        Arc::new(
            field
                .as_ref()
                .clone()
                .with_data_type(plain_type(field.data_type())),
        )
    } else {
        Arc::clone(field)
    }
}

fn plain_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) => DataType::List(plain_field(f)),
        DataType::LargeList(f) => DataType::LargeList(plain_field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(plain_field(f), *n),
        DataType::Map(f, sorted) => DataType::Map(plain_field(f), *sorted),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(plain_field).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::StringViewArray;
    use arrow::datatypes::Field;

    use super::*;

    #[test]
    fn views_go_out_plain_unless_asked_for() {
        let batch = RecordBatch::try_from_iter([(
            "s",
            Arc::new(StringViewArray::from(vec!["a", "bb"])) as ArrayRef,
        )])
        .unwrap();
        let plain = FlightOptions::default();
        let wire = plain.wire_schema(&batch.schema());
        assert_eq!(wire.field(0).data_type(), &DataType::Utf8);
        let sent = plain.wire_batch(batch.clone(), &wire).unwrap();
        assert_eq!(sent.column(0).data_type(), &DataType::Utf8);
        assert_eq!(sent.num_rows(), 2);

        let views = FlightOptions {
            plain_strings: false,
        };
        let wire = views.wire_schema(&batch.schema());
        assert_eq!(wire.field(0).data_type(), &DataType::Utf8View);
        assert_eq!(
            views
                .wire_batch(batch, &wire)
                .unwrap()
                .column(0)
                .data_type(),
            &DataType::Utf8View
        );
    }

    #[test]
    fn nested_views_are_plain_too() {
        let nested = DataType::List(Arc::new(Field::new("item", DataType::Utf8View, true)));
        let plain = plain_type(&nested);
        assert_eq!(
            plain,
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
        );
        assert!(!has_view(&plain));
    }
}
