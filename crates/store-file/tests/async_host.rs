//! The file store under an async host: appends, reads and a subscription driven from a tokio
//! current-thread runtime, while a timer on the same runtime keeps ticking. A future that
//! blocked the runtime's one thread on disk I/O (an fsync, a wait for the writer) would stop
//! the ticks for as long as it blocked; the file system here makes every fsync slow
//! ([`SYNC`]), so such a stall cannot hide in the noise. Every append makes a key (its events
//! carry personal text, for an account not seen before), and the key file's fsync must not
//! hold the runtime either.

#[path = "support/faulty.rs"]
mod faulty;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rapport_core::{
    AccountId, Channel, Event, ExpectedVersion, Metadata, NewEvent, Position, Store, Subscription, Timestamp,
};

use faulty::{FaultyVfs, open_mem};

/// How long each fsync takes.
const SYNC: Duration = Duration::from_millis(20);

#[test]
fn appends_reads_and_a_subscription_never_stall_a_current_thread_runtime() {
    let vfs = FaultyVfs::new();
    vfs.slow_syncs(SYNC);
    let store = Arc::new(open_mem(&vfs).expect("open"));
    // Who recorded each touchpoint is personal text, sealed under a key for its account and
    // month: a new account each batch needs a new key.
    let at = Timestamp::from_unix_seconds(1_700_000_000);
    let by = Metadata::new().with_actor("Ada Lovelace").expect("actor");
    let batches: Vec<Vec<NewEvent>> = (0..12)
        .map(|i| {
            let account = AccountId::new(&format!("acct-{i}")).expect("account");
            (0..25)
                .map(|_| {
                    NewEvent::new(account.clone(), at, Event::TouchpointHeld { channel: Channel::Call })
                        .with_meta(by.clone())
                })
                .collect()
        })
        .collect();
    let total: usize = batches.iter().map(Vec::len).sum();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    let ticks = Arc::new(AtomicU64::new(0));
    let (elapsed, seen) = runtime.block_on(async {
        let ticker = {
            let ticks = Arc::clone(&ticks);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        // A subscriber on the same thread, following every append.
        let follower = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut subscription = Subscription::new(store, Position(1));
                let mut seen = 0;
                while seen < total {
                    seen += subscription.next_batch(1_000).await.expect("subscription").len();
                }
                seen
            })
        };
        let started = Instant::now();
        // Durable appends: every one waits for a slow fsync on the writer thread, which must
        // not hold this thread; then the page it appended is read back.
        let mut next = Position(1);
        for batch in batches {
            let n = batch.len();
            store.append(batch, ExpectedVersion::Any).await.expect("append");
            let page = store.read_all(next, n).await.expect("read");
            assert_eq!(page.len(), n);
            assert!(page.iter().all(|e| e.meta.actor() == Some("Ada Lovelace")), "the actor reads back");
            next = Position(next.0 + n as u64);
        }
        let seen = follower.await.expect("follower");
        let elapsed = started.elapsed();
        ticker.abort();
        (elapsed, seen)
    });
    assert_eq!(seen, total);
    let ticks = ticks.load(Ordering::Relaxed);
    let ms = elapsed.as_millis() as u64;
    assert!(ms >= 12 * SYNC.as_millis() as u64, "{ms} ms for 12 appends: each waits for its fsync");
    // The ticker keeps its pace only while nothing blocks this thread: an fsync taken on it
    // for each append would hold the ticks back below this bound.
    assert!(ticks * 3 >= ms, "{ticks} ticks in {ms} ms: the runtime's thread was blocked");
    eprintln!("12 appends of 25 events in {ms} ms, {ticks} timer ticks");
}
