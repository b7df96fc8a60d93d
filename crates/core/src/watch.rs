//! [`HeadWatch`]: a log's committed head, and the tasks waiting for it to move. What a store's
//! [`Store::wait_past`](crate::Store::wait_past) is built on, and so what a subscription
//! waits on when it has read everything (`docs/subscriptions.md`).
//!
//! Runtime-agnostic: a waiting future registers its task's waker and is woken when the head
//! is published past the position it waits for, or when the watch closes. A dropped wait
//! leaves nothing behind, and publishing never blocks on a waiter.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::id::Position;

/// A log's committed head, published by the store as appends commit, and waited on by
/// subscribers.
#[derive(Debug)]
pub struct HeadWatch {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    head: u64,
    /// Why the watch closed (the store was dropped or failed): every wait ends with it.
    closed: Option<String>,
    next_key: u64,
    /// The wakers of pending waits, by the key each wait holds.
    waiters: Vec<(u64, Waker)>,
}

/// Why a wait ended without the head moving past it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed(pub String);

impl HeadWatch {
    /// A watch whose head is `head`.
    pub fn new(head: Position) -> Self {
        Self { inner: Mutex::new(Inner { head: head.0, closed: None, next_key: 0, waiters: Vec::new() }) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // No code panics while holding the lock; a poisoned lock still holds a valid state.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last head published.
    pub fn head(&self) -> Position {
        Position(self.lock().head)
    }

    /// The head is now `head` (a head never moves back: an older one is ignored). Wakes the
    /// waits it satisfies.
    pub fn publish(&self, head: Position) {
        let woken: Vec<Waker> = {
            let mut inner = self.lock();
            if head.0 <= inner.head {
                return;
            }
            inner.head = head.0;
            // Every pending wait is for a position below some head; waking them all is simple,
            // and each re-checks its own position.
            inner.waiters.drain(..).map(|(_, w)| w).collect()
        };
        for w in woken {
            w.wake();
        }
    }

    /// Ends every wait, now and later, with `why`.
    pub fn close(&self, why: impl Into<String>) {
        let woken: Vec<Waker> = {
            let mut inner = self.lock();
            if inner.closed.is_none() {
                inner.closed = Some(why.into());
            }
            inner.waiters.drain(..).map(|(_, w)| w).collect()
        };
        for w in woken {
            w.wake();
        }
    }

    /// Waits until the head is past `after`; resolves to the head then, or to why the watch
    /// closed. Resolves at once if the head already is past `after`.
    pub fn wait_past(&self, after: Position) -> WaitPast<'_> {
        WaitPast { watch: self, after: after.0, key: None }
    }
}

/// The future of [`HeadWatch::wait_past`].
#[derive(Debug)]
pub struct WaitPast<'w> {
    watch: &'w HeadWatch,
    after: u64,
    /// Its entry among the watch's waiters, once it has waited.
    key: Option<u64>,
}

impl Future for WaitPast<'_> {
    type Output = Result<Position, Closed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut inner = this.watch.lock();
        if inner.head > this.after {
            let head = inner.head;
            drop(inner);
            this.forget();
            return Poll::Ready(Ok(Position(head)));
        }
        if let Some(why) = &inner.closed {
            let why = why.clone();
            drop(inner);
            this.forget();
            return Poll::Ready(Err(Closed(why)));
        }
        match this.key.and_then(|k| inner.waiters.iter_mut().find(|(key, _)| *key == k)) {
            Some((_, w)) => w.clone_from(cx.waker()),
            None => {
                let key = inner.next_key;
                inner.next_key += 1;
                inner.waiters.push((key, cx.waker().clone()));
                this.key = Some(key);
            }
        }
        Poll::Pending
    }
}

impl WaitPast<'_> {
    /// Takes this wait's waker out of the watch, if it is still there.
    fn forget(&mut self) {
        if let Some(k) = self.key.take() {
            self.watch.lock().waiters.retain(|(key, _)| *key != k);
        }
    }
}

impl Drop for WaitPast<'_> {
    fn drop(&mut self) {
        self.forget();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_resolves_once_the_head_passes_it_and_a_dropped_wait_leaves_nothing() {
        let watch = std::sync::Arc::new(HeadWatch::new(Position(3)));
        assert_eq!(pollster::block_on(watch.wait_past(Position(2))), Ok(Position(3)));
        let w = std::sync::Arc::clone(&watch);
        let waiter = std::thread::spawn(move || pollster::block_on(w.wait_past(Position(3))));
        // Older heads are ignored; the waiter keeps waiting.
        watch.publish(Position(2));
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!waiter.is_finished());
        watch.publish(Position(5));
        assert_eq!(waiter.join().unwrap(), Ok(Position(5)));
        // A wait polled once and dropped takes its waker with it.
        let mut pending = Box::pin(watch.wait_past(Position(9)));
        let waker = Waker::noop();
        assert!(pending.as_mut().poll(&mut Context::from_waker(waker)).is_pending());
        assert_eq!(watch.lock().waiters.len(), 1);
        drop(pending);
        assert_eq!(watch.lock().waiters.len(), 0);
        watch.close("closed");
        assert_eq!(pollster::block_on(watch.wait_past(Position(9))), Err(Closed("closed".into())));
        assert_eq!(pollster::block_on(watch.wait_past(Position(1))), Ok(Position(5)));
    }
}
