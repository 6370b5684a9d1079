//! Reading data files of a table with column mapping: DataFusion's Parquet scan finds a file's
//! columns by name, and under column mapping the files name them by their physical names.
//!
//! [`ColumnMappingAdapterFactory`] rewrites, per file, the scan's projection and predicate from
//! the table's columns to the file's: it shows DataFusion's own adapter the file's columns under
//! their display names (so missing columns become NULLs and narrower types are cast as before),
//! then names the resolved columns as the file does, which the Parquet reader goes by. A file
//! column no current column maps to (a dropped column) is hidden, even when a later column took
//! its display name.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::Result;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr_adapter::{
    DefaultPhysicalExprAdapterFactory, PhysicalExprAdapter, PhysicalExprAdapterFactory,
};

use crate::txlog::physical_name;

/// Prefix of the name a file column takes when no table column maps to it.
const UNMAPPED: &str = "\u{0}unmapped:";

/// Resolves a table's columns in its data files by their physical names.
#[derive(Debug)]
pub struct ColumnMappingAdapterFactory;

impl PhysicalExprAdapterFactory for ColumnMappingAdapterFactory {
    fn create(
        &self,
        logical_file_schema: SchemaRef,
        physical_file_schema: SchemaRef,
    ) -> Result<Arc<dyn PhysicalExprAdapter>> {
        let shown = Arc::new(displayed(&logical_file_schema, &physical_file_schema));
        let inner =
            DefaultPhysicalExprAdapterFactory.create(logical_file_schema, Arc::clone(&shown))?;
        Ok(Arc::new(ColumnMappingAdapter {
            inner,
            shown,
            physical: physical_file_schema,
        }))
    }
}

/// The file's columns under the display names of the table columns they hold.
fn displayed(logical: &Schema, physical: &Schema) -> Schema {
    let fields: Vec<Field> = physical
        .fields()
        .iter()
        .map(|file_field| {
            let owner = logical
                .fields()
                .iter()
                .find(|f| physical_name(f) == file_field.name());
            match owner {
                Some(owner) => Field::new(
                    owner.name(),
                    file_field.data_type().clone(),
                    file_field.is_nullable(),
                )
                .with_metadata(owner.metadata().clone()),
                None if logical.field_with_name(file_field.name()).is_ok() => file_field
                    .as_ref()
                    .clone()
                    .with_name(format!("{UNMAPPED}{}", file_field.name())),
                None => file_field.as_ref().clone(),
            }
        })
        .collect();
    Schema::new(fields)
}

#[derive(Debug)]
struct ColumnMappingAdapter {
    inner: Arc<dyn PhysicalExprAdapter>,
    /// The file's columns under display names, as `inner` resolves them.
    shown: SchemaRef,
    /// The file's columns as the file names them.
    physical: SchemaRef,
}

impl PhysicalExprAdapter for ColumnMappingAdapter {
    fn rewrite(&self, expr: Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
        let resolved = self.inner.rewrite(expr)?;
        resolved
            .transform(|node| {
                let Some(column) = node.downcast_ref::<Column>() else {
                    return Ok(Transformed::no(node));
                };
                let index = column.index();
                let shown = self.shown.fields().get(index);
                match (shown, self.physical.fields().get(index)) {
                    (Some(shown), Some(file)) if shown.name() == column.name() => Ok(
                        Transformed::yes(Arc::new(Column::new(file.name(), index)) as _),
                    ),
                    _ => Ok(Transformed::no(node)),
                }
            })
            .data()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::datatypes::DataType;
    use datafusion::physical_expr::expressions::{CastExpr, Literal};

    use super::*;
    use crate::txlog::PHYSICAL_NAME;

    fn mapped(name: &str, physical: &str, data_type: DataType) -> Field {
        Field::new(name, data_type, true).with_metadata(HashMap::from([(
            PHYSICAL_NAME.to_string(),
            physical.to_string(),
        )]))
    }

    fn rewrite(adapter: &Arc<dyn PhysicalExprAdapter>, column: &str, index: usize) -> String {
        let expr = Arc::new(Column::new(column, index)) as Arc<dyn PhysicalExpr>;
        let rewritten = adapter.rewrite(expr).unwrap();
        if let Some(column) = rewritten.downcast_ref::<Column>() {
            return format!("{}@{}", column.name(), column.index());
        }
        if let Some(cast) = rewritten.downcast_ref::<CastExpr>() {
            let inner = cast.expr().downcast_ref::<Column>().unwrap();
            return format!("cast {}@{}", inner.name(), inner.index());
        }
        match rewritten.downcast_ref::<Literal>() {
            Some(literal) => format!("literal {}", literal.value()),
            None => format!("{rewritten}"),
        }
    }

    /// A renamed column reads its file column; a column added after the file was written reads
    /// NULL even when a dropped column of its name is in the file; a widened one is cast.
    #[test]
    fn table_columns_resolve_by_physical_name() {
        let table = Arc::new(Schema::new(vec![
            mapped("label", "name", DataType::Utf8),
            mapped("name", "col-new", DataType::Utf8),
            mapped("n", "n", DataType::Int64),
        ]));
        let file = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int32, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let adapter = ColumnMappingAdapterFactory
            .create(Arc::clone(&table), file)
            .unwrap();
        assert_eq!(rewrite(&adapter, "label", 0), "name@1");
        assert_eq!(rewrite(&adapter, "name", 1), "literal NULL");
        assert_eq!(rewrite(&adapter, "n", 2), "cast n@0");
    }
}
