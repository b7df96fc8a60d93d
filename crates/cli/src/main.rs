//! `rapport`: import history, score accounts, chart a timeline, verify a store, generate data.
//!
//! Exit codes: 0 success; 1 failure (I/O, a store that cannot be opened or read, a failed
//! append, output that cannot be written); 2 usage error; 3 invalid input (an import refused
//! atomically); 4 damaged store (`verify`, or a store that refuses to open because it is
//! damaged). A closed output pipe (`| head`) ends a command quietly. Every error is one line on
//! stderr, with outside text in it escaped.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand, ValueEnum};
use rapport_core::backend::LogState;
use rapport_core::escape::one_line;
use rapport_core::testing::synth::{SynthConfig, generate};
use rapport_core::validate::FUTURE_SKEW_DEFAULT;
use rapport_core::{AnyStore, Ledger, Position, Store, Timestamp};
use rapport_import::{Format, ImportError, Importer, Mapping, Progress};
use rapport_store_file::{
    BackupError, FileStore, OpenError, Options, RecoveryReport, UpgradeError, VerifyError, backup, upgrade, verify,
};
use rapport_store_postgres::{PgOptions, PgStore};

mod erase;
mod explain;
mod export;
mod live;
mod models;
mod out;
mod outputs;
mod renewals;
mod score;
mod svg;
mod timeline;

use out::{Out, stdout_error};
use outputs::Protected;

#[derive(Parser)]
#[command(name = "rapport", version, about = "An event-sourced ledger of B2B account relationships.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Import JSON Lines or CSV files (or - for stdin) into a store, creating it if missing
    /// (in a new or empty directory).
    Import {
        #[command(flatten)]
        store: StoreArg,
        /// Files to import, in order; - reads stdin.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Input format [default: each file's by its name: csv for a name ending in `.csv`,
        /// jsonl for any other and for stdin].
        #[arg(long, value_enum)]
        format: Option<InputFormat>,
        /// Append the valid lines; write one JSON object per rejected line to this file: its
        /// source, line number and reason, and what it held (`text`, as read, for a line that
        /// does not parse; `event`, in canonical form, for one validation refused).
        #[arg(long, value_name = "REJECTS.jsonl")]
        skip_invalid: Option<PathBuf>,
        /// How much later than now an event may say it occurred (clock skew): `300s`, `5m`,
        /// `2h`, `1d` or seconds. Later events are refused as dated in the future.
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
        future_skew: std::time::Duration,
        /// Order each file's events by occurred_at (ties in file order) before validating
        /// them, for exports that are not in time order. Each file is then held in memory,
        /// up to 1,000,000 events (about 360 MB at that size); a larger file is refused before
        /// anything is appended.
        #[arg(long)]
        sort_by_time: bool,
        /// A jq program each input record goes through (a JSON line, or a CSV row as an object
        /// keyed by its header), yielding zero or more events in the canonical form; see
        /// docs/mapping.md and examples/mappings/.
        #[arg(long, value_name = "MAPPING.jq")]
        map: Option<PathBuf>,
    },
    /// Print trust and health per account.
    Score {
        #[command(flatten)]
        store: StoreArg,
        /// Only this account, folded from its own events (the checkpoint is not read); an account
        /// without events is refused.
        #[arg(long)]
        account: Option<String>,
        /// Evaluate as of this instant (RFC 3339); default now.
        #[arg(long)]
        as_of: Option<String>,
        /// Only count events the log had recorded by this instant (RFC 3339).
        #[arg(long)]
        known_at: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        /// Fold the whole log even when the runner's checkpoint (`rapport checkpoint`) could
        /// answer: by default a matching checkpoint is read, and only the events after it.
        #[arg(long)]
        no_checkpoint: bool,
        #[command(flatten)]
        model: models::ModelArg,
    },
    /// Print signals as they happen (band changes, overdue commitments, breached SLAs...)
    /// while other processes append, one line each, until interrupted.
    Watch {
        #[command(flatten)]
        store: StoreArg,
        /// `table`: one line for people; `json`: one JSON object per line.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        /// How often to look for appends to a file store and to move time forward (due
        /// dates, SLAs, decay): `1s`, `5m`…
        #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
        tick: std::time::Duration,
        /// Stop after this many signals.
        #[arg(long)]
        count: Option<u64>,
        #[command(flatten)]
        model: models::ModelArg,
    },
    /// Copy a file store, consistently and verified, while a writer keeps appending. The
    /// copy holds the log up to the last batch written when it began.
    Backup {
        /// The file-store directory to copy.
        #[arg(long)]
        store: PathBuf,
        /// Where to write the copy: a directory that must not exist.
        dest: PathBuf,
    },
    /// Bring the runner's checkpoint (what `score` and `watch` start from) up to the log's
    /// head and save it beside the log.
    Checkpoint {
        #[command(flatten)]
        store: StoreArg,
        #[command(flatten)]
        model: models::ModelArg,
    },
    /// The accounts whose contract renews within a window (from their profiles' renewal
    /// dates), most at risk first: by health at renewal, its trend carried forward, less one
    /// standard error.
    Renewals {
        #[command(flatten)]
        store: StoreArg,
        /// The window, in days from the evaluated instant (`90d` or `90`).
        #[arg(long, default_value = "90d")]
        within: String,
        /// Evaluate as of this instant (RFC 3339); default now.
        #[arg(long)]
        as_of: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        #[command(flatten)]
        model: models::ModelArg,
    },
    /// Trust and health of one account over time.
    Timeline {
        #[command(flatten)]
        store: StoreArg,
        /// The account.
        #[arg(long)]
        account: String,
        /// The step between instants, in days (`30d` or `30`).
        #[arg(long, default_value = "30d")]
        every: String,
        /// Until this instant (RFC 3339); default now.
        #[arg(long)]
        as_of: Option<String>,
        /// Also write an SVG chart here.
        #[arg(long, value_name = "OUT.svg")]
        svg: Option<PathBuf>,
        #[command(flatten)]
        model: models::ModelArg,
    },
    /// What changed in one account between two instants (--from, --to), or under two models
    /// at one instant (--at with --from-model and --model): trust and health split by factor,
    /// each factor's change into the model's part, time's (decay, items falling overdue) and
    /// the events', with the events that moved it most.
    Explain {
        #[command(flatten)]
        store: StoreArg,
        /// The account.
        #[arg(long)]
        account: String,
        /// The start (RFC 3339).
        #[arg(long, conflicts_with = "at")]
        from: Option<String>,
        /// The end (RFC 3339); default now.
        #[arg(long, conflicts_with = "at")]
        to: Option<String>,
        /// One instant, for comparing two models (both ends at it).
        #[arg(long)]
        at: Option<String>,
        /// Only count events the log had recorded by this instant (RFC 3339), at the end (and
        /// at the start, unless --from-known-at says otherwise).
        #[arg(long)]
        known_at: Option<String>,
        /// Only count events recorded by this instant at the start: with a later --known-at
        /// (or none), what was recorded in between, such as a backfill, is the change.
        #[arg(long)]
        from_known_at: Option<String>,
        /// The scoring configuration of the start (default: that of the end, --model).
        #[arg(long, value_name = "MODEL.json")]
        from_model: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
        #[command(flatten)]
        model: models::ModelArg,
    },
    /// Write every event of one account as JSON lines in the canonical form, metadata
    /// included (a subject access request; the lines import into another store as they are).
    Export {
        #[command(flatten)]
        store: StoreArg,
        /// The account.
        #[arg(long)]
        account: String,
        /// Write here instead of stdout (a file that is not one of the store's).
        #[arg(long, value_name = "OUT.jsonl")]
        out: Option<PathBuf>,
    },
    /// Erase personal text (free text and who recorded each event): one account's
    /// (`--account`), or every account's older than an age (`--older-than`, a retention
    /// policy); or list the erasures recorded (`--list`). The keys that sealed the text are
    /// destroyed; events and scores stay (docs/privacy.md).
    #[command(group(clap::ArgGroup::new("what").required(true).args(["account", "older_than", "list"])))]
    Erase {
        #[command(flatten)]
        store: StoreArg,
        /// The account whose text to erase.
        #[arg(long)]
        account: Option<String>,
        /// Erase every account's text of events that occurred this long ago or more (whole
        /// months: the text of the month this reaches into stays until that month is older):
        /// `730d`, `24h`…
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        older_than: Option<std::time::Duration>,
        /// Print the erasures recorded, oldest first.
        #[arg(long)]
        list: bool,
        /// Why (kept for good with the erasure): a request or policy id, never a person.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Check every record, checksum and validation rule; for a file store also the hash
    /// chain, and print its value at the head (record it to prove the history later).
    Verify {
        #[command(flatten)]
        store: StoreArg,
        /// Also prove that the log up to POSITION is the history whose chain value an earlier
        /// `verify` printed there as CHAIN (file store): `--expect 1200:9f3a…`.
        #[arg(long, value_name = "POSITION:CHAIN")]
        expect: Option<String>,
    },
    /// Rewrite a file store created by an older build (format 1, frames chained by CRC32C;
    /// format 2, without room for metadata; format 3, its free text in the clear) as format 4
    /// (text sealed) in a new directory, and verify it. The old store is left as it is; stop
    /// its writer first, and remove the old store once the new one serves.
    Upgrade {
        /// The file-store directory to upgrade.
        #[arg(long)]
        store: PathBuf,
        /// Where to write the upgraded store: a directory that must not exist.
        dest: PathBuf,
    },
    /// Write seeded synthetic history as JSON Lines on stdout.
    Generate {
        /// How many accounts (at most 10,000,000).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
        accounts: u32,
        /// Months of history per account (at most 1,200).
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=1_200))]
        months: u32,
        /// The seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// When the history starts (RFC 3339). It must end (start plus months) by now: an
        /// import refuses events dated in the future.
        #[arg(long, default_value = "2024-01-01T00:00:00Z")]
        start: String,
    },
}

/// Where the log lives: a file-store directory, or a PostgreSQL database.
#[derive(clap::Args, Clone)]
#[group(required = true, multiple = false)]
struct StoreArg {
    /// The file-store directory.
    #[arg(long)]
    store: Option<PathBuf>,
    /// A PostgreSQL URL (postgres://user@host/db) instead of a directory. Without a password
    /// in it, PGPASSWORD or the password file (PGPASSFILE, ~/.pgpass) supplies one.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum InputFormat {
    Jsonl,
    Csv,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Table,
    Json,
}

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

/// `250ms`, `300s`, `5m`, `2h`, `1d`, or a number of seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number.parse().map_err(|_| format!("{s:?} is not a duration like 300s, 5m, 2h or 1d"))?;
    let seconds = match unit {
        "ms" => return Ok(std::time::Duration::from_millis(n)),
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3_600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("{s:?}: the unit is ms, s, m, h or d")),
    };
    Ok(std::time::Duration::from_secs(seconds))
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

/// Verifies a file store: every check an open makes, the hash chain included; prints the
/// chain's value at the head and, with `expect`, proves the log up to a recorded position.
fn verify_files(dir: &std::path::Path, expect: Option<&str>) -> Result<(), Failure> {
    let damaged = |e: VerifyError| match e {
        e @ (VerifyError::Damaged { .. } | VerifyError::NoFrameEnd { .. }) => fail(4, e.into()),
        e => e.into(),
    };
    let r = verify(dir).map_err(damaged)?;
    let version = r.format_version;
    let expected = match expect {
        None => None,
        Some(text) => {
            let parsed = text
                .split_once(':')
                .and_then(|(p, c)| Some((p.parse::<u64>().ok()?, c)))
                .ok_or_else(|| fail(2, anyhow!("--expect {}: give POSITION:CHAIN", one_line(text))))?;
            let chain = rapport_store_file::format::Chain::parse(parsed.1, version)
                .map_err(|e| fail(2, anyhow!("--expect {}: {e}", one_line(text))))?;
            Some((parsed.0, chain))
        }
    };
    let mut out = Out::new();
    out.line(format_args!("ok: {} events, {} accounts", r.n_events, r.n_accounts))?;
    let kind = match version {
        1 => "crc32c, format 1: not tamper-evident; `rapport upgrade` rewrites it as format 4".to_owned(),
        2 => "blake3, format 2: holds no metadata, profiles or assessments; `rapport upgrade` rewrites it as format 4"
            .to_owned(),
        3 => "blake3, format 3: free text in the clear, not erasable; `rapport upgrade` rewrites it as format 4"
            .to_owned(),
        v => format!("blake3, format {v}"),
    };
    out.line(format_args!("head: position {}, chain {} ({kind})", r.n_events, r.head_chain.display(version)))?;
    if let Some((position, chain)) = expected {
        let found = rapport_store_file::chain_at(dir, position).map_err(damaged)?;
        if found != chain {
            return Err(fail(
                4,
                anyhow!(
                    "damaged: the chain at position {position} is {}, not the {} recorded: the history up to there \
                     was rewritten",
                    found.display(version),
                    chain.display(version)
                ),
            ));
        }
        out.line(format_args!("proved: the log up to position {position} is the history recorded"))?;
    }
    out.finish()?;
    note_skipped(&RecoveryReport { skipped: r.skipped, ..RecoveryReport::default() });
    Ok(())
}

/// Verifies any store through the contract: gapless positions and every validation rule.
fn verify_log(ledger: &Ledger<AnyStore>) -> Result<(), Failure> {
    let mut state = LogState::new();
    let mut n = 0u64;
    let mut damage: Option<String> = None;
    ledger.blocking().for_each(Position(1), |e| {
        if damage.is_some() {
            return;
        }
        n += 1;
        if e.position.get() != n {
            damage = Some(format!("position {} where {n} was expected", e.position));
            return;
        }
        match state.replay(&e.to_new_event(), e.position) {
            Ok(v) if v == e.stream_version => {}
            Ok(v) => {
                damage = Some(format!("position {}: stream version {} should be {v}", e.position, e.stream_version))
            }
            Err(err) => damage = Some(format!("position {}: {err}", e.position)),
        }
    })?;
    match damage {
        Some(d) => Err(fail(4, anyhow!("damaged: {d}"))),
        None => {
            let mut out = Out::new();
            out.line(format_args!("ok: {n} events, {} accounts", state.n_accounts()))?;
            out.finish()
        }
    }
}

/// How `rapport import` reads its files.
struct ImportSettings {
    format: Option<InputFormat>,
    future_skew: std::time::Duration,
    sort_by_time: bool,
    mapping: Option<Mapping>,
}

fn cmd_import(
    ledger: &Ledger<AnyStore>,
    files: &[PathBuf],
    settings: &ImportSettings,
    skip_invalid: Option<&Path>,
    protected: &Protected,
) -> Result<(), Failure> {
    let ImportSettings { format, future_skew, sort_by_time, mapping } = settings;
    let (future_skew, sort_by_time) = (*future_skew, *sort_by_time);
    // Asked for, or by the file's name.
    let format_of = |file: &Path| match format {
        Some(InputFormat::Csv) => Format::Csv,
        Some(InputFormat::Jsonl) => Format::Jsonl,
        None if file.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")) => Format::Csv,
        None => Format::Jsonl,
    };
    let mut rejects = match skip_invalid {
        Some(p) => Some(std::io::BufWriter::new(protected.create("--skip-invalid", p)?)),
        None => None,
    };
    let mut out = Out::new();
    for file in files {
        let bar = progress_bar(file);
        let mut on_progress = |p: Progress| {
            if let Some(b) = &bar {
                match p {
                    Progress::Validating { bytes } => {
                        b.set_message("validating");
                        b.set_position(bytes);
                    }
                    Progress::Appending { events } => b.set_message(format!("appended {events}")),
                }
            }
        };
        let mut importer = Importer::new(ledger)
            .format(format_of(file))
            .skip_invalid(skip_invalid.is_some())
            .future_skew(future_skew)
            .sort_by_time(sort_by_time)
            .on_progress(&mut on_progress);
        if let Some(m) = mapping {
            importer = importer.mapping(m.clone());
        }
        if let Some(w) = rejects.as_mut() {
            importer = importer.rejects(w);
        }
        let result = if file.as_os_str() == "-" {
            let mut once = Some(std::io::stdin());
            importer.reader("-", || {
                once.take().ok_or_else(|| {
                    std::io::Error::other("stdin is larger than the in-memory buffer; import a file instead")
                })
            })
        } else {
            importer.file(file)
        };
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        match result {
            Ok(report) => out.line(format_args!("{}", report.summary()))?,
            Err(e @ ImportError::Invalid { .. }) => return Err(fail(3, e.into())),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(mut w) = rejects {
        w.flush().context("writing the rejects file")?;
        w.get_ref().sync_all().context("writing the rejects file")?;
    }
    out.finish()
}

fn progress_bar(file: &Path) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    let bar = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template("{msg:>12} [{bar:40}] {bytes}/{total_bytes} {eta}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}
