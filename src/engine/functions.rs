//! SQL functions MiniDB answers itself instead of DataFusion.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

/// The functions that replace DataFusion's of the same name.
pub(super) fn replacements() -> Vec<Arc<ScalarUDF>> {
    vec![Arc::new(ScalarUDF::from(Version {
        signature: Signature::nullary(Volatility::Immutable),
        engines: datafusion::functions::core::version(),
    }))]
}

/// The text of `version()`: MiniDB's version, then its engine's and the platform.
pub fn version_text() -> String {
    format!(
        "MiniDB {} (Apache DataFusion {}, {} on {})",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION,
        std::env::consts::ARCH,
        std::env::consts::OS,
    )
}

/// `version()`, naming MiniDB first (DataFusion's names only itself).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Version {
    signature: Signature,
    /// DataFusion's own, for its documentation.
    engines: Arc<ScalarUDF>,
}

impl ScalarUDFImpl for Version {
    fn name(&self) -> &str {
        "version"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            version_text(),
        ))))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.engines.documentation()
    }
}
