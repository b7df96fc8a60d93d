//! The file store under an async host: appends, reads and a subscription driven from a tokio
//! current-thread runtime, while a timer on the same runtime keeps ticking. A future that
//! blocked the runtime's one thread on disk I/O (an fsync, a wait for the writer) would stop
//! the ticks for as long as it blocked.

#[path = "support/common.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rapport_core::{ExpectedVersion, Position, Store, Subscription};
use rapport_store_file::FileStore;

use common::{TempDir, history};

#[test]
fn appends_reads_and_a_subscription_never_stall_a_current_thread_runtime() {
    let dir = TempDir::new("async-host");
    let store = Arc::new(FileStore::open(dir.path()).expect("open"));
    let events = history(20, 12, 5);
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
            let total = events.len();
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
        // Durable appends of a few events each: every one waits for an fsync on the writer
        // thread, which must not hold this thread.
        for chunk in events.chunks(25) {
            store.append(chunk.to_vec(), ExpectedVersion::Any).await.expect("append");
            let page = store.read_all(Position(1), 4_096).await.expect("read");
            assert!(!page.is_empty());
        }
        let seen = follower.await.expect("follower");
        let elapsed = started.elapsed();
        ticker.abort();
        (elapsed, seen)
    });
    assert_eq!(seen, events.len());
    let ticks = ticks.load(Ordering::Relaxed);
    let ms = elapsed.as_millis() as u64;
    // The timer ran alongside: at least one tick for every ten milliseconds of appending (a
    // blocked thread would tick once per append at most, and not at all during it).
    assert!(ticks * 10 >= ms, "{ticks} ticks in {ms} ms: the runtime's thread was blocked");
    eprintln!("{} appends of 25 events in {ms} ms, {ticks} timer ticks", events.len().div_ceil(25));
}
