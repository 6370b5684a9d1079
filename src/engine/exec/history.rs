//! `DESCRIBE HISTORY t`: one row per commit of a table, newest first, from the Delta log.

use std::sync::Arc;

use arrow::array::{BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};

use super::{Engine, EngineError, Outcome, Session};
use crate::catalog::CatalogError;
use crate::engine::Listing;
use crate::engine::sql::TableName;

impl Engine {
    pub(super) async fn describe_history(
        &self,
        session: &Session,
        table: TableName,
    ) -> Result<Outcome, EngineError> {
        let (_, handle) = self.named_table(session, &table).await?;
        let mut history = handle.log().history().await.map_err(CatalogError::from)?;
        history.reverse();
        let json = |value: Option<String>| value.unwrap_or_else(|| "{}".into());
        let infos: Vec<_> = history.iter().map(|(_, info)| info.as_ref()).collect();
        let batch = RecordBatch::try_new(
            Outcome::history_schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(
                    history.iter().map(|(commit, _)| commit.version),
                )),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    history.iter().map(|(commit, _)| commit.timestamp * 1000),
                )),
                Arc::new(StringArray::from_iter(
                    infos.iter().map(|i| i.and_then(|i| i.operation.clone())),
                )),
                Arc::new(StringArray::from_iter_values(infos.iter().map(|i| {
                    json(i.and_then(|i| i.operation_parameters.as_ref()).map(to_json))
                }))),
                Arc::new(Int64Array::from_iter(
                    infos.iter().map(|i| i.and_then(|i| i.read_version)),
                )),
                Arc::new(StringArray::from_iter(
                    infos
                        .iter()
                        .map(|i| i.and_then(|i| i.isolation_level.clone())),
                )),
                Arc::new(BooleanArray::from_iter(
                    infos.iter().map(|i| i.and_then(|i| i.is_blind_append)),
                )),
                Arc::new(StringArray::from_iter_values(infos.iter().map(|i| {
                    json(i.and_then(|i| i.operation_metrics.as_ref()).map(to_json))
                }))),
                Arc::new(StringArray::from_iter(
                    infos.iter().map(|i| i.and_then(|i| i.engine_info.clone())),
                )),
            ],
        )
        .map_err(|e| EngineError::DataFusion(e.into()))?;
        Ok(Outcome::Listing(Listing::Report, batch))
    }
}

/// A JSON object with its keys sorted, so the text is stable.
fn to_json(map: &std::collections::HashMap<String, serde_json::Value>) -> String {
    let sorted: std::collections::BTreeMap<_, _> = map.iter().collect();
    serde_json::to_string(&sorted).unwrap_or_default()
}
