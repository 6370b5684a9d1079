//! Support for the property tests that feed garbage to MiniDB's decoders and parsers (the
//! text protocol's framing, the SQL front end, the Delta log, checkpoint and deletion-vector
//! decoders, Flight SQL handles): how many inputs each runs, and inputs made by mutating a valid
//! one. The test command runs a few thousand inputs per target; a campaign sets
//! `MINIDB_FUZZ_CASES` (see tests/README.md).

use proptest::prelude::*;
use proptest::test_runner::Config;

/// Inputs per target: `MINIDB_FUZZ_CASES`, else 2,000.
pub fn config() -> Config {
    let cases = std::env::var("MINIDB_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// `seed` with a few bytes flipped, inserted, removed, or cut short.
pub fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = seed.len().max(1);
    prop::collection::vec((0..len, any::<u8>(), 0..4u8), 1..8).prop_map(move |edits| {
        let mut bytes = seed.clone();
        for (at, byte, kind) in edits {
            let at = at.min(bytes.len());
            match kind {
                0 if at < bytes.len() => bytes[at] ^= byte | 1,
                1 => bytes.insert(at, byte),
                2 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.truncate(at),
            }
        }
        bytes
    })
}

/// The inputs kept for `target` under `tests/fuzz/<target>/`: inputs that once made a decoder
/// (or a library under it) panic, replayed by that decoder's tests. Name and bytes of each.
pub fn kept_inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(target);
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.display().to_string(), bytes)
        })
        .filter(|(name, _)| !name.ends_with(".md"))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no inputs kept in {}", dir.display());
    inputs
}
