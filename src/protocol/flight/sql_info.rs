//! The answer to `GetSqlInfo`: what MiniDB's SQL and Flight SQL service support.
//!
//! JDBC reads every key at connect and caches them; before driver 19 a key it knows but does
//! not get makes `DatabaseMetaData` calls throw, and it casts each value to a fixed Java type.
//! So every key the protocol defines is answered (a unit test holds the list complete), each
//! with the union member JDBC casts to: strings, booleans, `i32` bitmasks and enums, `i64`
//! limits (0 = no limit or unknown) and `SQL_DEFAULT_TRANSACTION_ISOLATION`, string lists, and
//! the int-to-int-list map of `SQL_SUPPORTS_CONVERT`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{
    SqlInfo, SqlNullOrdering, SqlOuterJoinsSupportLevel, SqlSupportedCaseSensitivity,
    SqlSupportedGroupBy, SqlSupportedResultSetConcurrency, SqlSupportedResultSetType,
    SqlSupportedSubqueries, SqlSupportedTransaction, SqlSupportedUnions, SqlSupportsConvert,
    SqlTransactionIsolationLevel, SupportedSqlGrammar,
};
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;

use crate::engine::Engine;

/// The ids a GetSqlInfo without ids answers: all but those newer than drivers still in use.
/// JDBC drivers before Arrow 16 key an `EnumMap` by every id they receive and fail on
/// FLIGHT_SQL_SERVER_BULK_INGESTION (10) and FLIGHT_SQL_SERVER_INGEST_TRANSACTIONS_SUPPORTED
/// (11); those two are answered when asked for by id.
pub static UNREQUESTED_ANSWERS: LazyLock<Vec<u32>> = LazyLock::new(|| {
    let newer = [
        SqlInfo::FlightSqlServerBulkIngestion as u32,
        SqlInfo::FlightSqlServerIngestTransactionsSupported as u32,
    ];
    (0..1000)
        .filter(|id| SqlInfo::try_from(*id as i32).is_ok() && !newer.contains(id))
        .collect()
});

/// A bitmask with the bits of `values` set.
fn bits(values: &[i32]) -> i32 {
    values.iter().fold(0, |mask, bit| mask | (1 << bit))
}

/// MiniDB's SqlInfo, with the function lists of `engine`'s registry.
pub fn sql_info(engine: &Engine) -> SqlInfoData {
    let mut info = SqlInfoDataBuilder::new();
    let no_limit = 0i64;

    // The server.
    info.append(SqlInfo::FlightSqlServerName, "MiniDB");
    info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    // The Arrow columnar format version (Schema.fbs MetadataVersion V5).
    info.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    info.append(SqlInfo::FlightSqlServerReadOnly, false);
    info.append(SqlInfo::FlightSqlServerSql, true);
    info.append(SqlInfo::FlightSqlServerSubstrait, false);
    // BeginTransaction/EndTransaction, no savepoints. ADBC enables transactions on this int32.
    info.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::Transaction as i32,
    );
    info.append(SqlInfo::FlightSqlServerCancel, true);
    // CommandStatementIngest, also inside a transaction (appending or replacing).
    info.append(SqlInfo::FlightSqlServerBulkIngestion, true);
    info.append(SqlInfo::FlightSqlServerIngestTransactionsSupported, true);
    info.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    info.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);

    // Names and identifiers: one catalog, whose schemas are MiniDB's databases.
    info.append(SqlInfo::SqlDdlCatalog, false);
    info.append(SqlInfo::SqlDdlSchema, true);
    info.append(SqlInfo::SqlDdlTable, true);
    info.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    info.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
    );
    info.append(SqlInfo::SqlAllTablesAreSelectable, true);
    // NULLs sort after every value ascending and before every value descending.
    info.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    info.append(SqlInfo::SqlSearchStringEscape, "\\");
    info.append(SqlInfo::SqlExtraNameCharacters, "");
    info.append(SqlInfo::SqlSchemaTerm, "database");
    info.append(SqlInfo::SqlProcedureTerm, "procedure");
    info.append(SqlInfo::SqlCatalogTerm, "catalog");
    info.append(SqlInfo::SqlCatalogAtStart, true);
    info.append(SqlInfo::SqlSchemasSupportedActions, 0i32);
    info.append(SqlInfo::SqlCatalogsSupportedActions, 0i32);

    // Vocabulary.
    info.append(SqlInfo::SqlKeywords, ALL_KEYWORDS);
    let functions = engine.scalar_functions();
    let section = |labels: &[&str]| -> Vec<String> {
        let mut names: Vec<String> = labels
            .iter()
            .flat_map(|label| functions.get(label).cloned().unwrap_or_default())
            .collect();
        names.sort();
        names
    };
    info.append(SqlInfo::SqlNumericFunctions, section(&["Math Functions"]));
    info.append(
        SqlInfo::SqlStringFunctions,
        section(&[
            "String Functions",
            "Binary String Functions",
            "Regular Expression Functions",
        ]),
    );
    info.append(
        SqlInfo::SqlSystemFunctions,
        section(&["Conditional Functions", "Other Functions"]),
    );
    info.append(
        SqlInfo::SqlDatetimeFunctions,
        section(&["Time and Date Functions"]),
    );
    info.append(SqlInfo::SqlSupportsConvert, conversions());

    // The SQL dialect.
    info.append(SqlInfo::SqlSupportsColumnAliasing, true);
    info.append(SqlInfo::SqlNullPlusNullIsNull, true);
    info.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    info.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    info.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    info.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    info.append(
        SqlInfo::SqlSupportedGroupBy,
        bits(&[
            SqlSupportedGroupBy::SqlGroupByUnrelated as i32,
            SqlSupportedGroupBy::SqlGroupByBeyondSelect as i32,
        ]),
    );
    info.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    info.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    info.append(
        SqlInfo::SqlSupportedGrammar,
        bits(&[
            SupportedSqlGrammar::SqlMinimumGrammar as i32,
            SupportedSqlGrammar::SqlCoreGrammar as i32,
        ]),
    );
    // Bit 0: ANSI92_ENTRY_SQL (arrow-flight does not export SupportedAnsi92SqlGrammarLevel).
    info.append(SqlInfo::SqlAnsi92SupportedLevel, bits(&[0]));
    // PRIMARY KEY, UNIQUE and FOREIGN KEY are enforced, but there are no CHECK constraints,
    // which the facility includes.
    info.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
    info.append(
        SqlInfo::SqlOuterJoinsSupportLevel,
        SqlOuterJoinsSupportLevel::SqlFullOuterJoins as i32,
    );
    info.append(SqlInfo::SqlSupportedPositionedCommands, 0i32);
    info.append(SqlInfo::SqlSelectForUpdateSupported, false);
    info.append(SqlInfo::SqlStoredProceduresSupported, false);
    info.append(
        SqlInfo::SqlSupportedSubqueries,
        bits(&[
            SqlSupportedSubqueries::SqlSubqueriesInComparisons as i32,
            SqlSupportedSubqueries::SqlSubqueriesInExists as i32,
            SqlSupportedSubqueries::SqlSubqueriesInIns as i32,
        ]),
    );
    info.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    info.append(
        SqlInfo::SqlSupportedUnions,
        bits(&[
            SqlSupportedUnions::SqlUnion as i32,
            SqlSupportedUnions::SqlUnionAll as i32,
        ]),
    );

    // Limits: none that MiniDB enforces.
    for limit in [
        SqlInfo::SqlMaxBinaryLiteralLength,
        SqlInfo::SqlMaxCharLiteralLength,
        SqlInfo::SqlMaxColumnNameLength,
        SqlInfo::SqlMaxColumnsInGroupBy,
        SqlInfo::SqlMaxColumnsInIndex,
        SqlInfo::SqlMaxColumnsInOrderBy,
        SqlInfo::SqlMaxColumnsInSelect,
        SqlInfo::SqlMaxColumnsInTable,
        SqlInfo::SqlMaxConnections,
        SqlInfo::SqlMaxCursorNameLength,
        SqlInfo::SqlMaxIndexLength,
        SqlInfo::SqlDbSchemaNameLength,
        SqlInfo::SqlMaxProcedureNameLength,
        SqlInfo::SqlMaxCatalogNameLength,
        SqlInfo::SqlMaxRowSize,
        SqlInfo::SqlMaxStatementLength,
        SqlInfo::SqlMaxStatements,
        SqlInfo::SqlMaxTableNameLength,
        SqlInfo::SqlMaxTablesInSelect,
        SqlInfo::SqlMaxUsernameLength,
    ] {
        info.append(limit, no_limit);
    }
    info.append(SqlInfo::SqlMaxRowSizeIncludesBlobs, true);

    // Transactions: each table is read at one snapshot from its first use (snapshot isolation,
    // JDBC's REPEATABLE READ); DDL is refused once a transaction has used tables.
    info.append(
        SqlInfo::SqlDefaultTransactionIsolation,
        SqlTransactionIsolationLevel::SqlTransactionRepeatableRead as i64,
    );
    info.append(SqlInfo::SqlTransactionsSupported, true);
    info.append(
        SqlInfo::SqlSupportedTransactionsIsolationLevels,
        bits(&[SqlTransactionIsolationLevel::SqlTransactionRepeatableRead as i32]),
    );
    info.append(SqlInfo::SqlDataDefinitionCausesTransactionCommit, false);
    info.append(SqlInfo::SqlDataDefinitionsInTransactionsIgnored, false);

    // Result sets stream forward only and are read-only.
    info.append(
        SqlInfo::SqlSupportedResultSetTypes,
        bits(&[SqlSupportedResultSetType::SqlResultSetTypeForwardOnly as i32]),
    );
    info.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetUnspecified,
        0i32,
    );
    info.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetForwardOnly,
        bits(&[SqlSupportedResultSetConcurrency::SqlResultSetConcurrencyReadOnly as i32]),
    );
    info.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetScrollSensitive,
        0i32,
    );
    info.append(
        SqlInfo::SqlSupportedConcurrenciesForResultSetScrollInsensitive,
        0i32,
    );
    // Several parameter rows per execution (executemany, JDBC executeBatch).
    info.append(SqlInfo::SqlBatchUpdatesSupported, true);
    info.append(SqlInfo::SqlSavepointsSupported, false);
    info.append(SqlInfo::SqlNamedParametersSupported, false);
    info.append(SqlInfo::SqlLocatorsUpdateCopy, false);
    info.append(SqlInfo::SqlStoredFunctionsUsingCallSyntaxSupported, false);

    info.build()
        .expect("a fixed list of well-typed SqlInfo values always builds")
}

/// `SQL_SUPPORTS_CONVERT`: the types `CAST` converts each type to.
fn conversions() -> BTreeMap<i32, Vec<i32>> {
    use SqlSupportsConvert::*;
    let numbers = [
        SqlConvertBigint,
        SqlConvertDecimal,
        SqlConvertFloat,
        SqlConvertInteger,
        SqlConvertNumeric,
        SqlConvertReal,
        SqlConvertSmallint,
        SqlConvertTinyint,
    ];
    let text = [SqlConvertChar, SqlConvertVarchar, SqlConvertLongvarchar];
    let binary = [
        SqlConvertBinary,
        SqlConvertVarbinary,
        SqlConvertLongvarbinary,
    ];
    let ids = |types: &[&[SqlSupportsConvert]]| -> Vec<i32> {
        types
            .iter()
            .flat_map(|t| t.iter().map(|c| *c as i32))
            .collect()
    };
    let mut map = BTreeMap::new();
    for number in numbers {
        map.insert(number as i32, ids(&[&numbers, &text, &[SqlConvertBit]]));
    }
    for t in text {
        map.insert(
            t as i32,
            ids(&[
                &numbers,
                &text,
                &binary,
                &[
                    SqlConvertBit,
                    SqlConvertDate,
                    SqlConvertTime,
                    SqlConvertTimestamp,
                ],
            ]),
        );
    }
    for b in binary {
        map.insert(b as i32, ids(&[&binary, &text]));
    }
    map.insert(
        SqlConvertBit as i32,
        ids(&[&numbers, &text, &[SqlConvertBit]]),
    );
    map.insert(
        SqlConvertDate as i32,
        ids(&[&text, &[SqlConvertDate, SqlConvertTimestamp]]),
    );
    map.insert(SqlConvertTime as i32, ids(&[&text, &[SqlConvertTime]]));
    map.insert(
        SqlConvertTimestamp as i32,
        ids(&[
            &text,
            &[SqlConvertDate, SqlConvertTime, SqlConvertTimestamp],
        ]),
    );
    map
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, UnionArray};
    use arrow::datatypes::UInt32Type;

    use super::*;
    use crate::engine::DataStore;

    #[tokio::test]
    async fn every_key_is_answered_with_the_type_jdbc_casts_to() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(DataStore::open(dir.path().to_str().unwrap()).unwrap())
            .await
            .unwrap();
        let batch = sql_info(&engine).record_batch(Vec::<u32>::new()).unwrap();
        let names = batch.column(0).as_primitive::<UInt32Type>();
        let values = batch
            .column(1)
            .as_any()
            .downcast_ref::<UnionArray>()
            .unwrap();
        let answered: BTreeMap<u32, i8> = names
            .values()
            .iter()
            .zip(values.type_ids().iter())
            .map(|(name, type_id)| (*name, *type_id))
            .collect();
        // Substrait is not supported, so it has no version range.
        let unanswerable = [
            SqlInfo::FlightSqlServerSubstraitMinVersion as u32,
            SqlInfo::FlightSqlServerSubstraitMaxVersion as u32,
        ];
        for id in 0..1000 {
            if SqlInfo::try_from(id).is_ok() && !unanswerable.contains(&(id as u32)) {
                assert!(
                    answered.contains_key(&(id as u32)),
                    "SqlInfo {id} is missing"
                );
            }
        }
        // Union members: 0 string, 1 bool, 2 bigint, 3 int32, 4 string list, 5 map.
        let member = |info: SqlInfo| answered[&(info as u32)];
        assert_eq!(member(SqlInfo::SqlIdentifierQuoteChar), 0);
        assert_eq!(member(SqlInfo::FlightSqlServerReadOnly), 1);
        assert_eq!(member(SqlInfo::SqlDefaultTransactionIsolation), 2);
        assert_eq!(member(SqlInfo::SqlMaxColumnsInTable), 2);
        assert_eq!(member(SqlInfo::FlightSqlServerTransaction), 3);
        assert_eq!(member(SqlInfo::SqlSupportedGroupBy), 3);
        assert_eq!(member(SqlInfo::SqlKeywords), 4);
        assert_eq!(member(SqlInfo::SqlSupportsConvert), 5);
    }
}
