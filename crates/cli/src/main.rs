//! `rapport`: import history, score accounts, chart a timeline, verify a store, generate data.
//!
//! Exit codes: 0 success; 1 failure (I/O, a store that cannot be opened or read, a failed
//! append); 2 usage error; 3 invalid input (an import refused atomically); 4 damaged store
//! (`verify`, or a store that refuses to open because it is damaged).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand, ValueEnum};
use rapport_core::synth::{SynthConfig, generate};
use rapport_core::{AccountId, AsOf, Ledger, LogState, Position, Store, Timestamp};
use rapport_health::{AccountScores, HealthModel, score_account, score_all, timeline, write_table};
use rapport_import::{Format, ImportError, ImportOptions, Progress, import, import_reader};
use rapport_store_file::{FileStore, OpenError, Options, VerifyError, verify};
use rapport_store_postgres::PgStore;

mod svg;

#[derive(Parser)]
#[command(name = "rapport", version, about = "An event-sourced ledger of B2B account relationships.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Import JSON Lines or CSV files (or - for stdin) into a store, creating it if missing.
    Import {
        #[command(flatten)]
        store: StoreArg,
        /// Files to import, in order; - reads stdin.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Input format.
        #[arg(long, value_enum, default_value_t = InputFormat::Jsonl)]
        format: InputFormat,
        /// Append the valid lines and write each rejected line, with its reason, to this file.
        #[arg(long, value_name = "REJECTS.jsonl")]
        skip_invalid: Option<PathBuf>,
    },
    /// Print trust and health per account.
    Score {
        #[command(flatten)]
        store: StoreArg,
        /// Only this account.
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
    },
    /// Check every record, checksum and validation rule.
    Verify {
        #[command(flatten)]
        store: StoreArg,
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
        /// When the history starts (RFC 3339).
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
    /// A PostgreSQL URL (postgres://user:password@host/db) instead of a directory.
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
            // One clear line: the error and its causes, no backtrace.
            let mut msg = f.error.to_string();
            for cause in f.error.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg.push_str(": ");
                    msg.push_str(&c);
                }
            }
            let _ = writeln!(std::io::stderr(), "rapport: {msg}");
            ExitCode::from(f.code)
        }
    }
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

fn open_existing(dir: &Path) -> Result<Ledger<FileStore>, Failure> {
    let options = Options { create_if_missing: false, ..Options::default() };
    match FileStore::open_with(dir, options) {
        Ok(s) => {
            for (file, offset, bytes) in &s.recovery().truncated {
                eprintln!("rapport: recovered a torn tail: {} cut at byte {offset} ({bytes} bytes)", file.display());
            }
            Ok(Ledger::new(s))
        }
        Err(e @ OpenError::Corrupt { .. }) => Err(fail(4, e.into())),
        Err(e) => Err(e.into()),
    }
}

fn connect_pg(url: &str) -> Result<Ledger<PgStore>, Failure> {
    Ok(Ledger::new(PgStore::connect(url)?))
}

/// Runs `$body` with `$ledger` bound to whichever store `$arg` names.
macro_rules! with_store {
    ($arg:expr, $create:expr, |$ledger:ident| $body:expr) => {
        match (&$arg.store, &$arg.postgres) {
            (Some(dir), _) => {
                let $ledger = if $create { open_or_create(dir)? } else { open_existing(dir)? };
                $body
            }
            (None, Some(url)) => {
                let $ledger = connect_pg(url)?;
                $body
            }
            (None, None) => Err(fail(2, anyhow!("give --store DIR or --postgres URL"))),
        }
    };
}

fn open_or_create(dir: &Path) -> Result<Ledger<FileStore>, Failure> {
    match FileStore::open(dir) {
        Ok(s) => Ok(Ledger::new(s)),
        Err(e @ OpenError::Corrupt { .. }) => Err(fail(4, e.into())),
        Err(e) => Err(e.into()),
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Import { store, files, format, skip_invalid } => {
            if let Some(rejects) = &skip_invalid {
                check_rejects_path(rejects, &files, store.store.as_deref())?;
            }
            with_store!(store, true, |ledger| cmd_import(&ledger, &files, format, skip_invalid.clone()))
        }
        Command::Score { store, account, as_of, known_at, format } => {
            with_store!(store, false, |ledger| cmd_score(&ledger, &account, &as_of, &known_at, format))
        }
        Command::Timeline { store, account, every, as_of, svg } => {
            if let (Some(out), Some(dir)) = (&svg, &store.store) {
                check_outside_store("--svg", out, dir)?;
            }
            with_store!(store, false, |ledger| cmd_timeline(&ledger, &account, &every, &as_of, &svg))
        }
        Command::Verify { store } => match (&store.store, &store.postgres) {
            (Some(dir), _) => match verify(dir) {
                Ok(r) => {
                    println!("ok: {} events, {} accounts", r.n_events, r.n_accounts);
                    Ok(())
                }
                Err(e @ VerifyError::Damaged { .. }) => Err(fail(4, e.into())),
                Err(e) => Err(e.into()),
            },
            (None, Some(url)) => verify_log(&connect_pg(url)?),
            (None, None) => Err(fail(2, anyhow!("give --store DIR or --postgres URL"))),
        },
        Command::Generate { accounts, months, seed, start } => {
            let start = Timestamp::parse(&start).map_err(|e| fail(2, anyhow!("--start {start:?}: {e}")))?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for e in generate(SynthConfig { accounts, months, seed, start }) {
                if let Err(err) = writeln!(out, "{}", e.to_json_line()) {
                    // A closed pipe (e.g. `| head`) is a normal end.
                    if err.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ok(());
                    }
                    return Err(err.into());
                }
            }
            match out.flush() {
                Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
                _ => Ok(()),
            }
        }
    }
}

/// Verifies any store through the contract: gapless positions and every validation rule.
fn verify_log<S: Store>(ledger: &Ledger<S>) -> Result<(), Failure> {
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
            println!("ok: {n} events, {} accounts", state.n_accounts());
            Ok(())
        }
    }
}

fn cmd_score<S: Store>(
    ledger: &Ledger<S>,
    account: &Option<String>,
    as_of: &Option<String>,
    known_at: &Option<String>,
    format: OutputFormat,
) -> Result<(), Failure> {
    let at = instant(as_of, "as-of")?.unwrap_or_else(Timestamp::now);
    let mut view = AsOf::at(at);
    if let Some(k) = instant(known_at, "known-at")? {
        view = view.known_at(k);
    }
    let model = HealthModel::default();
    let scores = match account {
        Some(a) => {
            let id = AccountId::new(a).map_err(|e| fail(2, anyhow!("--account {a:?}: {e}")))?;
            vec![pollster::block_on(score_account(ledger, &model, &id, view))?]
        }
        None => pollster::block_on(score_all(ledger, &model, view))?,
    };
    print_scores(&scores, &model, format)
}

fn cmd_timeline<S: Store>(
    ledger: &Ledger<S>,
    account: &str,
    every: &str,
    as_of: &Option<String>,
    svg: &Option<PathBuf>,
) -> Result<(), Failure> {
    let id = AccountId::new(account).map_err(|e| fail(2, anyhow!("--account {account:?}: {e}")))?;
    let step: f64 = every
        .trim_end_matches('d')
        .parse()
        .ok()
        .filter(|d: &f64| *d >= 1.0 / 24.0 && d.is_finite())
        .ok_or_else(|| fail(2, anyhow!("--every {every:?}: expected days, like 30d")))?;
    let end = instant(as_of, "as-of")?.unwrap_or_else(Timestamp::now);
    let events = ledger.blocking().read_stream(&id)?;
    let Some(first) = events.iter().map(|e| e.occurred_at).min() else {
        return Err(fail(1, anyhow!("account {account} has no events")));
    };
    let mut instants = Vec::new();
    let mut t = first;
    while t <= end && instants.len() < 10_000 {
        instants.push(t);
        t = t.add_days(step);
    }
    instants.push(end);
    let model = HealthModel::default();
    let line = timeline(&model, events, &instants, None);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<22} {:>6} {:<7} {:>7} {:<7}", "as_of", "trust", "band", "health", "band")?;
    for (t, s) in &line {
        writeln!(
            out,
            "{:<22} {:>6.1} {:<7} {:>7.1} {:<7}",
            t.to_string(),
            s.trust.score,
            s.trust.band.name(),
            s.health.score,
            s.health.band.name()
        )?;
    }
    if let Some(path) = svg {
        std::fs::write(path, svg::chart(account, &line, &model))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("rapport: wrote {}", path.display());
    }
    Ok(())
}

/// Refuses a `--skip-invalid` path whose creation would destroy data: one of the input files
/// (creating the rejects file would empty it before it is read), or a file in the store's
/// directory (such as a segment).
fn check_rejects_path(rejects: &Path, inputs: &[PathBuf], store: Option<&Path>) -> Result<(), Failure> {
    let refuse = |why: String| Err(fail(2, anyhow!("--skip-invalid {}: {why}", rejects.display())));
    for input in inputs.iter().filter(|f| f.as_os_str() != "-") {
        if same_file(rejects, input) {
            return refuse(format!("is the input file {}; writing rejects there would empty it", input.display()));
        }
    }
    match store {
        Some(store) => check_outside_store("--skip-invalid", rejects, store),
        None => Ok(()),
    }
}

/// Refuses an output path (`flag`'s) inside the store's directory, where writing it could
/// replace one of the store's files.
fn check_outside_store(flag: &str, out: &Path, store: &Path) -> Result<(), Failure> {
    let parent = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // Through links where the directories exist; as written where they do not yet (an import
    // creates its store).
    let resolve = |p: &Path| p.canonicalize().or_else(|_| std::path::absolute(p));
    if let (Ok(dir), Ok(store_dir)) = (resolve(parent), resolve(store))
        && dir.starts_with(&store_dir)
    {
        return Err(fail(
            2,
            anyhow!("{flag} {}: is inside the store directory {}; write it elsewhere", out.display(), store.display()),
        ));
    }
    Ok(())
}

/// Whether `a` and `b` name one existing file (through links too).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    }
}

fn cmd_import<S: Store>(
    ledger: &Ledger<S>,
    files: &[PathBuf],
    format: InputFormat,
    skip_invalid: Option<PathBuf>,
) -> Result<(), Failure> {
    let options = ImportOptions {
        format: match format {
            InputFormat::Jsonl => Format::Jsonl,
            InputFormat::Csv => Format::Csv,
        },
        skip_invalid: skip_invalid.is_some(),
        ..ImportOptions::default()
    };
    let mut rejects = match &skip_invalid {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
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
        let sink = rejects.as_mut().map(|w| w as &mut dyn Write);
        let result = if file.as_os_str() == "-" {
            let mut once = Some(std::io::stdin());
            import_reader(
                ledger,
                "-",
                || {
                    once.take().ok_or_else(|| {
                        std::io::Error::other("stdin is larger than the in-memory buffer; import a file instead")
                    })
                },
                &options,
                sink,
                &mut on_progress,
            )
        } else {
            import(ledger, file, &options, sink, &mut on_progress)
        };
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        match result {
            Ok(report) => println!("{}", report.summary()),
            Err(e @ ImportError::Invalid { .. }) => return Err(fail(3, e.into())),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(mut w) = rejects {
        w.flush()?;
    }
    Ok(())
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

fn print_scores(scores: &[AccountScores], model: &HealthModel, format: OutputFormat) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => {
            for s in scores {
                let obj = serde_json::json!({
                    "account": s.account,
                    "as_of": s.as_of,
                    "trust": s.scores.trust,
                    "health": s.scores.health,
                    "trend": s.trend,
                    "model": model.stamp(),
                });
                writeln!(out, "{obj}")?;
            }
        }
        OutputFormat::Table => write_table(&mut out, scores)?,
    }
    Ok(())
}
