//! Sealing personal text at rest ([`crate::personal`]): AES-256-GCM (RustCrypto's `aes-gcm`)
//! under a key of the event's account and key month, which the store keeps apart from the log.
//! Destroying the key erases the text; the sealed bytes stay where they are, so nothing
//! committed is rewritten and the log's hash chain still holds. The choice of cipher and its
//! measured cost are in `docs/decisions.md`.
//!
//! The nonce is made from the event's id (its 16 bytes folded to 12): ids are unique in a log
//! and a key seals only its own account's events, so no nonce repeats under a key, and sealing
//! the same event again gives the same bytes. The event's id and account are the associated
//! data: sealed text moved to another event does not open.

use std::collections::HashMap;
use std::hash::Hash;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit};
use thiserror::Error;

use crate::{Envelope, PersonalText, TextState};

use crate::EventId;

/// Bytes of a key.
pub const KEY_BYTES: usize = 32;
/// Bytes the seal adds to the text: the authentication tag.
pub const TAG_BYTES: usize = 16;

/// A key that seals an account's text. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SealKey([u8; KEY_BYTES]);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

/// Why text could not be sealed or opened.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SealError {
    /// The operating system gave no randomness for a new key.
    #[error("no randomness for a new key: {0}")]
    Random(String),
    /// The sealed bytes do not open under the key: they were changed, belong to another
    /// event, or the key is not the one that sealed them.
    #[error("the sealed text does not open: it was altered, moved from another event, or sealed under another key")]
    Forged,
    /// The sealed bytes opened, but are not personal text ([`PersonalText::decode`]).
    #[error("the sealed text opened but is malformed: {0}")]
    Malformed(String),
}

impl SealKey {
    /// A new key from the operating system's randomness (like
    /// [`EventId::new_v7`](crate::EventId::new_v7), the one other thing in this crate that asks
    /// the system for something).
    ///
    /// # Errors
    /// [`SealError::Random`] when the system has none to give.
    pub fn generate() -> Result<Self, SealError> {
        let mut key = [0u8; KEY_BYTES];
        getrandom::fill(&mut key).map_err(|e| SealError::Random(e.to_string()))?;
        Ok(Self(key))
    }

    /// `n` new keys from one request to the operating system's randomness.
    ///
    /// # Errors
    /// [`SealError::Random`] when the system has none to give.
    pub fn generate_many(n: usize) -> Result<Vec<Self>, SealError> {
        let mut bytes = vec![0u8; n * KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| SealError::Random(e.to_string()))?;
        Ok(bytes
            .chunks_exact(KEY_BYTES)
            .map(|c| {
                let mut key = [0u8; KEY_BYTES];
                key.copy_from_slice(c);
                Self(key)
            })
            .collect())
    }

    /// A key from its bytes (as a key store keeps it).
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Self(bytes)
    }

    /// The key's bytes, for its key store.
    pub fn as_bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }

    /// The key made ready to seal and open (its schedule computed once).
    pub fn sealer(&self) -> Sealer {
        Sealer(Aes256Gcm::new(&self.0.into()))
    }
}

/// A key ready to seal and open many texts.
#[derive(Clone)]
pub struct Sealer(Aes256Gcm);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

fn nonce(id: EventId) -> [u8; 12] {
    let b = id.to_bytes();
    let mut n = [0u8; 12];
    n.copy_from_slice(&b[..12]);
    for i in 0..4 {
        n[i] ^= b[12 + i];
    }
    n
}

fn associated(id: EventId, account: &str, out: &mut [u8; 16 + 128]) -> usize {
    out[..16].copy_from_slice(&id.to_bytes());
    let n = account.len().min(128);
    out[16..16 + n].copy_from_slice(&account.as_bytes()[..n]);
    16 + n
}

impl Sealer {
    /// Appends `plain` sealed for the event `id` of `account` to `out`: the ciphertext (as long
    /// as `plain`) and the [`TAG_BYTES`]-byte tag.
    pub fn seal(&self, id: EventId, account: &str, plain: &[u8], out: &mut Vec<u8>) {
        let mut aad = [0u8; 16 + 128];
        let aad_len = associated(id, account, &mut aad);
        let start = out.len();
        out.extend_from_slice(plain);
        let tag = self
            .0
            .encrypt_in_place_detached(&nonce(id).into(), &aad[..aad_len], &mut out[start..])
            // Only a text over GCM's 64 GiB limit fails; event texts are a few KiB at most.
            .unwrap_or_default();
        out.extend_from_slice(&tag);
    }

    /// Opens the personal text sealed for `e`, which holds its stripped form, and puts it back
    /// into the event: its text is then [`TextState::Present`]. What a store's owned read does
    /// with each sealed event.
    ///
    /// # Errors
    /// [`SealError::Forged`] (see [`open`](Self::open)); [`SealError::Malformed`].
    pub fn open_into(&self, e: &mut Envelope, sealed: &[u8]) -> Result<(), SealError> {
        let plain = self.open(e.id, e.account.as_str(), sealed)?;
        let text = PersonalText::decode(&plain).map_err(|why| SealError::Malformed(why.to_string()))?;
        text.restore(&mut e.event, &mut e.meta);
        e.text = TextState::Present;
        Ok(())
    }

    /// Opens what [`seal`](Self::seal) made for the event `id` of `account`.
    ///
    /// # Errors
    /// [`SealError::Forged`] when the bytes, the event or the key differ from the seal's.
    pub fn open(&self, id: EventId, account: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let Some(split) = sealed.len().checked_sub(TAG_BYTES) else {
            return Err(SealError::Forged);
        };
        let mut aad = [0u8; 16 + 128];
        let aad_len = associated(id, account, &mut aad);
        let mut plain = sealed[..split].to_vec();
        let tag = aes_gcm::Tag::clone_from_slice(&sealed[split..]);
        self.0
            .decrypt_in_place_detached(&nonce(id).into(), &aad[..aad_len], &mut plain, &tag)
            .map_err(|_| SealError::Forged)?;
        Ok(plain)
    }
}

/// Keys made ready to open text during one read, by the store's key id: a key's schedule is
/// computed once, not per event. Bounded: past [`MAX`](Self::MAX) keys it starts over, since a
/// read of the whole log meets every key. Its `Debug` shows how many keys it holds, never them.
pub struct Openers<K>(HashMap<K, Sealer>);

impl<K> std::fmt::Debug for Openers<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Openers").field("keys", &self.0.len()).finish()
    }
}

impl<K> Default for Openers<K> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<K: Hash + Eq> Openers<K> {
    /// The most keys kept at once.
    pub const MAX: usize = 256;

    /// The key `id`, `key`, ready to open text.
    pub fn get(&mut self, id: K, key: &SealKey) -> &Sealer {
        match self.get_or_make(id, || Ok::<_, std::convert::Infallible>(key.clone())) {
            Ok(sealer) => sealer,
            Err(never) => match never {},
        }
    }

    /// The key `id`, ready to open text; `key` is asked for the key only when none is kept
    /// for `id`, and what it fails with is returned (nothing is kept then).
    ///
    /// # Errors
    /// `key`'s.
    pub fn get_or_make<E>(&mut self, id: K, key: impl FnOnce() -> Result<SealKey, E>) -> Result<&Sealer, E> {
        if self.0.len() >= Self::MAX && !self.0.contains_key(&id) {
            self.0.clear();
        }
        match self.0.entry(id) {
            std::collections::hash_map::Entry::Occupied(o) => Ok(o.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => Ok(v.insert(key()?.sealer())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_text_opens_only_for_its_event_account_and_key() {
        let key = SealKey::generate().unwrap();
        let s = key.sealer();
        let id = EventId::new_v7();
        let mut sealed = Vec::new();
        s.seal(id, "acme", b"Ann Lee said", &mut sealed);
        assert_eq!(sealed.len(), 12 + TAG_BYTES);
        assert!(!sealed.windows(3).any(|w| w == b"Ann"));
        assert_eq!(s.open(id, "acme", &sealed).unwrap(), b"Ann Lee said");
        let mut again = Vec::new();
        s.seal(id, "acme", b"Ann Lee said", &mut again);
        assert_eq!(again, sealed, "sealing is deterministic per event");
        assert!(s.open(EventId::new_v7(), "acme", &sealed).is_err());
        assert!(s.open(id, "acme2", &sealed).is_err());
        assert!(SealKey::generate().unwrap().sealer().open(id, "acme", &sealed).is_err());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(s.open(id, "acme", &bad).is_err(), "byte {i}");
        }
        assert!(s.open(id, "acme", &sealed[..5]).is_err());
        assert_eq!(format!("{key:?}"), "SealKey(..)", "a key's Debug shows none of it");
    }
}
