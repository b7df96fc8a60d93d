//! An append on its way to disk: the [`Job`] handed to the writer thread, and the one-shot
//! [`Completion`] the writer fills in and the caller's [`AppendFuture`] waits on.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use rapport_core::{AppendError, AppendOutcome, NewEvent, StreamVersion, Timestamp};

/// What the writer thread is asked to do, in order.
pub(crate) enum ToWriter {
    /// Write a decided append.
    Append(Job),
    /// Make everything written durable, record the head record there, and answer where the
    /// log ends (for an index snapshot saved while the store runs).
    Checkpoint(std::sync::mpsc::Sender<Result<crate::snapshot::Extent, String>>),
    /// Answer once every append sent before is written (or failed): an erasure waits so, under
    /// the append lock, for the keys in flight to reach the key file.
    Barrier(std::sync::mpsc::Sender<()>),
}

/// A decided append on its way to the writer thread, which encodes it into one frame.
pub(crate) struct Job {
    pub(crate) events: Arc<Vec<(NewEvent, StreamVersion)>>,
    /// The events' personal text, sealed (a log of format 4; nothing before).
    pub(crate) sealed: crate::sealing::Sealed,
    pub(crate) first_position: u64,
    pub(crate) recorded_at: Timestamp,
    pub(crate) done: Completion,
    pub(crate) outcome: AppendOutcome,
}

#[derive(Default)]
struct Slot {
    result: Option<Result<AppendOutcome, AppendError>>,
    waker: Option<Waker>,
}

#[derive(Clone, Default)]
pub(crate) struct Completion(Arc<Mutex<Slot>>);

impl Completion {
    pub(crate) fn complete(&self, result: Result<AppendOutcome, AppendError>) {
        let waker = {
            let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
            slot.result = Some(result);
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

pub(crate) struct Pending(pub(crate) Completion);

impl Future for Pending {
    type Output = Result<AppendOutcome, AppendError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = (self.0).0.lock().unwrap_or_else(|p| p.into_inner());
        match slot.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// The append future: either decided at submission or waiting on the writer.
pub(crate) enum AppendFuture {
    Ready(Option<Result<AppendOutcome, AppendError>>),
    Waiting(Pending),
}

impl Future for AppendFuture {
    type Output = Result<AppendOutcome, AppendError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            AppendFuture::Ready(r) => Poll::Ready(r.take().unwrap_or_else(|| Ok(AppendOutcome::default()))),
            AppendFuture::Waiting(p) => Pin::new(p).poll(cx),
        }
    }
}
