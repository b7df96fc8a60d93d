//! The command line: every command and its arguments (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::models;

#[derive(Parser)]
#[command(name = "rapport", version, about = "An event-sourced ledger of B2B account relationships.")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    /// its writer first, and remove the old store once the new one serves. A copy a crash cut
    /// short is refused by every open: remove it and run the upgrade again.
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
pub(crate) struct StoreArg {
    /// The file-store directory.
    #[arg(long)]
    pub(crate) store: Option<PathBuf>,
    /// A PostgreSQL URL (postgres://user@host/db) instead of a directory. Without a password
    /// in it, PGPASSWORD or the password file (PGPASSFILE, ~/.pgpass) supplies one.
    #[arg(long, value_name = "URL")]
    pub(crate) postgres: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum InputFormat {
    Jsonl,
    Csv,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    Table,
    Json,
}

/// A duration: a whole number with a unit (`ms`, `s`, `m`, `h` or `d`), or a bare number of
/// seconds.
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
