//! `rapport`: import history, score accounts, chart a timeline, verify a store, generate data.
//!
//! Exit codes: 0 success; 1 failure (I/O, a store that cannot be opened or read, a failed
//! append, output that cannot be written); 2 usage error; 3 invalid input (an import refused
//! atomically); 4 damaged store (`verify`, or a store that refuses to open because it is
//! damaged). A closed output pipe (`| head`) ends a command quietly. Every error is one line on
//! stderr, with outside text in it escaped.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::Parser;
use rapport_core::escape::one_line;
use rapport_core::testing::synth::{SynthConfig, generate};
use rapport_core::validate::FUTURE_SKEW_DEFAULT;
use rapport_core::{AnyStore, Ledger, Position, Store, Timestamp};
use rapport_import::Mapping;
use rapport_store_file::{BackupError, FileStore, OpenError, Options, RecoveryReport, UpgradeError, backup, upgrade};
use rapport_store_postgres::{PgOptions, PgStore};

mod args;
mod erase;
mod explain;
mod export;
mod import;
mod live;
mod models;
mod out;
mod outputs;
mod renewals;
mod score;
mod svg;
mod timeline;
mod verify;

use args::{Cli, Command, InputFormat, OutputFormat, StoreArg};
use import::{ImportSettings, cmd_import};
use out::{Out, stdout_error};
use outputs::Protected;
use verify::{verify_files, verify_log};

/// A failure with its exit code.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure { code: 1, error: e.into() }
    }
}

fn fail(code: u8, error: anyhow::Error) -> Failure {
    Failure { code, error }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) if is_broken_pipe(&f.error) => ExitCode::SUCCESS,
        Err(f) => {
            // One line: the error and its causes, no backtrace, outside text escaped.
            let mut msg = f.error.to_string();
            for cause in f.error.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg.push_str(": ");
                    msg.push_str(&c);
                }
            }
            let _ = writeln!(std::io::stderr(), "rapport: {}", one_line(&msg));
            ExitCode::from(f.code)
        }
    }
}

/// A path as messages show it: one line, escaped.
pub(crate) fn shown(path: &Path) -> String {
    one_line(&path.display().to_string()).into_owned()
}

/// Writes a note to stderr (a closed or full stderr is ignored: there is nowhere to say so).
fn note(msg: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "rapport: {msg}");
}

/// A closed pipe (`rapport score | head`) is a normal end, not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

fn instant(s: &Option<String>, what: &str) -> Result<Option<Timestamp>, Failure> {
    match s {
        None => Ok(None),
        Some(s) => Timestamp::parse(s).map(Some).map_err(|e| fail(2, anyhow!("--{what} {s:?}: {e}"))),
    }
}

/// How a command uses the store.
#[derive(Clone, Copy)]
enum Access {
    /// Reads only: a file store is opened read-only (no lock, no writes; a batch still being
    /// written, or a torn tail, is left unread and noted), and must exist.
    Read,
    /// Writes: a file store is created if missing and its torn tail cut; new events may be
    /// dated up to this skew after now.
    Write(std::time::Duration),
}

/// The store `arg` names, whichever kind it is.
fn open_store(arg: &StoreArg, access: Access) -> Result<Ledger<AnyStore>, Failure> {
    let future_skew = match access {
        Access::Read => FUTURE_SKEW_DEFAULT,
        Access::Write(skew) => skew,
    };
    let store = match (&arg.store, &arg.postgres) {
        (Some(dir), _) => {
            let opened = match access {
                Access::Read => FileStore::open_read_only(dir),
                Access::Write(_) => FileStore::open_with(dir, Options { future_skew, ..Options::default() }),
            };
            let store = self::opened(opened)?;
            for (file, offset, bytes) in &store.recovery().truncated {
                note(format_args!("recovered a torn tail: {} cut at byte {offset} ({bytes} bytes)", shown(file)));
            }
            note_skipped(store.recovery());
            AnyStore::new(store)
        }
        (None, Some(url)) => {
            AnyStore::new(PgStore::connect_with(url, PgOptions { future_skew, ..PgOptions::default() })?)
        }
        (None, None) => return Err(fail(2, anyhow!("give --store DIR or --postgres URL"))),
    };
    Ok(Ledger::new(store))
}

/// A file store opened, or the failure with its exit code (4 for a damaged store).
fn opened(opened: Result<FileStore, OpenError>) -> Result<FileStore, Failure> {
    match opened {
        Ok(s) => Ok(s),
        Err(e @ OpenError::Corrupt { .. }) => Err(fail(4, e.into())),
        Err(e) => Err(e.into()),
    }
}

fn note_skipped(recovery: &RecoveryReport) {
    if let Some(s) = &recovery.skipped {
        note(format_args!(
            "read up to the last complete batch: {} bytes at byte {} of {} not read ({}: a batch being written, \
             or a torn tail the next import will cut)",
            s.bytes,
            s.offset,
            shown(&s.segment),
            s.reason
        ));
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Import { store, files, format, skip_invalid, future_skew, sort_by_time, map } => {
            // Outputs are checked before anything is written, the store included.
            let protected = Protected::new(store.store.as_deref(), &files);
            if let Some(rejects) = &skip_invalid {
                protected.check("--skip-invalid", rejects)?;
            }
            // The mapping is read and checked before the store is opened (or created).
            let mapping = map.as_deref().map(Mapping::from_file).transpose().map_err(|e| fail(2, e.into()))?;
            if let Some(m) = mapping.as_ref().filter(|m| !m.runs_compiled()) {
                let _ = writeln!(
                    std::io::stderr(),
                    "rapport: note: mapping {} uses jq beyond the part rapport compiles, so every record runs in jaq, a few times slower (docs/mapping.md, \"How a mapping runs\")",
                    one_line(m.name())
                );
            }
            // A store directory this import makes, removed again if the import fails before
            // anything lands in it (a mistyped --store leaves no empty store behind).
            let made = store.store.as_deref().filter(|dir| !dir.exists()).map(Path::to_path_buf);
            let ledger = open_store(&store, Access::Write(future_skew))?;
            let settings = ImportSettings { format, future_skew, sort_by_time, mapping };
            let result = cmd_import(&ledger, &files, &settings, skip_invalid.as_deref(), &protected);
            if let (Err(_), Some(dir)) = (&result, made) {
                let empty = pollster::block_on(ledger.store().head()).is_ok_and(|head| head == Position(0));
                drop(ledger);
                if empty && let Err(e) = std::fs::remove_dir_all(&dir) {
                    note(format_args!("could not remove the empty store {} this import made: {e}", shown(&dir)));
                }
            }
            result
        }
        Command::Score { store, account, as_of, known_at, format, no_checkpoint, model } => {
            let config = model.load()?;
            let ledger = open_store(&store, Access::Read)?;
            score::cmd_score(&ledger, &account, &as_of, &known_at, format, !no_checkpoint, &config)
        }
        Command::Watch { store, format, tick, count, model } => {
            let config = model.load()?;
            let ledger = match &store.store {
                Some(dir) => Ledger::new(AnyStore::new(opened(FileStore::open_following(dir, tick))?)),
                None => open_store(&store, Access::Read)?,
            };
            live::cmd_watch(ledger.into_store(), format, tick, count, &config)
        }
        Command::Backup { store, dest } => match backup(&store, &dest) {
            Ok(r) => {
                let mut out = Out::new();
                out.line(format_args!(
                    "backup: {} events in {} segments ({} bytes), verified: {}",
                    r.n_events,
                    r.n_segments,
                    r.bytes,
                    shown(&dest)
                ))?;
                out.finish()
            }
            Err(BackupError::Open(e @ OpenError::Corrupt { .. })) => Err(fail(4, e.into())),
            Err(e @ BackupError::Destination { .. }) => Err(fail(2, e.into())),
            Err(e) => Err(e.into()),
        },
        Command::Upgrade { store, dest } => match upgrade(&store, &dest) {
            Ok(r) => {
                let mut out = Out::new();
                out.line(format_args!(
                    "upgraded: {} events in {} segments, format {}, verified: {}",
                    r.n_events,
                    r.n_segments,
                    rapport_store_file::format::FORMAT_VERSION,
                    shown(&dest)
                ))?;
                out.line(format_args!("head: position {}, chain {}", r.n_events, r.head_chain.display(2)))?;
                out.finish()
            }
            Err(UpgradeError::Open(e @ OpenError::Corrupt { .. })) => Err(fail(4, e.into())),
            Err(e @ (UpgradeError::Destination { .. } | UpgradeError::Current { .. })) => Err(fail(2, e.into())),
            Err(e) => Err(e.into()),
        },
        Command::Checkpoint { store, model } => {
            let config = model.load()?;
            live::cmd_checkpoint(&open_store(&store, Access::Write(FUTURE_SKEW_DEFAULT))?, &config)
        }
        Command::Renewals { store, within, as_of, format, model } => {
            let config = model.load()?;
            renewals::cmd_renewals(&open_store(&store, Access::Read)?, &within, &as_of, format, &config)
        }
        Command::Timeline { store, account, every, as_of, svg, model } => {
            let protected = Protected::new(store.store.as_deref(), &[]);
            if let Some(out) = &svg {
                protected.check("--svg", out)?;
            }
            timeline::cmd_timeline(
                &open_store(&store, Access::Read)?,
                &account,
                &every,
                &as_of,
                svg.as_deref(),
                &protected,
                &model.load()?,
            )
        }
        Command::Explain { store, account, from, to, at, known_at, from_known_at, from_model, format, model } => {
            let config = model.load()?;
            let from_config = from_model.as_deref().map(models::load).transpose()?;
            let request = explain::Request {
                account: &account,
                from: instant(&from, "from")?,
                to: instant(&to, "to")?,
                at: instant(&at, "at")?,
                known_at: instant(&known_at, "known-at")?,
                from_known_at: instant(&from_known_at, "from-known-at")?,
                model: &config,
                from_model: from_config.as_ref(),
            };
            explain::cmd_explain(&open_store(&store, Access::Read)?, &request, format)
        }
        Command::Export { store, account, out } => {
            let protected = Protected::new(store.store.as_deref(), &[]);
            if let Some(path) = &out {
                protected.check("--out", path)?;
            }
            export::cmd_export(&open_store(&store, Access::Read)?, &account, out.as_deref(), &protected)
        }
        Command::Erase { store, account, older_than, list, reason } => {
            let target = match (account, older_than) {
                _ if list => erase::Target::List,
                (Some(a), _) => erase::Target::Account(a),
                (None, Some(age)) => erase::Target::OlderThan(age),
                (None, None) => return Err(fail(2, anyhow!("say --account, --older-than or --list"))),
            };
            if let Some(dir) = &store.store
                && !dir.exists()
            {
                return Err(fail(2, anyhow!("no store at {}", shown(dir))));
            }
            let access = if list { Access::Read } else { Access::Write(FUTURE_SKEW_DEFAULT) };
            erase::cmd_erase(&open_store(&store, access)?, target, reason.as_deref())
        }
        Command::Verify { store, expect } => match (&store.store, &store.postgres) {
            (Some(dir), _) => verify_files(dir, expect.as_deref()),
            (None, Some(_)) if expect.is_some() => {
                Err(fail(2, anyhow!("--expect checks a file store's hash chain; PostgreSQL keeps none")))
            }
            (None, Some(_)) => verify_log(&open_store(&store, Access::Read)?),
            (None, None) => Err(fail(2, anyhow!("give --store DIR or --postgres URL"))),
        },
        Command::Generate { accounts, months, seed, start } => {
            let start = Timestamp::parse(&start).map_err(|e| fail(2, anyhow!("--start {start:?}: {e}")))?;
            let config = SynthConfig { accounts, months, seed, start };
            // Every event must be importable when it is imported: none dated after now.
            let now = Timestamp::now();
            if config.end() > now {
                return Err(fail(
                    2,
                    anyhow!(
                        "--start {start} with --months {months} ends at {}, after now ({now}): an import refuses \
                         events dated in the future; start earlier or generate fewer months",
                        config.end()
                    ),
                ));
            }
            let mut out = Out::new();
            for e in generate(config) {
                out.line(format_args!("{}", e.to_json_line()))?;
            }
            out.finish()
        }
    }
}
