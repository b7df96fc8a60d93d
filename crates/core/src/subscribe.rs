//! [`Subscription`]: the log read from a position, then waited on. A cursor, not a queue: the
//! subscriber owns its position, nothing is kept for it in the store, and a dropped one costs
//! nothing. Gapless and without repeats because positions are assigned in commit order and
//! [`Store::read_all`] never skips one (`docs/subscriptions.md`).

use std::collections::VecDeque;

use crate::event::Envelope;
use crate::id::Position;
use crate::store::{READ_LIMIT_MAX, ReadError, Store};

/// How many events a subscription reads from the store at once while it catches up.
const PAGE: usize = 4_096;

/// Every event of a log from a position on, in position order: first the stored ones, then
/// each new one once its append has committed. `S` is the store or a handle to it (`&S`,
/// `Arc<S>`), so a subscription can live in a task of its own.
///
/// ```
/// use std::sync::Arc;
/// use rapport_core::{ExpectedVersion, MemoryStore, NewEvent, Position, Store, Subscription};
/// # let e = |s: &str| NewEvent::from_json_line(&format!(r#"{{"type":"touchpoint","account":"{s}","occurred_at":"2025-03-06T10:00:00Z","channel":"call"}}"#)).unwrap();
/// let store = Arc::new(MemoryStore::new());
/// pollster::block_on(store.append(vec![e("acme")], ExpectedVersion::Any))?;
/// let mut subscription = Subscription::new(Arc::clone(&store), Position(1));
/// // The stored event first…
/// let first = pollster::block_on(subscription.next())?;
/// assert_eq!(first.position, Position(1));
/// // …then each new one as its append commits (here from another thread).
/// let writer = {
///     let store = Arc::clone(&store);
///     std::thread::spawn(move || pollster::block_on(store.append(vec![e("globex")], ExpectedVersion::Any)))
/// };
/// let second = pollster::block_on(subscription.next())?;
/// assert_eq!((second.position, second.account.as_str()), (Position(2), "globex"));
/// writer.join().unwrap()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Subscription<S> {
    store: S,
    /// The position of the next event to yield.
    next: Position,
    /// Events read and not yet yielded, from `next` on.
    read: VecDeque<Envelope>,
}

impl<S: Store> Subscription<S> {
    /// A subscription to `store`'s log from position `from` (1 for the whole log; 0 means 1).
    pub fn new(store: S, from: Position) -> Self {
        Self { store, next: Position(from.0.max(1)), read: VecDeque::new() }
    }

    /// The position of the next event this subscription yields: where to resume after it
    /// is dropped.
    pub fn position(&self) -> Position {
        self.next
    }

    /// The next event in position order: a stored one, or, once everything stored has been
    /// yielded, the next to commit (waiting for it, without polling).
    ///
    /// # Errors
    /// A read failed, or the store closed while waiting. The subscription keeps its place:
    /// calling again retries from the same position.
    pub async fn next(&mut self) -> Result<Envelope, ReadError> {
        loop {
            if let Some(e) = self.read.pop_front() {
                debug_assert_eq!(e.position, self.next, "a subscription yields every position once, in order");
                self.next = e.position.next();
                return Ok(e);
            }
            self.fill(PAGE).await?;
        }
    }

    /// Every event available now, up to `limit` (at least one: when none is, it waits for the
    /// next to commit). For a consumer that handles events in batches.
    ///
    /// # Errors
    /// As [`next`](Self::next).
    pub async fn next_batch(&mut self, limit: usize) -> Result<Vec<Envelope>, ReadError> {
        let limit = limit.clamp(1, READ_LIMIT_MAX);
        if self.read.is_empty() {
            self.fill(limit).await?;
        }
        let n = self.read.len().min(limit);
        let batch: Vec<Envelope> = self.read.drain(..n).collect();
        if let Some(last) = batch.last() {
            debug_assert_eq!(batch[0].position, self.next, "a subscription yields every position once, in order");
            self.next = last.position.next();
        }
        Ok(batch)
    }

    /// Reads at least one event into `read`, waiting for a commit when the log holds none
    /// past `next`.
    async fn fill(&mut self, limit: usize) -> Result<(), ReadError> {
        loop {
            let page = self.store.read_all(self.next, limit).await?;
            if let Some(first) = page.first() {
                // Gapless: the store's pages never skip a position.
                assert_eq!(first.position, self.next, "read_all skipped a position");
                self.read.extend(page);
                return Ok(());
            }
            tracing::trace!(target: "rapport.subscribe", position = self.next.0, "caught up: waiting for a commit");
            self.store.wait_past(Position(self.next.0 - 1)).await?;
        }
    }
}
