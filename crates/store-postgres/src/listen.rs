//! The wake-up for subscribers: a connection of the handle's own that `LISTEN`s on the log's
//! channel and publishes every head an append notifies (`pg_notify` in its transaction, so
//! delivered when it commits) to the handle's [`HeadWatch`]. A notification is only a
//! wake-up: subscribers read by position, which is what keeps them gapless
//! (`docs/postgres.md`, "Subscriptions").

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rapport_core::watch::HeadWatch;
use rapport_core::{Position, StorageError};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::pg_error;

/// The channel an append notifies: one per schema (a log), within the database.
pub(crate) fn channel(schema: Option<&str>) -> String {
    match schema {
        // The schema name is checked against [a-z0-9_]{1,48} when the store connects.
        Some(s) => format!("rapport_log_{s}"),
        None => "rapport_log".to_owned(),
    }
}

/// The listening connection, started by the first wait and restarted after it breaks.
#[derive(Default)]
pub(crate) struct Listener {
    live: tokio::sync::Mutex<Option<Live>>,
}

struct Live {
    /// Kept so the session (and its `LISTEN`) lasts.
    _client: tokio_postgres::Client,
    /// Turns true when the connection ends: waits then re-check the head and listen anew.
    ended: tokio::sync::watch::Receiver<bool>,
}

impl Listener {
    /// Makes sure the handle listens, and returns what tells when that connection ends. Once
    /// this returns, every append that commits is notified to `watch`.
    pub(crate) async fn ensure(
        &self,
        config: &tokio_postgres::Config,
        channel: &str,
        watch: &Arc<HeadWatch>,
    ) -> Result<tokio::sync::watch::Receiver<bool>, StorageError> {
        const OP: &str = "listen for appends";
        let mut live = self.live.lock().await;
        // Live while its connection runs (a task that ended without saying so counts as ended).
        if let Some(l) = live.as_ref()
            && !*l.ended.borrow()
            && l.ended.has_changed().is_ok()
        {
            return Ok(l.ended.clone());
        }
        let (client, mut connection) = tokio::time::timeout(Duration::from_secs(10), config.connect(NoTls))
            .await
            .map_err(|_| StorageError::new(OP, "connecting timed out after 10 s"))?
            .map_err(|e| pg_error(OP, e))?;
        let (ended_tx, ended) = tokio::sync::watch::channel(false);
        let watch = Arc::clone(watch);
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                if let AsyncMessage::Notification(n) = message
                    && let Ok(head) = n.payload().parse::<u64>()
                {
                    watch.publish(Position(head));
                }
            }
            tracing::debug!(target: "rapport.subscribe", "the listening connection ended");
            let _ = ended_tx.send(true);
        });
        client.batch_execute(&format!("LISTEN \"{channel}\"")).await.map_err(|e| pg_error(OP, e))?;
        tracing::debug!(target: "rapport.subscribe", channel, "listening for appends");
        *live = Some(Live { _client: client, ended: ended.clone() });
        Ok(ended)
    }
}

/// A task on the store's runtime that is aborted when the future awaiting it is dropped: a
/// dropped wait must leave nothing running.
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
