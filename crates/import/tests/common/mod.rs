//! Helpers shared by the integration tests of `rapport-import`.

use rapport_core::testing::synth::{SynthConfig, generate};
use rapport_core::{BackfillStore, Ledger, Position};
use rapport_import::{ImportError, ImportOptions, Importer};

/// The tests' way of calling the importer: every setting, an optional rejects sink, and a
/// progress callback, in one call.
pub(crate) fn import_reader<S: rapport_core::BackfillStore, R: std::io::Read + Send>(
    ledger: &Ledger<S>,
    name: &str,
    open: impl FnMut() -> std::io::Result<R>,
    options: &ImportOptions,
    rejects: Option<&mut dyn std::io::Write>,
    progress: &mut dyn FnMut(rapport_import::Progress),
) -> Result<rapport_import::ImportReport, ImportError> {
    let importer = Importer::new(ledger).options(options.clone()).on_progress(progress);
    match rejects {
        Some(sink) => importer.rejects(sink).reader(name, open),
        None => importer.reader(name, open),
    }
}

/// The generator's history of `accounts` accounts over `months` months as JSON Lines.
pub(crate) fn jsonl(accounts: u32, months: u32) -> String {
    generate(SynthConfig { accounts, months, seed: 5, ..Default::default() }).map(|e| e.to_json_line() + "\n").collect()
}

/// Imports `text` into `ledger` as `t.jsonl`.
pub(crate) fn run<S: BackfillStore>(
    ledger: &Ledger<S>,
    text: &str,
    options: &ImportOptions,
) -> Result<rapport_import::ImportReport, ImportError> {
    import_reader(ledger, "t.jsonl", || Ok(text.as_bytes()), options, None, &mut |_| {})
}

/// Every event of `ledger`'s log.
pub(crate) fn log<S: rapport_core::Store>(ledger: &Ledger<S>) -> Vec<rapport_core::Envelope> {
    ledger.blocking().read_all_page(Position(1), 1_000_000).unwrap()
}
