//! Identifier newtypes: accounts, events, item keys, stream versions and log positions.

use std::fmt;
use std::sync::Arc;

use thiserror::Error;
use uuid::Uuid;

/// The longest account id or item key, in bytes.
pub const KEY_BYTES_MAX: usize = 128;

/// Why a string was refused as an [`AccountId`] or an item key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseIdError {
    /// The string was empty.
    #[error("must not be empty")]
    Empty,
    /// The string was longer than [`KEY_BYTES_MAX`] bytes.
    #[error("is {len} bytes long, more than the {max} allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The string held a control character (or was otherwise unprintable).
    #[error("holds the control character {ch:?} at byte {at}")]
    ControlCharacter {
        /// The offending character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
    /// The string was not a UUID.
    #[error("is not a UUID: {reason}")]
    NotUuid {
        /// What the UUID parser said.
        reason: String,
    },
}

#[inline(always)]
pub(crate) fn check_key(s: &str) -> Result<(), ParseIdError> {
    // The usual id, pure ASCII without controls, is checked where it is read (a scan checks
    // several an event); anything else goes the long way.
    if !s.is_empty() && s.len() <= KEY_BYTES_MAX && crate::bytes::printable_ascii(s.as_bytes()) {
        return Ok(());
    }
    check_key_slowly(s)
}

/// [`check_key`]'s long way: which rule `s` breaks, if any.
#[cold]
fn check_key_slowly(s: &str) -> Result<(), ParseIdError> {
    if s.is_empty() {
        return Err(ParseIdError::Empty);
    }
    if s.len() > KEY_BYTES_MAX {
        return Err(ParseIdError::TooLong { len: s.len(), max: KEY_BYTES_MAX });
    }
    if let Some((at, ch)) = s.char_indices().find(|(_, c)| c.is_control()) {
        return Err(ParseIdError::ControlCharacter { ch, at });
    }
    Ok(())
}

/// The multiplier of [`stable_hash`].
const STABLE_K: u64 = 0x9e37_79b9_7f4a_7c15;

/// One word of [`stable_hash`]: the running hash `h` with the next eight bytes `word` mixed in.
#[inline]
pub(crate) fn stable_step(h: u64, word: u64) -> u64 {
    (h.rotate_left(23) ^ word).wrapping_mul(STABLE_K)
}

/// A stable 64-bit hash of a key's text. Frozen: projections persist it in checkpoints, so it
/// must never change. Eight bytes per multiply-rotate step (`stable_step`, starting from the
/// length), then an avalanche.
pub fn stable_hash(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let mut h: u64 = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = stable_step(h, u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        h = stable_step(h, tail_word(rest));
    }
    h ^= h >> 32;
    h = h.wrapping_mul(STABLE_K);
    h ^ (h >> 29)
}

/// The up-to-seven trailing bytes as one word, without a loop or a memcpy call: two overlapping
/// reads cover every length, and the length is mixed in.
#[inline]
pub(crate) fn tail_word(rest: &[u8]) -> u64 {
    let n = rest.len();
    let word = if n >= 4 {
        let lo = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let hi = u32::from_le_bytes([rest[n - 4], rest[n - 3], rest[n - 2], rest[n - 1]]);
        u64::from(lo) | (u64::from(hi) << 32)
    } else if n > 0 {
        u64::from(rest[0]) | (u64::from(rest[n / 2]) << 8) | (u64::from(rest[n - 1]) << 16)
    } else {
        0
    };
    word ^ ((n as u64) << 59)
}

/// Shares one allocation among keys of the same text (account ids, commitment and escalation
/// keys, survey keys), for parsers that read many events: fewer allocations, and equal keys
/// then compare by pointer. It remembers at most [`Interner::KEYS_MAX`] texts, then starts over.
///
/// ```
/// use rapport_core::{AccountId, Interner};
/// let mut interner = Interner::default();
/// let a = AccountId::new_in("acme", &mut interner)?;
/// let b = AccountId::new_in("acme", &mut interner)?;
/// assert_eq!(a, b);
/// # Ok::<(), rapport_core::ParseIdError>(())
/// ```
#[derive(Debug, Default)]
pub struct Interner {
    /// By [`stable_hash`], which anyone can aim at one value: the map's own hashing is seeded.
    /// Each text's keyed hash is computed when an account id first needs it.
    texts: crate::hash::KeyedMap<u64, (Arc<str>, Option<KeyedHash>)>,
    /// The metadata of the last line parsed with this interner that had some (and no tags),
    /// shared by the next lines that carry the same.
    pub(crate) last_meta: crate::meta::Metadata,
}

impl Interner {
    /// The most texts remembered at once.
    pub const KEYS_MAX: usize = 1 << 16;

    /// How many texts it remembers now.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Whether it remembers none.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    fn get(&mut self, hash: u64, s: &str) -> Option<&mut (Arc<str>, Option<KeyedHash>)> {
        self.texts.get_mut(&hash).filter(|(t, _)| &**t == s)
    }

    fn insert(&mut self, hash: u64, text: &Arc<str>, keyed: Option<KeyedHash>) {
        if self.texts.len() >= Self::KEYS_MAX {
            self.texts.clear();
        }
        self.texts.insert(hash, (Arc::clone(text), keyed));
    }
}

/// A hash of a key's text under a random per-process key ([`crate::hash`]).
///
/// [`stable_hash`] is frozen and public, so anyone can write many texts that share one: maps
/// hashed by it alone could be flooded into one bucket and slow to a crawl. Account ids are
/// hashed by this one instead, wherever they key a map (validation state, store indexes,
/// portfolios); it is computed once per key, like the stable hash, and never persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct KeyedHash(u64);

impl KeyedHash {
    fn of(s: &str) -> Self {
        Self(crate::hash::keyed_text_hash(s))
    }
}

macro_rules! key_type {
    ($(#[$doc:meta])* $name:ident, $map_hash:ty, $hashing:literal) => {
        $(#[$doc])*
        ///
        /// Non-empty, at most [`KEY_BYTES_MAX`] bytes, without control characters. Cloning is
        /// cheap: the text is shared. Its [`stable_hash`] is computed once, at construction, so
        /// comparing keys rarely touches the text.
        #[doc = $hashing]
        #[derive(Clone)]
        pub struct $name {
            hash: u64,
            map_hash: $map_hash,
            text: Arc<str>,
        }

        impl $name {
            /// Checks `s` and wraps it.
            ///
            /// # Errors
            /// [`ParseIdError`] when `s` is empty, too long or holds a control character.
            pub fn new(s: &str) -> Result<Self, ParseIdError> {
                check_key(s)?;
                Ok(Self { hash: stable_hash(s), map_hash: <$map_hash>::of(s), text: Arc::from(s) })
            }

            /// Like [`new`](Self::new), sharing the text with earlier keys of the same text
            /// that went through `interner`.
            ///
            /// # Errors
            /// [`ParseIdError`] when `s` is empty, too long or holds a control character.
            pub fn new_in(s: &str, interner: &mut Interner) -> Result<Self, ParseIdError> {
                let hash = stable_hash(s);
                if let Some((text, keyed)) = interner.get(hash, s) {
                    return Ok(Self { hash, map_hash: <$map_hash>::interned(keyed, s), text: Arc::clone(text) });
                }
                check_key(s)?;
                let text: Arc<str> = Arc::from(s);
                let mut keyed = None;
                let map_hash = <$map_hash>::interned(&mut keyed, s);
                interner.insert(hash, &text, keyed);
                Ok(Self { hash, map_hash, text })
            }

            /// Wraps `s`, which was checked already (a view's text).
            pub(crate) fn from_checked(s: &str) -> Self {
                debug_assert!(check_key(s).is_ok());
                Self { hash: stable_hash(s), map_hash: <$map_hash>::of(s), text: Arc::from(s) }
            }

            /// The text of the id.
            pub fn as_str(&self) -> &str {
                &self.text
            }

            /// The [`stable_hash`] of the text.
            #[inline]
            pub fn stable_hash(&self) -> u64 {
                self.hash
            }
        }

        impl PartialEq for $name {
            #[inline]
            fn eq(&self, other: &Self) -> bool {
                self.hash == other.hash && (Arc::ptr_eq(&self.text, &other.text) || self.text == other.text)
            }
        }

        impl Eq for $name {}

        impl std::hash::Hash for $name {
            #[inline]
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                state.write_u64(self.map_hash.get(self.hash));
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.text.cmp(&other.text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.text)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.text)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, ParseIdError> {
                Self::new(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.text)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// What an item key hashes as in a map: its [`stable_hash`]. Validation refuses two keys of
/// one kind in one account that share a stable hash, so item-key maps (which hold one
/// account's items) cannot be flooded; the key needs no second hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StableHashOnly;

impl StableHashOnly {
    #[inline]
    fn of(_: &str) -> Self {
        Self
    }

    #[inline]
    fn interned(_: &mut Option<KeyedHash>, _: &str) -> Self {
        Self
    }

    #[inline]
    fn get(self, stable: u64) -> u64 {
        stable
    }
}

impl KeyedHash {
    /// The interner's keyed hash of `s`, computed on first use (item keys never need it).
    #[inline]
    fn interned(slot: &mut Option<KeyedHash>, s: &str) -> Self {
        *slot.get_or_insert_with(|| Self::of(s))
    }

    #[inline]
    fn get(self, _stable: u64) -> u64 {
        self.0
    }
}

key_type!(
    /// The id of a customer account: the key of one event stream.
    AccountId,
    KeyedHash,
    "In hash maps it hashes as a keyed hash of its text (random per process, computed once), \
     not as its public stable hash: a log may hold any accounts, and texts crafted to share a \
     stable hash must not pile into one bucket of the indexes every store and portfolio keeps."
);
key_type!(
    /// The caller's key for one commitment within an account, such as `c-17`.
    CommitmentKey,
    StableHashOnly,
    "In hash maps it hashes as its stable hash: validation refuses a second commitment key \
     with the same stable hash in one account (`ValidationError::CommitmentKeyCollision`)."
);
key_type!(
    /// The caller's key for one escalation within an account, such as `e-3`.
    EscalationKey,
    StableHashOnly,
    "In hash maps it hashes as its stable hash: validation refuses a second escalation key \
     with the same stable hash in one account (`ValidationError::EscalationKeyCollision`)."
);
key_type!(
    /// The caller's key for one survey round, such as `q1-2025`.
    SurveyKey,
    StableHashOnly,
    "Survey keys key no map: an answer needs no earlier step."
);

impl AccountId {
    /// The keyed hash it hashes as in maps (what its view carries, `view.rs`).
    #[inline]
    pub(crate) fn keyed_hash(&self) -> u64 {
        self.map_hash.0
    }
}

/// The namespace for deterministic (UUID v5) event ids derived from canonical content.
///
/// Frozen: changing it would change every derived id and break idempotent re-imports.
pub const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x7261_7070_6f72_7400_8000_0000_0000_0001);

/// The globally unique id of one event: a UUID.
///
/// New events get a time-ordered v7 id; backfilled lines without an id get a v5 id derived from
/// their canonical content (see [`EventId::derive`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct EventId(Uuid);

impl EventId {
    /// A fresh time-ordered (v7) id.
    pub fn new_v7() -> Self {
        Self(Uuid::now_v7())
    }

    /// The deterministic (v5) id for an event's canonical content: `Uuid::new_v5` in
    /// [`EVENT_ID_NAMESPACE`], through a SHA-1 that uses the CPU's SHA extensions where it has
    /// them (a test checks the two agree).
    pub fn derive(canonical: &[u8]) -> Self {
        use sha1::Digest as _;
        let mut hasher = sha1::Sha1::new();
        hasher.update(EVENT_ID_NAMESPACE.as_bytes());
        hasher.update(canonical);
        let digest = hasher.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self(uuid::Builder::from_sha1_bytes(bytes).into_uuid())
    }

    /// Wraps an existing UUID. The nil UUID is refused: it is too often a bug.
    ///
    /// # Errors
    /// [`ParseIdError::NotUuid`] for the nil UUID.
    pub fn from_uuid(uuid: Uuid) -> Result<Self, ParseIdError> {
        if uuid.is_nil() {
            return Err(ParseIdError::NotUuid { reason: "the nil UUID is not an event id".into() });
        }
        Ok(Self(uuid))
    }

    /// The UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// The id as 16 big-endian bytes.
    pub fn to_bytes(self) -> [u8; 16] {
        *self.0.as_bytes()
    }

    /// The id from 16 big-endian bytes (may be nil: used by stores decoding what they wrote).
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }
}

impl std::str::FromStr for EventId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, ParseIdError> {
        let uuid = Uuid::parse_str(s).map_err(|e| ParseIdError::NotUuid { reason: e.to_string() })?;
        Self::from_uuid(uuid)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0.hyphenated())
    }
}

/// The 1-based index of an event within its account's stream.
///
/// `StreamVersion(0)` is never an event's version; as a "from" bound it means the start.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct StreamVersion(pub u64);

impl StreamVersion {
    /// The version of a stream's first event.
    pub const FIRST: Self = Self(1);

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The next version.
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for StreamVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The 1-based index of an event in the whole log: gapless and strictly increasing in
/// commit order.
///
/// `Position(0)` is never an event's position; as a "from" bound it means the start.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Position {
    /// The position of the log's first event.
    pub const FIRST: Self = Self(1);

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The next position.
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_id_limits() {
        assert!(AccountId::new("acme").is_ok());
        assert_eq!(AccountId::new(""), Err(ParseIdError::Empty));
        let long = "a".repeat(KEY_BYTES_MAX + 1);
        assert!(matches!(AccountId::new(&long), Err(ParseIdError::TooLong { len: 129, .. })));
        assert!(AccountId::new(&"a".repeat(KEY_BYTES_MAX)).is_ok());
        assert!(matches!(AccountId::new("ac\u{0}me"), Err(ParseIdError::ControlCharacter { ch: '\u{0}', at: 2 })));
        assert!(AccountId::new("ac\nme").is_err());
        assert!(AccountId::new("ünïcødé ok").is_ok());
    }

    #[test]
    fn stable_hash_is_frozen_and_spreads() {
        // Frozen values: checkpoints persist these hashes.
        assert_eq!(stable_hash("c-17"), stable_hash("c-17"));
        assert_eq!(format!("{:016x}", stable_hash("c-17")), "c9378715f6c94187");
        assert_eq!(format!("{:016x}", stable_hash("a-longer-key-of-20b")), "a060f869b5022379");
        assert_ne!(stable_hash("c-1"), stable_hash("c-1\0"));
        let all: std::collections::HashSet<u64> = (0..10_000).map(|i| stable_hash(&format!("c-{i}"))).collect();
        assert_eq!(all.len(), 10_000);
        let a = CommitmentKey::new("c-17").unwrap();
        assert_eq!(a.stable_hash(), stable_hash("c-17"));
        assert_eq!(a, CommitmentKey::new("c-17").unwrap());
        assert!(CommitmentKey::new("a").unwrap() < CommitmentKey::new("b").unwrap());
    }

    #[test]
    fn event_id_parse_and_derive() {
        let id: EventId = "0192f0c1-7a4b-7cde-8f01-23456789abcd".parse().unwrap();
        assert_eq!(id.to_string(), "0192f0c1-7a4b-7cde-8f01-23456789abcd");
        assert!("not-a-uuid".parse::<EventId>().is_err());
        assert!("00000000-0000-0000-0000-000000000000".parse::<EventId>().is_err());
        assert_eq!(EventId::derive(b"x"), EventId::derive(b"x"));
        assert_ne!(EventId::derive(b"x"), EventId::derive(b"y"));
        assert_eq!(EventId::derive(b"x").as_uuid().get_version_num(), 5);
        // The same ids as uuid's own v5, at every length around SHA-1's 64-byte blocks.
        let bytes: Vec<u8> = (0..300u32).map(|i| (i * 131 % 251) as u8).collect();
        for len in 0..bytes.len() {
            let name = &bytes[..len];
            assert_eq!(EventId::derive(name).as_uuid(), Uuid::new_v5(&EVENT_ID_NAMESPACE, name), "{len}");
        }
        assert_eq!(EventId::new_v7().as_uuid().get_version_num(), 7);
    }
}
