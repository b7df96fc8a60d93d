//! A service on rapport: an HTTP API over the file store, with every account's scores kept
//! current by a [`Runner`] that follows the log, and its signals streamed to clients.
//!
//! ```sh
//! cargo run --release --example service                  # store in a temp dir, 127.0.0.1:3000
//! cargo run --release --example service -- DIR 127.0.0.1:8080
//! cargo run --release --example service -- DIR 127.0.0.1:8080 models.json  # a model per segment
//! RAPPORT_RETAIN_DAYS=730 cargo run --release --example service  # erase personal text after two years
//! ```
//!
//! At start it backfills the bundled `examples/data/sample.jsonl` (idempotent: a restart
//! appends nothing), loads the runner's checkpoint if one matches the log and the scoring
//! configuration (else replays the log), catches up, and serves:
//!
//! - `POST /events`: JSON Lines in the canonical form (`docs/event-format.md`), at most 1,000
//!   events and 1 MiB. Appended atomically; the answer comes once the runner has folded them
//!   (read-your-writes), with the touched accounts' scores.
//! - `GET /accounts/{id}`: one account's trust, health and trend now.
//! - `GET /at-risk?n=50`: the accounts most at risk, from the runner's ranking.
//! - `GET /signals`: server-sent events, one `signal` per band change, overdue commitment,
//!   breached SLA… as it happens; each carries the signal's id.
//! - `GET /status`: position, lag behind the log's head, accounts, checkpoint age.
//!
//! Every minute it saves the runner's checkpoint, and the file store's index snapshot once
//! 250,000 events have been logged since the last one, so that a start after a crash reads
//! little of the log. With `RAPPORT_RETAIN_DAYS` set, it runs that retention policy
//! ([`RetentionPolicy`]) at start and every hour: each month's personal text is erased once the
//! whole month is older than that (`docs/privacy.md`, "Retention"); scores do not change. Ctrl-C saves a checkpoint and stops; the next start resumes from it. There is no
//! hand-written tailing or folding here: a [`Subscription`] feeds the runner, a clock task
//! moves its time, and the handlers read it. Under a configuration with segment models, an
//! account whose segment changes model is folded again from its stream after the batch that
//! changed it (read outside the runner's lock).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rapport::core::{DerivedStore, RetentionPolicy, Subscription};
use rapport::health::{Runner, ScoringConfig, Signal};
use rapport::import::Importer;
use rapport::{AccountId, AppendError, ExpectedVersion, FileStore, Ledger, NewEvent, Position, Store, Timestamp};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, watch};

/// The derived blob the runner's checkpoint is saved as, beside the log.
const CHECKPOINT: &str = rapport::health::CHECKPOINT_NAME;
/// Limits on what a client may send or ask for.
const MAX_EVENTS_PER_POST: usize = 1_000;
const MAX_BODY_BYTES: usize = 1 << 20;
const MAX_AT_RISK: usize = 1_000;
/// How often the clock task moves the runner's time, and how often it saves a checkpoint.
const TICK: Duration = Duration::from_secs(1);
const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);
/// How many events past the file store's last index snapshot make the clock task save a new
/// one, so that a start after a crash reads at most about this many events of the log
/// (docs/scaling.md). Appends wait only while its checkpoint is taken.
const INDEX_SNAPSHOT_EVERY_EVENTS: u64 = 250_000;
/// How often the clock task runs the retention policy, if there is one.
const RETENTION_EVERY: Duration = Duration::from_secs(3_600);
/// How long `POST /events` waits for the runner to fold what it appended.
const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(10);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().map_or_else(|| std::env::temp_dir().join("rapport-service"), PathBuf::from);
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:3000").parse()?;

    let config = match args.next() {
        Some(file) => ScoringConfig::from_file(Path::new(&file))?,
        None => ScoringConfig::default(),
    };
    let retention = match std::env::var("RAPPORT_RETAIN_DAYS") {
        Ok(days) => {
            let days: u64 = days.parse().map_err(|_| format!("RAPPORT_RETAIN_DAYS={days:?}: a number of days"))?;
            let keep = Duration::from_secs(days.saturating_mul(86_400));
            Some(RetentionPolicy::new(keep, &format!("retention policy: {days} days"))?)
        }
        Err(_) => None,
    };
    let (store, runner) = prepare(&dir, &config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!(
            "serving {} accounts at http://{} (store {}); Ctrl-C to stop",
            runner.n_accounts(),
            addr,
            dir.display()
        );
        let service = Service::start(store, runner, retention);
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        axum::serve(listener, service.router()).with_graceful_shutdown(stop).await?;
        service.save_checkpoint().await?;
        println!("checkpoint saved at position {}", service.runner().position());
        Ok(())
    })
}

/// Opens the store, backfills the bundled sample, and brings a runner up to the log's head:
/// from the saved checkpoint when it matches, else from the start. History is never
/// signalled: the runner goes live once caught up.
fn prepare(dir: &Path, config: &ScoringConfig) -> Result<(Arc<FileStore>, Runner), Box<dyn std::error::Error>> {
    let ledger = rapport::open(dir)?;
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/sample.jsonl");
    println!("{}", Importer::new(&ledger).file(&sample)?.summary());
    let store = Arc::new(ledger.into_store());

    let started = Instant::now();
    let restored = pollster::block_on(Runner::load_checkpoint_with(&*store, config, CHECKPOINT)).ok().flatten();
    let from_checkpoint = restored.is_some();
    let mut runner = restored.unwrap_or_else(|| Runner::with_config(config, Timestamp::now()));
    // `follow` judges each event at the instant it was committed: after a crash, the signals
    // raised again for events since the checkpoint carry the ids they had.
    let ledger = Ledger::new(Arc::clone(&store));
    pollster::block_on(ledger.scan(runner.position(), |e| runner.follow(e)))?;
    pollster::block_on(runner.refold_from(&*store))?;
    runner.advance(Timestamp::now());
    if !runner.is_live() {
        runner.go_live();
    }
    println!(
        "runner at position {} ({}) in {:.1} ms",
        runner.position(),
        if from_checkpoint { "from the checkpoint" } else { "replayed" },
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok((store, runner))
}

/// What the handlers share.
#[derive(Debug, Clone)]
struct Service(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    store: Arc<FileStore>,
    runner: Mutex<Runner>,
    /// The runner's position after each batch it folds: `POST /events` waits on it.
    folded: watch::Sender<Position>,
    signals: broadcast::Sender<Signal>,
    retention: Option<RetentionPolicy>,
}

impl Service {
    /// Spawns the follower (subscription → runner) and the clock on the current runtime.
    fn start(store: Arc<FileStore>, runner: Runner, retention: Option<RetentionPolicy>) -> Self {
        let (folded, _) = watch::channel(runner.position());
        let (signals, _) = broadcast::channel(1_024);
        let from = runner.position();
        let service = Self(Arc::new(Shared { store, runner: Mutex::new(runner), folded, signals, retention }));
        tokio::spawn(service.clone().follow(from));
        tokio::spawn(service.clone().clock());
        service
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/events", post(post_events))
            .route("/accounts/{id}", get(get_account))
            .route("/at-risk", get(get_at_risk))
            .route("/signals", get(get_signals))
            .route("/status", get(get_status))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self.clone())
    }

    /// The runner, for a moment: never held across an `.await`.
    fn runner(&self) -> MutexGuard<'_, Runner> {
        self.0.runner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Feeds every committed event to the runner, in position order, as appends commit.
    async fn follow(self, from: Position) {
        let mut subscription = Subscription::new(Arc::clone(&self.0.store), from);
        loop {
            let batch = match subscription.next_batch(4_096).await {
                Ok(batch) => batch,
                Err(e) => {
                    eprintln!("subscription stopped at position {}: {e}", subscription.position());
                    return;
                }
            };
            let awaiting = {
                let mut runner = self.runner();
                batch.iter().for_each(|e| runner.follow(&e.view()));
                runner.awaiting_history()
            };
            // Accounts whose segment changed model: their streams are read without the lock
            // (the runner applies nothing meanwhile: this task is its only feeder).
            for account in awaiting {
                let mut history = Vec::new();
                let ledger = Ledger::new(Arc::clone(&self.0.store));
                if let Err(e) = ledger.for_each_in_stream(&account, |e| history.push(e.clone())).await {
                    eprintln!("history of {account} not read: {e}");
                    continue;
                }
                self.runner().refold(&account, &history);
            }
            let (position, signals) = {
                let mut runner = self.runner();
                runner.advance(Timestamp::now());
                (runner.position(), runner.take_signals())
            };
            self.publish(signals);
            self.0.folded.send_replace(position);
        }
    }

    /// Moves the runner's time forward every tick (due dates, SLAs, decay), saves a
    /// checkpoint now and then, and runs the retention policy at start and every hour.
    async fn clock(self) {
        let mut last_saved = Instant::now();
        let mut last_retention: Option<Instant> = None;
        loop {
            if last_retention.is_none_or(|at| at.elapsed() >= RETENTION_EVERY) {
                last_retention = Some(Instant::now());
                self.apply_retention().await;
            }
            tokio::time::sleep(TICK).await;
            let signals = {
                let mut runner = self.runner();
                runner.advance(Timestamp::now());
                runner.take_signals()
            };
            self.publish(signals);
            if last_saved.elapsed() >= CHECKPOINT_EVERY {
                last_saved = Instant::now();
                if let Err(e) = self.save_checkpoint().await {
                    eprintln!("checkpoint not saved: {e}");
                }
                self.save_index_snapshot_if_due().await;
            }
        }
    }

    /// Saves the file store's index snapshot when enough events were logged since the last
    /// one (a clean close saves one too). It blocks while the files are written, so it runs
    /// on a blocking thread.
    async fn save_index_snapshot_if_due(&self) {
        if self.runner().position().0.saturating_sub(self.0.store.index_snapshot_at()) < INDEX_SNAPSHOT_EVERY_EVENTS {
            return;
        }
        let store = Arc::clone(&self.0.store);
        match tokio::task::spawn_blocking(move || store.save_index_snapshot()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => eprintln!("index snapshot not saved: {e}"),
            Err(e) => eprintln!("index snapshot not saved: {e}"),
        }
    }

    /// Runs the retention policy, if any: it erases only when a month has newly passed its
    /// age (a restart does not run it again). Erasing writes and syncs the key file, so it
    /// runs on a blocking thread; appends wait meanwhile.
    async fn apply_retention(&self) {
        let Some(policy) = self.0.retention.clone() else { return };
        let store = Arc::clone(&self.0.store);
        let run = tokio::task::spawn_blocking(move || pollster::block_on(policy.apply(&store, Timestamp::now())));
        match run.await {
            Ok(Ok(Some(erasure))) => {
                let before = erasure.before.map(|t| t.to_string()).unwrap_or_default();
                println!("retention: personal text before {before} erased ({} keys)", erasure.keys_destroyed);
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => eprintln!("retention not run: {e}"),
            Err(e) => eprintln!("retention not run: {e}"),
        }
    }

    fn publish(&self, signals: Vec<Signal>) {
        for signal in signals {
            // No subscriber is no error: signals are derived and the checkpoint resumes them.
            let _ = self.0.signals.send(signal);
        }
    }

    async fn save_checkpoint(&self) -> Result<(), rapport::core::StorageError> {
        let bytes = self.runner().checkpoint(self.0.store.log_id());
        self.0.store.save_derived(CHECKPOINT, &bytes).await?;
        Ok(())
    }
}

/// An error answer: a status and a JSON body naming what was wrong.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<AppendError> for Failure {
    fn from(e: AppendError) -> Self {
        let status = match e {
            AppendError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppendError::IdConflict { .. } | AppendError::WrongExpectedVersion { .. } => StatusCode::CONFLICT,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self(status, e.to_string())
    }
}

/// `POST /events`: JSON Lines, appended as one atomic batch; answers once folded.
async fn post_events(State(service): State<Service>, body: String) -> Result<Response, Failure> {
    let mut batch = Vec::new();
    for (i, line) in body.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        if batch.len() == MAX_EVENTS_PER_POST {
            let message = format!("more than {MAX_EVENTS_PER_POST} events in one request");
            return Err(Failure(StatusCode::PAYLOAD_TOO_LARGE, message));
        }
        let event = NewEvent::from_json_line(line)
            .map_err(|e| Failure(StatusCode::BAD_REQUEST, format!("line {}: {e}", i + 1)))?;
        batch.push(event);
    }
    if batch.is_empty() {
        return Err(Failure(StatusCode::BAD_REQUEST, "no events: send JSON Lines, one event per line".to_owned()));
    }
    let mut touched: Vec<AccountId> = batch.iter().map(|e| e.account.clone()).collect();
    touched.sort();
    touched.dedup();
    let outcome = service.0.store.append(batch, ExpectedVersion::Any).await?;
    // Read-your-writes: wait until the runner has folded what was just committed.
    if let Some(last) = outcome.last_position() {
        let mut folded = service.0.folded.subscribe();
        let waited = tokio::time::timeout(READ_YOUR_WRITES_WAIT, folded.wait_for(|p| *p > last)).await;
        if !matches!(waited, Ok(Ok(_))) {
            let message = format!("appended up to position {last}, but the runner has not folded it yet");
            return Err(Failure(StatusCode::SERVICE_UNAVAILABLE, message));
        }
    }
    let accounts: Vec<_> = {
        let runner = service.runner();
        touched.iter().filter_map(|a| runner.scores(a)).collect()
    };
    let answer = json!({
        "appended": outcome.appended.len(),
        "duplicates": outcome.duplicates.len(),
        "position": outcome.last_position(),
        "accounts": accounts,
    });
    let status = if outcome.appended.is_empty() { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(answer)).into_response())
}

/// `GET /accounts/{id}`.
async fn get_account(State(service): State<Service>, UrlPath(id): UrlPath<String>) -> Result<Response, Failure> {
    let account = AccountId::new(&id).map_err(|e| Failure(StatusCode::BAD_REQUEST, format!("account id: {e}")))?;
    let scores = service.runner().scores(&account);
    match scores {
        Some(scores) => Ok(Json(scores).into_response()),
        None => Err(Failure(StatusCode::NOT_FOUND, format!("account {account} has no events"))),
    }
}

#[derive(Debug, Deserialize)]
struct AtRiskQuery {
    n: Option<usize>,
}

/// `GET /at-risk?n=50`.
async fn get_at_risk(State(service): State<Service>, Query(query): Query<AtRiskQuery>) -> Result<Response, Failure> {
    let n = query.n.unwrap_or(50);
    if n > MAX_AT_RISK {
        return Err(Failure(StatusCode::BAD_REQUEST, format!("n is at most {MAX_AT_RISK}")));
    }
    let list = service.runner().at_risk(n);
    Ok(Json(list).into_response())
}

/// `GET /signals`: server-sent events from now on. A client that falls more than 1,024
/// signals behind gets a `lagged` event saying how many it missed.
async fn get_signals(State(service): State<Service>) -> impl IntoResponse {
    let receiver = service.0.signals.subscribe();
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let event = match receiver.recv().await {
            Ok(signal) => {
                let data = serde_json::to_string(&signal).unwrap_or_default();
                SseEvent::default().event("signal").id(signal.id.to_string()).data(data)
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                SseEvent::default().event("lagged").data(missed.to_string())
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok::<_, std::convert::Infallible>(event), receiver))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `GET /status`: how far the runner trails the log, and how old its checkpoint is.
async fn get_status(State(service): State<Service>) -> Result<Response, Failure> {
    let head = service.0.store.head().await.map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let runner = service.runner();
    let status = json!({
        "head": head,
        "position": runner.position(),
        "lag": runner.lag(head),
        "accounts": runner.n_accounts(),
        "now": runner.now(),
        "live": runner.is_live(),
        "checkpoint_age_seconds": runner.checkpoint_age().map(|age| age.as_secs_f64()),
    });
    Ok(Json(status).into_response())
}

#[cfg(test)]
mod tests {
    //! The service end to end, over HTTP on 127.0.0.1: a plain HTTP/1.1 client on a socket.

    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;

    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// One request on its own connection; the status and the body.
    async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
        let mut socket = TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-ndjson\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        socket.write_all(head.as_bytes()).await.expect("write");
        socket.write_all(body.as_bytes()).await.expect("write");
        let mut answer = String::new();
        socket.read_to_string(&mut answer).await.expect("read");
        let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
        (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
    }

    /// Opens `GET /signals` and returns the next `signal` whose data names `account`.
    async fn next_signal_for(
        addr: SocketAddr,
        account: &str,
        opened: tokio::sync::oneshot::Sender<()>,
    ) -> serde_json::Value {
        let mut socket = TcpStream::connect(addr).await.expect("connect");
        let head = format!("GET /signals HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n\r\n");
        socket.write_all(head.as_bytes()).await.expect("write");
        let mut lines = BufReader::new(socket).lines();
        let mut opened = Some(opened);
        while let Some(line) = lines.next_line().await.expect("read") {
            if line.is_empty()
                && let Some(opened) = opened.take()
            {
                // The end of the answer's headers: the stream is open.
                let _ = opened.send(());
            }
            if let Some(data) = line.strip_prefix("data: ") {
                let signal: serde_json::Value = serde_json::from_str(data).expect("a signal in JSON");
                if signal["account"] == account {
                    return signal;
                }
            }
        }
        panic!("the signal stream ended");
    }

    #[test]
    fn the_service_serves_scores_appends_and_signals_over_http() {
        let dir = TempDir(std::env::temp_dir().join(format!("rapport-service-e2e-{}", std::process::id())));
        let _ = std::fs::remove_dir_all(&dir.0);
        let mut config = ScoringConfig::default();
        let enterprise = rapport::health::HealthModel { id: "enterprise".into(), ..Default::default() };
        config.segments.insert("enterprise".into(), enterprise);
        let (store, runner) = prepare(&dir.0, &config).expect("prepare");
        let sample_accounts = runner.n_accounts();
        assert!(sample_accounts > 0, "the sample was backfilled and folded");
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("address");
            // A retention policy older than the sample: its first run records itself and
            // erases nothing.
            let policy = RetentionPolicy::new(Duration::from_secs(100 * 365 * 86_400), "e2e retention").expect("policy");
            let service = Service::start(store, runner, Some(policy));
            tokio::spawn(axum::serve(listener, service.router()).into_future());

            // Scores of a backfilled account, and the at-risk list.
            let (status, scores) = request(addr, "GET", "/accounts/acct-0", "").await;
            assert_eq!(status, 200, "{scores}");
            assert_eq!(scores["account"], "acct-0");
            assert!(scores["trust"]["score"].is_number(), "{scores}");
            let (status, list) = request(addr, "GET", "/at-risk?n=3", "").await;
            assert_eq!(status, 200);
            assert!(list.as_array().is_some_and(|l| l.len() <= 3), "{list}");
            assert_eq!(request(addr, "GET", "/at-risk?n=100000", "").await.0, 400);
            assert_eq!(request(addr, "GET", "/accounts/nobody-here", "").await.0, 404);

            // A client listening for signals, then a commitment due in two seconds: the runner
            // notices the due date by itself, without another request or event.
            let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
            let listening = tokio::spawn(next_signal_for(addr, "e2e-acme", opened_tx));
            opened_rx.await.expect("the signal stream opened");
            let now = Timestamp::now();
            let due = now.add_nanos(2_000_000_000);
            let lines = format!(
                "{{\"type\":\"touchpoint\",\"account\":\"e2e-acme\",\"occurred_at\":\"{now}\",\"channel\":\"call\"}}\n\
                 {{\"type\":\"commitment_made\",\"account\":\"e2e-acme\",\"occurred_at\":\"{now}\",\"commitment\":\"c-1\",\"title\":\"SSO\",\"due\":\"{due}\"}}\n"
            );
            let (status, answer) = request(addr, "POST", "/events", &lines).await;
            assert_eq!(status, 201, "{answer}");
            assert_eq!(answer["appended"], 2);
            // Read-your-writes: the answer already holds the new account's scores.
            assert_eq!(answer["accounts"][0]["account"], "e2e-acme", "{answer}");
            assert_eq!(request(addr, "GET", "/accounts/e2e-acme", "").await.0, 200);
            // The same lines again: idempotent.
            let (status, again) = request(addr, "POST", "/events", &lines).await;
            assert_eq!((status, again["appended"].clone(), again["duplicates"].clone()), (200, 0.into(), 2.into()));

            let signal = tokio::time::timeout(Duration::from_secs(30), listening)
                .await
                .expect("a signal within 30 s")
                .expect("the listener");
            assert_eq!(signal["kind"], "commitment_overdue", "{signal}");
            assert_eq!(signal["cause"], "time", "{signal}");
            assert_eq!(signal["due"], due.to_string(), "{signal}");
            assert!(signal["id"].is_string());

            // Refusals name what was wrong.
            let (status, refused) = request(addr, "POST", "/events", "{\"type\":\"touchpoint\"}\n").await;
            assert_eq!(status, 400);
            assert!(refused["error"].as_str().is_some_and(|e| e.starts_with("line 1:")), "{refused}");
            let far = now.add_days(400.0);
            let future = format!("{{\"type\":\"touchpoint\",\"account\":\"e2e-acme\",\"occurred_at\":\"{far}\",\"channel\":\"call\"}}");
            assert_eq!(request(addr, "POST", "/events", &future).await.0, 422);

            // A profile moves the account to a segment with its own model: it is folded again
            // from its stream, and the answer (read-your-writes) is already under that model.
            let profiled = format!(
                "{{\"type\":\"account_profiled\",\"account\":\"e2e-acme\",\"occurred_at\":\"{now}\",\"segment\":\"enterprise\"}}\n"
            );
            let (status, answer) = request(addr, "POST", "/events", &profiled).await;
            assert_eq!(status, 201, "{answer}");
            assert_eq!(answer["accounts"][0]["model"]["name"], "enterprise/1", "{answer}");
            let (_, scores) = request(addr, "GET", "/accounts/e2e-acme", "").await;
            assert_eq!(scores["model"]["name"], "enterprise/1", "{scores}");
            assert!(scores["health"]["factors"].is_array(), "{scores}");

            let (status, state) = request(addr, "GET", "/status", "").await;
            assert_eq!(status, 200);
            assert_eq!(state["lag"], 0, "{state}");
            assert_eq!(state["accounts"], sample_accounts + 1, "{state}");

            // A restart resumes from the checkpoint, with the new account and nothing to replay.
            service.save_checkpoint().await.expect("checkpoint");
            let position = service.runner().position();
            let restored =
                Runner::load_checkpoint_with(&*service.0.store, &config, CHECKPOINT).await.expect("a matching checkpoint");
            let restored = restored.expect("a checkpoint was saved");
            assert_eq!(restored.position(), position);
            assert!(restored.scores(&"e2e-acme".parse().expect("id")).is_some());
            let erasures = rapport::core::ErasingStore::erasures(&*service.0.store).await.expect("erasures");
            assert!(erasures.iter().any(|e| e.reason == "e2e retention" && e.keys_destroyed == 0), "{erasures:?}");
        });
    }
}
