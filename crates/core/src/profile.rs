//! Account profiles: what an account is (segment, tier, contract value, parent, lifecycle
//! stage, renewal date, owner), stated by an `account_profiled` event ([`Event::AccountProfiled`](crate::Event::AccountProfiled)).
//!
//! A profile event states the **whole** profile as of its `occurred_at`: a field it leaves out
//! is unknown from then on, not carried over from the previous profile. So the profile as of T
//! is simply the last profile event that occurred by T (ties broken by position), whatever
//! order history was backfilled in (`docs/event-format.md`, "Account profiles").
//!
//! ```
//! use rapport_core::profile::{Arr, Currency, Lifecycle, Profile};
//! let p = Profile {
//!     segment: Some("enterprise".into()),
//!     arr: Some(Arr { amount: 120_000.0, currency: Currency::new("EUR")? }),
//!     lifecycle: Some(Lifecycle::Adoption),
//!     ..Profile::default()
//! };
//! assert_eq!(p.view().arr.map(|a| a.currency.as_str().to_owned()), Some("EUR".to_owned()));
//! # Ok::<(), rapport_core::profile::ProfileError>(())
//! ```

use crate::bytes::{Read, Reader, fail, text};
use crate::id::{AccountId, check_key};
use crate::timestamp::Timestamp;

/// The longest `owner`, in bytes.
pub const OWNER_BYTES_MAX: usize = 256;

/// The largest contract value (`arr`) a profile may state: far above any real contract, and
/// low enough that sums over many accounts stay exact to the unit.
pub const ARR_MAX: f64 = 1e15;

/// Why a profile field was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
#[non_exhaustive]
pub struct ProfileError {
    /// The JSON name of the field.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn refuse(field: &'static str, reason: impl Into<String>) -> ProfileError {
    ProfileError { field, reason: reason.into() }
}

/// An ISO 4217 currency code: three upper-case ASCII letters (`EUR`, `USD`). Only the shape is
/// checked: the list of codes changes, and a ledger must keep reading what it once accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl TryFrom<String> for Currency {
    type Error = ProfileError;
    fn try_from(code: String) -> Result<Self, ProfileError> {
        Self::new(&code)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

impl Currency {
    /// Checks `code` and keeps it.
    ///
    /// # Errors
    /// [`ProfileError`] (field `currency`) when `code` is not three upper-case ASCII letters.
    pub fn new(code: &str) -> Result<Self, ProfileError> {
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => {
                let shown = crate::escape::first_chars(code, 16);
                Err(refuse(
                    "currency",
                    format!("{:?} is not three upper-case letters (ISO 4217)", crate::escape::one_line(shown)),
                ))
            }
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        // Three ASCII letters, checked when made.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An account's annual contract value: an amount and its currency. Projections use it as a
/// weight (rollups), never for accounting.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Arr {
    /// The amount: finite, positive, at most [`ARR_MAX`].
    pub amount: f64,
    /// Its currency.
    pub currency: Currency,
}

/// Where an account stands in its life as a customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// `onboarding`: signed, not yet live.
    Onboarding,
    /// `adoption`: live, growing its use.
    Adoption,
    /// `expansion`: buying more.
    Expansion,
    /// `renewal`: in its renewal period.
    Renewal,
    /// `churned`: no longer a customer.
    Churned,
}

impl Lifecycle {
    /// Every stage, in the binary form's code order (index `i` is code `i`).
    pub const ALL: [Self; 5] = [Self::Onboarding, Self::Adoption, Self::Expansion, Self::Renewal, Self::Churned];

    /// The JSON name.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Onboarding => "onboarding",
            Self::Adoption => "adoption",
            Self::Expansion => "expansion",
            Self::Renewal => "renewal",
            Self::Churned => "churned",
        }
    }

    /// The stage for a JSON name.
    pub fn from_tag(tag: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.tag() == tag)
    }
}

/// What an account is, as one `account_profiled` event states it. Every field is optional,
/// but a profile states at least one; [`check`](Self::check) holds the rules (the stores
/// apply them through [`check_event`](crate::validate::check_event)). Serde is for derived
/// state (a runner's checkpoint); the canonical form is the event's JSON line.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    /// The customer segment, which picks the scoring model (`enterprise`, `smb`): a key
    /// (1-128 bytes, no control characters).
    pub segment: Option<String>,
    /// The service tier (`gold`): a key.
    pub tier: Option<String>,
    /// The annual contract value.
    pub arr: Option<Arr>,
    /// The parent account (a subsidiary's group): never the account itself.
    pub parent: Option<AccountId>,
    /// The lifecycle stage.
    pub lifecycle: Option<Lifecycle>,
    /// When the contract comes up for renewal.
    pub renews_at: Option<Timestamp>,
    /// Who owns the relationship on our side (a person's name or handle: personal data):
    /// 1-256 bytes, no control characters.
    pub owner: Option<String>,
}

impl Profile {
    /// This profile, borrowed.
    pub fn view(&self) -> ProfileFields<'_> {
        ProfileFields {
            segment: self.segment.as_deref(),
            tier: self.tier.as_deref(),
            arr: self.arr,
            parent: self.parent.as_ref().map(AccountId::as_str),
            lifecycle: self.lifecycle,
            renews_at: self.renews_at,
            owner: self.owner.as_deref(),
        }
    }

    /// Checks the rules a profile of `account` holds to.
    ///
    /// # Errors
    /// The first field that breaks them, by its JSON name.
    pub fn check(&self, account: &str) -> Result<(), ProfileError> {
        self.view().check(account)
    }

    /// [`check`](Self::check) as a logged profile is judged: without "at least one field", a
    /// rule for new events only, since a profile whose only field was its owner states none
    /// once its personal text is taken out ([`crate::personal`]).
    pub(crate) fn check_stored(&self, account: &str) -> Result<(), ProfileError> {
        self.view().check_stored(account)
    }

    /// Whether it states no field (refused for a new event, [`crate::validate::Admission`]).
    pub(crate) fn states_nothing(&self) -> bool {
        self.view().flags() == 0
    }

    /// Appends the binary form (`docs/log-format.md`, "Account profiles"): a byte of flags
    /// (bit `i` set when the `i`th field, in declaration order, is), then each field set:
    /// texts as a LEB128 length and bytes, `arr` as its amount (8 bytes, little-endian) and
    /// its three letters, `lifecycle` as its one-byte code, `renews_at` as 8 bytes.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        encode_fields(self.view(), out);
    }

    /// [`encode`](Self::encode) of the profile's stripped form: without its owner.
    pub(crate) fn encode_stripped(&self, out: &mut Vec<u8>) {
        encode_fields(ProfileFields { owner: None, ..self.view() }, out);
    }
}

fn encode_fields(v: ProfileFields<'_>, out: &mut Vec<u8>) {
    out.push(v.flags());
    for t in [v.segment, v.tier].into_iter().flatten() {
        text(out, t);
    }
    if let Some(arr) = v.arr {
        out.extend_from_slice(&arr.amount.to_le_bytes());
        out.extend_from_slice(&arr.currency.0);
    }
    if let Some(parent) = v.parent {
        text(out, parent);
    }
    if let Some(l) = v.lifecycle {
        out.push(l as u8);
    }
    if let Some(t) = v.renews_at {
        out.extend_from_slice(&t.unix_nanos().to_le_bytes());
    }
    if let Some(owner) = v.owner {
        text(out, owner);
    }
}

/// A profile's fields, borrowed (from an owned [`Profile`], or decoded from a record's bytes
/// by [`ProfileRef::fields`]).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct ProfileFields<'a> {
    /// [`Profile::segment`].
    pub segment: Option<&'a str>,
    /// [`Profile::tier`].
    pub tier: Option<&'a str>,
    /// [`Profile::arr`].
    pub arr: Option<Arr>,
    /// [`Profile::parent`] (an account id's text, checked).
    pub parent: Option<&'a str>,
    /// [`Profile::lifecycle`].
    pub lifecycle: Option<Lifecycle>,
    /// [`Profile::renews_at`].
    pub renews_at: Option<Timestamp>,
    /// [`Profile::owner`].
    pub owner: Option<&'a str>,
}

/// The JSON names of a profile's fields, in declaration (and flag bit) order.
pub const FIELDS: [&str; 7] = ["segment", "tier", "arr", "parent", "lifecycle", "renews_at", "owner"];

impl<'a> ProfileFields<'a> {
    fn flags(&self) -> u8 {
        let set = [
            self.segment.is_some(),
            self.tier.is_some(),
            self.arr.is_some(),
            self.parent.is_some(),
            self.lifecycle.is_some(),
            self.renews_at.is_some(),
            self.owner.is_some(),
        ];
        set.iter().enumerate().fold(0, |f, (i, &s)| f | (u8::from(s) << i))
    }

    /// Checks the rules a profile of `account` holds to: at least one field; `segment` and
    /// `tier` keys; `arr` finite, positive and at most [`ARR_MAX`]; `parent` another account;
    /// `renews_at` a real instant; `owner` 1-[`OWNER_BYTES_MAX`] bytes without control
    /// characters.
    ///
    /// # Errors
    /// The first field that breaks them.
    pub fn check(&self, account: &str) -> Result<(), ProfileError> {
        if self.flags() == 0 {
            return Err(refuse("segment", "a profile states at least one field"));
        }
        self.check_stored(account)
    }

    /// [`check`](Self::check) as a stored profile is read: a profile whose only field was its
    /// owner states none once its personal text is taken out ([`crate::personal`]).
    fn check_stored(&self, account: &str) -> Result<(), ProfileError> {
        for (field, v) in [("segment", self.segment), ("tier", self.tier)] {
            if let Some(v) = v {
                check_key(v).map_err(|e| refuse(field, e.to_string()))?;
            }
        }
        if let Some(arr) = self.arr
            && !(arr.amount.is_finite() && arr.amount > 0.0 && arr.amount <= ARR_MAX)
        {
            return Err(refuse("arr", format!("{} is not a positive amount of at most {ARR_MAX:e}", arr.amount)));
        }
        if let Some(parent) = self.parent
            && parent == account
        {
            return Err(refuse("parent", "an account cannot be its own parent"));
        }
        if let Some(t) = self.renews_at
            && !t.in_range()
        {
            return Err(refuse("renews_at", format!("{} is outside the supported range", t.unix_nanos())));
        }
        if let Some(owner) = self.owner {
            if owner.is_empty() || owner.len() > OWNER_BYTES_MAX {
                return Err(refuse("owner", format!("is {} bytes; 1 to {OWNER_BYTES_MAX} allowed", owner.len())));
            }
            if owner.chars().any(char::is_control) {
                return Err(refuse("owner", "holds a control character"));
            }
        }
        Ok(())
    }

    /// Reads a profile's binary form (all of `bytes`; [`ProfileRef::write_encoded`]'s) into
    /// its fields, checked as a record's are (the parent against `account`, or not for `""`).
    ///
    /// # Errors
    /// Malformed bytes, or a field that breaks the rules, with the offset.
    pub fn from_encoded(bytes: &'a [u8], account: &str) -> Result<Self, crate::bytes::DecodeError> {
        let mut r = Reader { b: bytes, at: 0 };
        let fields = read_fields(&mut r).map_err(|e| *e)?;
        fields
            .check_stored(account)
            .map_err(|e| crate::bytes::DecodeError { offset: 0, reason: format!("profile: {e}") })?;
        if r.at != bytes.len() {
            return Err(crate::bytes::DecodeError { offset: r.at as u64, reason: "bytes after the profile".into() });
        }
        Ok(fields)
    }

    /// The owned profile.
    pub fn to_profile(&self) -> Profile {
        Profile {
            segment: self.segment.map(str::to_owned),
            tier: self.tier.map(str::to_owned),
            arr: self.arr,
            parent: self.parent.map(AccountId::from_checked),
            lifecycle: self.lifecycle,
            renews_at: self.renews_at,
            owner: self.owner.map(str::to_owned),
        }
    }
}

/// A profile borrowed: an owned [`Profile`] lent, or a record's profile bytes (checked when
/// they were read, decoded again only when asked), so a pass over the log decodes no profile it
/// does not use.
#[derive(Debug, Clone, Copy)]
pub struct ProfileRef<'a>(Lent<'a>);

#[derive(Debug, Clone, Copy)]
enum Lent<'a> {
    Owned(&'a Profile),
    Encoded(&'a [u8]),
}

impl<'a> ProfileRef<'a> {
    /// Whether it names an owner (personal text, [`crate::personal`]), without decoding it.
    #[inline]
    pub fn has_owner(&self) -> bool {
        match self.0 {
            Lent::Owned(p) => p.owner.is_some(),
            // The flags byte comes first; the owner is its seventh field.
            Lent::Encoded(b) => b.first().is_some_and(|flags| flags & (1 << OWNER_FIELD) != 0),
        }
    }

    /// Its fields.
    pub fn fields(&self) -> ProfileFields<'a> {
        match self.0 {
            Lent::Owned(p) => p.view(),
            Lent::Encoded(b) => {
                // Checked when read, so this decodes; the empty answer is what a failure could
                // only give if the bytes changed under the view, which they cannot.
                let read = read_fields(&mut Reader { b, at: 0 });
                debug_assert!(read.is_ok(), "{read:?}");
                read.unwrap_or_default()
            }
        }
    }

    /// The owned profile.
    pub fn to_profile(&self) -> Profile {
        match self.0 {
            Lent::Owned(p) => p.clone(),
            Lent::Encoded(_) => self.fields().to_profile(),
        }
    }
}

impl<'a> ProfileRef<'a> {
    /// Appends the profile's binary form (`docs/log-format.md`, "Account profiles"): what a
    /// record holds, so a fold can keep a profile without owning its text (one buffer, reused).
    pub fn write_encoded(&self, out: &mut Vec<u8>) {
        match self.0 {
            Lent::Owned(p) => p.encode(out),
            Lent::Encoded(b) => out.extend_from_slice(b),
        }
    }

    /// [`write_encoded`](Self::write_encoded) without the owner (personal text,
    /// [`crate::personal`]): what a fold keeps, since no score needs it.
    pub fn write_encoded_stripped(&self, out: &mut Vec<u8>) {
        let fields = self.fields();
        if fields.owner.is_none() {
            self.write_encoded(out);
        } else {
            encode_fields(ProfileFields { owner: None, ..fields }, out);
        }
    }

    /// Reads a profile's binary form (all of `bytes`), as [`write_encoded`](Self::write_encoded)
    /// wrote it, checking every field as a record's are checked (the parent against `account`;
    /// pass `""` when the account is not at hand).
    ///
    /// # Errors
    /// Malformed bytes, or a field that breaks the rules, with the offset.
    pub fn from_encoded(bytes: &'a [u8], account: &str) -> Result<Self, crate::bytes::DecodeError> {
        ProfileFields::from_encoded(bytes, account)?;
        Ok(Self(Lent::Encoded(bytes)))
    }
}

impl PartialEq for ProfileRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.fields() == other.fields()
    }
}

impl Profile {
    /// This profile lent as a [`ProfileRef`].
    pub fn lend(&self) -> ProfileRef<'_> {
        ProfileRef(Lent::Owned(self))
    }
}

/// Reads a profile's binary form at `r` (what [`Profile::encode`] wrote) for an event of
/// `account`, checks it by the rules of [`ProfileFields::check`], and lends its bytes.
/// The flags' bit of `owner`, the last field.
const OWNER_FIELD: usize = 6;
const _: () = assert!(OWNER_FIELD == FIELDS.len() - 1);

pub(crate) fn read_profile<'a>(r: &mut Reader<'a>, account: &str) -> Read<ProfileRef<'a>> {
    let start = r.at;
    let fields = read_fields(r)?;
    fields.check_stored(account).map_err(|e| fail(start, format!("profile: {e}")))?;
    Ok(ProfileRef(Lent::Encoded(&r.b[start..r.at])))
}

fn read_fields<'a>(r: &mut Reader<'a>) -> Read<ProfileFields<'a>> {
    let at = r.at;
    let flags = r.byte("profile")?;
    if flags >> FIELDS.len() != 0 {
        return Err(fail(at, format!("profile: flags {flags:#04x} set unknown bits")));
    }
    let set = |i: usize| flags & (1 << i) != 0;
    let mut f = ProfileFields::default();
    if set(0) {
        f.segment = Some(r.text("segment")?);
    }
    if set(1) {
        f.tier = Some(r.text("tier")?);
    }
    if set(2) {
        let amount = f64::from_le_bytes(r.eight("arr")?);
        let at = r.at;
        let code = r.bytes(3, "currency")?;
        let currency = std::str::from_utf8(code)
            .ok()
            .and_then(|c| Currency::new(c).ok())
            .ok_or_else(|| fail(at, "currency: not three upper-case letters"))?;
        f.arr = Some(Arr { amount, currency });
    }
    if set(3) {
        let at = r.at;
        let parent = r.text("parent")?;
        check_key(parent).map_err(|e| fail(at, format!("parent: {e}")))?;
        f.parent = Some(parent);
    }
    if set(4) {
        f.lifecycle = Some(r.code(&Lifecycle::ALL, "lifecycle")?);
    }
    if set(5) {
        f.renews_at = Some(r.time("renews_at")?);
    }
    if set(OWNER_FIELD) {
        f.owner = Some(r.text("owner")?);
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Profile {
        Profile {
            segment: Some("enterprise".into()),
            tier: Some("gold".into()),
            arr: Some(Arr { amount: 250_000.5, currency: Currency::new("USD").unwrap() }),
            parent: Some(AccountId::new("acme-group").unwrap()),
            lifecycle: Some(Lifecycle::Renewal),
            renews_at: Some(Timestamp::parse("2027-01-31T00:00:00Z").unwrap()),
            owner: Some("Ann Lee".into()),
        }
    }

    #[test]
    fn a_profile_reads_back_from_its_bytes() {
        for p in [full(), Profile { tier: Some("t".into()), ..Profile::default() }] {
            let mut b = Vec::new();
            p.encode(&mut b);
            let mut r = Reader { b: &b, at: 0 };
            let lent = read_profile(&mut r, "acme").unwrap();
            assert_eq!(r.at, b.len());
            assert_eq!(lent.to_profile(), p);
            assert_eq!(lent, p.lend());
        }
    }

    #[test]
    fn the_rules_name_the_field() {
        let bad = |p: Profile| p.check("acme").unwrap_err().field;
        assert_eq!(bad(Profile::default()), "segment");
        assert_eq!(bad(Profile { parent: Some(AccountId::new("acme").unwrap()), ..full() }), "parent");
        for amount in [0.0, -1.0, f64::NAN, f64::INFINITY, 2e15] {
            let arr = Some(Arr { amount, currency: Currency::new("EUR").unwrap() });
            assert_eq!(bad(Profile { arr, ..full() }), "arr", "{amount}");
        }
        assert_eq!(bad(Profile { owner: Some(String::new()), ..full() }), "owner");
        assert_eq!(bad(Profile { owner: Some("a\nb".into()), ..full() }), "owner");
        assert_eq!(bad(Profile { segment: Some("x".repeat(129)), ..full() }), "segment");
        for code in ["eur", "EU", "EURO", "E1R", ""] {
            assert_eq!(Currency::new(code).unwrap_err().field, "currency", "{code}");
        }
        assert!(full().check("acme").is_ok());
    }

    #[test]
    fn damaged_bytes_are_refused_with_their_offset() {
        let mut b = Vec::new();
        full().encode(&mut b);
        let flags_unknown = {
            let mut c = b.clone();
            c[0] |= 0x80;
            c
        };
        assert!(read_profile(&mut Reader { b: &flags_unknown, at: 0 }, "acme").is_err());
        // The parent read as the account itself is refused, not trusted.
        assert!(read_profile(&mut Reader { b: &b, at: 0 }, "acme-group").is_err());
        for cut in 0..b.len() {
            assert!(read_profile(&mut Reader { b: &b[..cut], at: 0 }, "acme").is_err(), "cut at {cut}");
        }
    }
}
