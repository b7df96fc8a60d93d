//! Erasing personal text in PostgreSQL (`docs/privacy.md`; `docs/postgres.md`, "Personal
//! text"): one transaction under the append lock deletes the keys and records the erasure;
//! then the key table is rewritten (`VACUUM FULL`), so the deleted keys' bytes leave its
//! files rather than wait in dead rows.
//!
//! Rows written before schema version 6 hold their text in the clear (`text_in_clear`). The
//! erasure strips those it reaches in the same transaction: their payload is written again in
//! the stripped form and their `key_id` set to an id the sequence gave and no key ever had, so
//! they read as erased like every other. This is the one place a committed row changes; only
//! the text goes. The table is vacuumed afterwards.

use deadpool_postgres::Pool;
use rapport_core::erase::check_reason;
use rapport_core::personal::{key_month, key_month_start};
use rapport_core::{AccountId, EraseError, ErasingStore, Erasure, PersonalText, ReadError, StorageError, Timestamp};

use crate::rows::event_of;
use crate::sql::LOCK_SQL;
use crate::{PgStore, pg_error, storage};

/// What an erasure reaches.
enum Scope {
    /// All of an account's text.
    Account(AccountId),
    /// Every account's text of events that occurred before this key month.
    Before(i32),
}

/// Rows in the clear read per round trip while stripping them.
const STRIP_PAGE: i32 = 1_000;

const OP: &str = "erase";

impl ErasingStore for PgStore {
    fn erase(&self, account: &AccountId, reason: &str) -> impl Future<Output = Result<Erasure, EraseError>> + Send {
        self.erase_scope(Scope::Account(account.clone()), reason)
    }

    fn erase_before(
        &self,
        before: Timestamp,
        reason: &str,
    ) -> impl Future<Output = Result<Erasure, EraseError>> + Send {
        self.erase_scope(Scope::Before(key_month(before)), reason)
    }

    fn erasures(&self) -> impl Future<Output = Result<Vec<Erasure>, ReadError>> + Send {
        const OP: &str = "list erasures";
        let pool = self.inner.pool.clone();
        let fut = self.spawn(OP, async move {
            let client = pool.get().await.map_err(|e| storage(OP, e))?;
            client
                .query(
                    "SELECT at_ns, account, before_ns, reason, keys_destroyed FROM rapport_erasures ORDER BY seq",
                    &[],
                )
                .await
                .map_err(|e| pg_error(OP, e))
        });
        async move {
            let rows = fut.await?;
            rows.iter()
                .map(|r| {
                    let account = match r.get::<_, Option<&str>>(1) {
                        Some(a) => Some(AccountId::new(a).map_err(|e| ReadError::Corrupt {
                            location: "rapport_erasures".into(),
                            reason: format!("account {a:?}: {e}"),
                        })?),
                        None => None,
                    };
                    Ok(Erasure::new(
                        Timestamp::from_unix_nanos(r.get(0)),
                        account,
                        r.get::<_, Option<i64>>(2).map(Timestamp::from_unix_nanos),
                        r.get(3),
                        r.get::<_, i64>(4) as u64,
                    ))
                })
                .collect()
        }
    }
}

impl PgStore {
    fn erase_scope(&self, scope: Scope, reason: &str) -> impl Future<Output = Result<Erasure, EraseError>> + Send {
        let checked = check_reason(reason);
        let pool = self.inner.pool.clone();
        let lock = self.inner.lock_key;
        let reason = reason.to_owned();
        let task = checked.map(|()| self.runtime().spawn(erase_tx(pool, lock, scope, reason)));
        async move { task?.await.map_err(|e| storage(OP, format!("task failed: {e}")))? }
    }
}

/// Deletes the scope's keys, strips its rows in the clear and records the erasure, in one
/// transaction under the append lock (so no append is between deciding and committing, and
/// none makes or uses a key meanwhile); then rewrites the key table.
async fn erase_tx(pool: Pool, lock: i64, scope: Scope, reason: String) -> Result<Erasure, EraseError> {
    let db = |e: tokio_postgres::Error| EraseError::Storage(pg_error(OP, e));
    let mut client = pool.get().await.map_err(|e| storage(OP, e))?;
    let tx = client.transaction().await.map_err(db)?;
    tx.execute(LOCK_SQL, &[&lock]).await.map_err(db)?;
    let destroyed = match &scope {
        Scope::Account(account) => {
            let known = tx
                .query_opt("SELECT 1 FROM rapport_accounts WHERE account = $1", &[&account.as_str()])
                .await
                .map_err(db)?;
            if known.is_none() {
                return Err(EraseError::UnknownAccount(account.clone()));
            }
            tx.execute("DELETE FROM rapport_keys WHERE account = $1", &[&account.as_str()]).await.map_err(db)?
        }
        Scope::Before(month) => tx.execute("DELETE FROM rapport_keys WHERE month < $1", &[month]).await.map_err(db)?,
    };
    let stripped = strip_rows_in_clear(&tx, &scope).await?;
    let (account, before) = match &scope {
        Scope::Account(a) => (Some(a.clone()), None),
        Scope::Before(month) => (None, Some(key_month_start(*month))),
    };
    let row = tx
        .query_one(
            "INSERT INTO rapport_erasures (at_ns, account, before_ns, reason, keys_destroyed)
             VALUES ((extract(epoch from clock_timestamp()) * 1000000)::bigint * 1000, $1, $2, $3, $4)
             RETURNING at_ns",
            &[
                &account.as_ref().map(AccountId::as_str),
                &before.map(Timestamp::unix_nanos),
                &reason,
                &(destroyed as i64),
            ],
        )
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    tracing::info!(keys_destroyed = destroyed, rows_stripped = stripped, "erased personal text");
    // The erasure stands; rewriting the tables keeps the destroyed keys' (and stripped rows')
    // bytes out of their files. A failure here is logged, not returned: `docs/postgres.md`
    // says how to run it by hand.
    let mut vacuum = vec!["VACUUM FULL rapport_keys"];
    if stripped > 0 {
        vacuum.push("VACUUM rapport_events");
    }
    for statement in vacuum {
        if let Err(e) = client.batch_execute(statement).await {
            tracing::warn!(error = %pg_error(OP, e), statement, "erasure committed; vacuuming after it failed");
        }
    }
    Ok(Erasure::new(Timestamp::from_unix_nanos(row.get(0)), account, before, reason, destroyed))
}

/// Strips the rows in the clear (written before schema version 6) that `scope` reaches:
/// those with personal text get their stripped payload and an id no key has; all lose the
/// flag, so no later erasure reads them again. Returns how many had text.
async fn strip_rows_in_clear(tx: &tokio_postgres::Transaction<'_>, scope: &Scope) -> Result<u64, EraseError> {
    let db = |e: tokio_postgres::Error| EraseError::Storage(pg_error(OP, e));
    let (filter, param): (&str, Box<dyn tokio_postgres::types::ToSql + Sync + Send>) = match scope {
        Scope::Account(a) => ("account = $1", Box::new(a.as_str().to_owned())),
        Scope::Before(month) => ("occurred_at_ns < $1", Box::new(key_month_start(*month).unix_nanos())),
    };
    let select = format!(
        "SELECT type, id, account, occurred_at_ns, payload, schema_version, position FROM rapport_events
         WHERE text_in_clear AND {filter} AND position > $2 ORDER BY position LIMIT {STRIP_PAGE}"
    );
    // The id the stripped rows point at: the sequence's, so no key ever has it; one for the
    // whole erasure, taken when the first row with text turns up.
    let mut marker: Option<i64> = None;
    let mut after = 0i64;
    let mut stripped = 0u64;
    loop {
        let rows = tx.query(&select, &[&*param, &after]).await.map_err(db)?;
        let Some(last) = rows.last() else { return Ok(stripped) };
        after = last.get(6);
        // Per row: its position, and its stripped payload and schema version if it had text.
        let mut positions: Vec<i64> = Vec::with_capacity(rows.len());
        let mut payloads: Vec<Option<String>> = Vec::with_capacity(rows.len());
        let mut versions: Vec<Option<i16>> = Vec::with_capacity(rows.len());
        for r in &rows {
            let position: i64 = r.get(6);
            let mut e = event_of(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)).map_err(|why| {
                EraseError::Storage(StorageError::new(OP, format!("rapport_events position {position}: {why}")))
            })?;
            let had_text = PersonalText::is_in(&e.event, &e.meta);
            if had_text {
                PersonalText::take(&mut e.event, &mut e.meta);
                stripped += 1;
            }
            positions.push(position);
            payloads.push(had_text.then(|| e.to_body_json()));
            versions.push(had_text.then(|| i16::try_from(e.event.kind().schema_version()).unwrap_or(i16::MAX)));
        }
        if marker.is_none() && payloads.iter().any(Option::is_some) {
            marker = Some(tx.query_one("SELECT nextval('rapport_key_ids')", &[]).await.map_err(db)?.get(0));
        }
        // One write a row: every row loses the flag; those with text get their stripped form.
        tx.execute(
            "UPDATE rapport_events AS r SET text_in_clear = false,
                 payload = COALESCE(x.payload, r.payload),
                 schema_version = COALESCE(x.version, r.schema_version),
                 key_id = CASE WHEN x.payload IS NULL THEN r.key_id ELSE $4 END
             FROM unnest($1::bigint[], $2::text[], $3::smallint[]) AS x(position, payload, version)
             WHERE r.position = x.position",
            &[&positions, &payloads, &versions, &marker],
        )
        .await
        .map_err(db)?;
    }
}
