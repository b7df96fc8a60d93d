//! [`Timestamp`]: an instant as whole nanoseconds since the Unix epoch, UTC.

use std::fmt;

use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Nanoseconds in one second.
pub const NANOS_PER_SECOND: i64 = 1_000_000_000;
/// Nanoseconds in one hour.
pub const NANOS_PER_HOUR: i64 = 3_600 * NANOS_PER_SECOND;
/// Nanoseconds in one day.
pub const NANOS_PER_DAY: i64 = 24 * NANOS_PER_HOUR;

/// An instant, held as nanoseconds since 1970-01-01T00:00:00Z.
///
/// Events keep their instant, not the offset they were written with: `10:00+01:00` and
/// `09:00Z` are the same timestamp, and the canonical JSON form writes UTC with `Z`.
/// Valid event timestamps lie in [`Timestamp::MIN`]..=[`Timestamp::MAX`] (years 1900–2199);
/// the validator rejects others.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp(i64);

/// Why a string was refused as a [`Timestamp`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseTimestampError {
    /// Not an RFC 3339 date-time with an offset, or not a real calendar instant.
    #[error("not an RFC 3339 timestamp with an offset (like 2025-03-01T09:00:00Z): {reason}")]
    Syntax {
        /// What the parser said.
        reason: String,
    },
    /// A real instant, but outside the years 1900–2199.
    #[error("{text} is outside the supported range 1900-01-01T00:00:00Z..2200-01-01T00:00:00Z")]
    OutOfRange {
        /// The text as given.
        text: String,
    },
}

impl Timestamp {
    /// 1900-01-01T00:00:00Z, the earliest valid event time.
    pub const MIN: Self = Self(-2_208_988_800 * NANOS_PER_SECOND);
    /// 2199-12-31T23:59:59.999999999Z, the latest valid event time.
    pub const MAX: Self = Self(7_258_118_400 * NANOS_PER_SECOND - 1);
    /// 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Self = Self(0);

    /// The timestamp `nanos` nanoseconds after the Unix epoch.
    pub const fn from_unix_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    /// The timestamp `secs` seconds after the Unix epoch (saturating).
    pub const fn from_unix_seconds(secs: i64) -> Self {
        Self(secs.saturating_mul(NANOS_PER_SECOND))
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn unix_nanos(self) -> i64 {
        self.0
    }

    /// The current time from the system clock.
    pub fn now() -> Self {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Self(i64::try_from(nanos).unwrap_or(i64::MAX))
    }

    /// Whether this lies in the range valid for events.
    #[inline]
    pub fn in_range(self) -> bool {
        (Self::MIN..=Self::MAX).contains(&self)
    }

    /// This plus `nanos` (saturating).
    pub const fn add_nanos(self, nanos: i64) -> Self {
        Self(self.0.saturating_add(nanos))
    }

    /// This plus a (possibly fractional or negative) number of days (saturating).
    pub fn add_days(self, days: f64) -> Self {
        let nanos = days * NANOS_PER_DAY as f64;
        // `as` saturates for out-of-range floats and maps NaN to 0, which is what we want here.
        Self(self.0.saturating_add(nanos as i64))
    }

    /// `self - earlier` in days, as a float (negative when `earlier` is later).
    pub fn days_since(self, earlier: Self) -> f64 {
        (self.0 as f64 - earlier.0 as f64) / NANOS_PER_DAY as f64
    }

    /// Parses an RFC 3339 date-time with an offset.
    ///
    /// # Errors
    /// [`ParseTimestampError`] when `s` is not RFC 3339, not a real instant, or outside the
    /// years 1900–2199.
    pub fn parse(s: &str) -> Result<Self, ParseTimestampError> {
        if let Some(ts) = parse_canonical_utc(s.as_bytes()) {
            return Ok(ts);
        }
        let dt =
            OffsetDateTime::parse(s, &Rfc3339).map_err(|e| ParseTimestampError::Syntax { reason: e.to_string() })?;
        let ts = i64::try_from(dt.unix_timestamp_nanos())
            .map(Self)
            .map_err(|_| ParseTimestampError::OutOfRange { text: s.to_owned() })?;
        if !ts.in_range() {
            return Err(ParseTimestampError::OutOfRange { text: s.to_owned() });
        }
        Ok(ts)
    }

    /// The UTC date-time.
    pub fn to_offset_date_time(self) -> OffsetDateTime {
        // Every i64 nanosecond count lies within time's supported years (±9999).
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}

/// The common shape `YYYY-MM-DDTHH:MM:SSZ` (what the canonical form writes for whole seconds),
/// without the general parser. `None` for anything else, including a leap second or a date
/// outside 1900–2199, which the general parser then accepts or refuses with its reason.
fn parse_canonical_utc(b: &[u8]) -> Option<Timestamp> {
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z'
    {
        return None;
    }
    let num = |at: usize, len: usize| -> Option<i64> {
        b[at..at + len].iter().try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1900..=2199).contains(&year) || !(1..=month_days).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (years counted from March so the
    // leap day falls at the end of the year). Written out rather than through `time::Date`,
    // which cost about twice as much on the parsing path (docs/decisions.md); the test below
    // checks every day against `time`.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3_600 + minute * 60 + second;
    Some(Timestamp(secs * NANOS_PER_SECOND))
}

impl From<OffsetDateTime> for Timestamp {
    fn from(dt: OffsetDateTime) -> Self {
        let nanos = dt.unix_timestamp_nanos().clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        Self(nanos as i64)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with a `Z`; fractional seconds only when non-zero, without trailing
    /// zeros: what `time`'s RFC 3339 formatting writes (a test compares them), without its
    /// `String` per call (this runs for every id derived and every timestamp written).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_rfc3339(|text| f.write_str(text))
    }
}

/// The longest text [`Timestamp::write_rfc3339`] writes: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const RFC3339_MAX: usize = 30;

impl Timestamp {
    /// Appends the RFC 3339 text ([`Display`](fmt::Display)'s) to `out`.
    pub(crate) fn push_rfc3339(self, out: &mut String) {
        self.with_rfc3339(|text| out.push_str(text));
    }

    /// Gives `f` the RFC 3339 text, written on the stack.
    fn with_rfc3339<T>(self, f: impl FnOnce(&str) -> T) -> T {
        let mut buf = [0u8; RFC3339_MAX];
        let len = self.write_rfc3339(&mut buf);
        // Digits, dashes, colons, a dot, `T` and `Z`: ASCII.
        f(std::str::from_utf8(&buf[..len]).unwrap_or_default())
    }

    /// Writes the RFC 3339 text into `out` and returns its length. Every `i64` of nanoseconds
    /// falls in the years 1677–2262, so the year always has four digits.
    fn write_rfc3339(self, out: &mut [u8; RFC3339_MAX]) -> usize {
        let secs = self.0.div_euclid(NANOS_PER_SECOND);
        let mut nanos = self.0.rem_euclid(NANOS_PER_SECOND);
        let (days, in_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // The inverse of `parse_canonical_utc`'s day count (years counted from March).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let mut put = |at: usize, width: usize, mut v: i64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, in_day / 3_600);
        put(14, 2, in_day / 60 % 60);
        put(17, 2, in_day % 60);
        let mut len = 19;
        if nanos != 0 {
            let mut digits = 9;
            while nanos % 10 == 0 {
                nanos /= 10;
                digits -= 1;
            }
            put(20, digits, nanos);
            len = 20 + digits;
        }
        for (at, c) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.')] {
            out[at] = c;
        }
        out[len] = b'Z';
        len + 1
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl std::str::FromStr for Timestamp {
    type Err = ParseTimestampError;
    fn from_str(s: &str) -> Result<Self, ParseTimestampError> {
        Self::parse(s)
    }
}

/// RFC 3339 text in human-readable formats (JSON); nanoseconds since the epoch (an `i64`) in
/// binary ones, where eight bytes beat thirty (checkpoints).
impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.collect_str(self) } else { s.serialize_i64(self.0) }
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            let nanos = i64::deserialize(d)?;
            return Ok(Self(nanos));
        }
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        let t = Timestamp::parse("2025-03-01T09:00:00Z").unwrap();
        assert_eq!(t.to_string(), "2025-03-01T09:00:00Z");
        let same = Timestamp::parse("2025-03-01T10:00:00+01:00").unwrap();
        assert_eq!(t, same);
        let frac = Timestamp::parse("2025-03-01T09:00:00.25Z").unwrap();
        assert_eq!(frac.to_string(), "2025-03-01T09:00:00.25Z");
        assert_eq!(frac.unix_nanos() - t.unix_nanos(), 250_000_000);
    }

    #[test]
    fn rejects_unreal_and_out_of_range() {
        assert!(Timestamp::parse("2025-02-30T00:00:00Z").is_err());
        assert!(Timestamp::parse("2025-03-01T09:00:00").is_err(), "no offset");
        assert!(Timestamp::parse("2025-03-01").is_err());
        assert!(matches!(Timestamp::parse("1850-01-01T00:00:00Z"), Err(ParseTimestampError::OutOfRange { .. })));
        assert!(Timestamp::parse("2199-12-31T23:59:59Z").is_ok());
        assert!(Timestamp::parse("2200-01-01T00:00:00Z").is_err());
        assert!(Timestamp::parse("1900-01-01T00:00:00Z").is_ok());
    }

    #[test]
    fn the_fast_path_agrees_with_the_general_parser() {
        // Every day of 1900–2199 at a few times, and the shapes the fast path must leave alone.
        let general = |s: &str| -> Option<Timestamp> {
            let dt = OffsetDateTime::parse(s, &Rfc3339).ok()?;
            Some(Timestamp(i64::try_from(dt.unix_timestamp_nanos()).ok()?)).filter(|t| t.in_range())
        };
        let mut t = Timestamp::MIN;
        let mut k = 0i64;
        while t <= Timestamp::MAX {
            let s = t.add_nanos((k % 86_400) * NANOS_PER_SECOND).to_string();
            assert_eq!(parse_canonical_utc(s.as_bytes()), general(&s), "{s}");
            assert!(parse_canonical_utc(s.as_bytes()).is_some(), "{s}");
            t = t.add_nanos(NANOS_PER_DAY);
            k += 7_919;
        }
        for s in [
            "2024-02-29T23:59:59Z",
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2000-02-29T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-00-01T00:00:00Z",
            "2025-04-31T00:00:00Z",
            "2025-04-30T24:00:00Z",
            "2025-04-30T23:60:00Z",
            "2016-12-31T23:59:60Z",
            "1899-12-31T23:59:59Z",
            "2200-01-01T00:00:00Z",
            "2025-4-30T23:00:00Z ",
            "2025-04-30t23:00:00Z",
            "+025-04-30T23:00:00Z",
        ] {
            let fast = parse_canonical_utc(s.as_bytes());
            assert!(fast.is_none() || fast == general(s), "{s}: {fast:?} vs {:?}", general(s));
            assert_eq!(Timestamp::parse(s).ok(), general(s), "{s}");
        }
    }

    /// The formatter writes what `time`'s RFC 3339 formatting writes, at the ends of `i64`,
    /// around the epoch and leap days, and over random instants with every fraction length.
    #[test]
    fn the_text_is_times_rfc3339() {
        let times = |t: Timestamp| t.to_offset_date_time().format(&Rfc3339).unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut cases = vec![i64::MIN, i64::MIN + 1, i64::MAX, -1, 0, 1, 999_999_999, -NANOS_PER_SECOND, 10];
        cases.extend([Timestamp::MIN.0, Timestamp::MAX.0, 951_782_400 * NANOS_PER_SECOND - 1]);
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let v = state as i64;
            // Whole seconds and shorter fractions too, not only nine digits.
            cases.push(v - v % 10i64.pow((state >> 60) as u32 % 10));
        }
        for v in cases {
            let t = Timestamp(v);
            assert_eq!(t.to_string(), times(t), "{v}");
        }
        let mut day = Timestamp::MIN;
        while day <= Timestamp::MAX {
            assert_eq!(day.to_string(), times(day));
            day = day.add_nanos(NANOS_PER_DAY - 1);
        }
    }

    #[test]
    fn bounds_are_the_documented_instants() {
        assert_eq!(Timestamp::MIN.to_string(), "1900-01-01T00:00:00Z");
        assert_eq!(Timestamp::MAX.add_nanos(1).to_string(), "2200-01-01T00:00:00Z");
    }
}
