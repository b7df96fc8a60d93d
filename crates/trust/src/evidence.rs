//! Time-decayed evidence: sums whose terms halve every half-life, kept against an anchor so
//! that adding evidence in any order gives the same result, and a top-3 of the events that
//! weigh most.

use rapport_core::{EventId, Timestamp};
use serde::{Deserialize, Serialize};

use crate::fastmath::{exp2, key_log2};
use crate::top_events::TopEvents;

/// Nanoseconds in a day, as a float.
pub const NANOS_PER_DAY_F: f64 = 86_400e9;

/// A half-life of `days`, in nanoseconds.
#[inline]
pub fn half_life_nanos(days: f64) -> f64 {
    days * NANOS_PER_DAY_F
}

/// The decay rate for a half-life of `days`: half-lives per nanosecond, the reciprocal of
/// [`half_life_nanos`]. Folding multiplies by it (computed once per model); evaluating divides
/// by the same half-life, so both see the same number.
#[inline]
pub fn decay_rate(days: f64) -> f64 {
    1.0 / half_life_nanos(days)
}

/// The largest exponent (in half-lives) a term may carry against the anchor before the sums
/// are re-anchored. Keeps terms far from `f64` overflow (2^1023).
const REANCHOR_HALF_LIVES: f64 = 480.0;

/// Two decayed sums sharing one half-life: `a` and `b` as of the anchor instant.
///
/// For Beta evidence `a` is S⁺ and `b` S⁻; for a mean, `a` is Σw·y and `b` Σw; for a count only
/// `a` is used. Evaluated at `t`, every term has been multiplied by `2^(-(t - τ)/h)`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Decayed {
    anchor: i64,
    a: f64,
    b: f64,
}

impl Decayed {
    /// Whether nothing was ever added.
    pub fn is_empty(&self) -> bool {
        self.a == 0.0 && self.b == 0.0
    }

    /// Adds `(a, b)` as evidence at `tau`, with half-life `h_nanos`.
    #[inline]
    pub fn add(&mut self, tau: Timestamp, a: f64, b: f64, h_nanos: f64) {
        self.add_at_rate(tau, a, b, 1.0 / h_nanos);
    }

    /// [`add`](Self::add) with the half-life given as its reciprocal (half-lives per
    /// nanosecond), so a caller adding to several sums with one half-life divides once.
    #[inline(always)]
    pub fn add_at_rate(&mut self, tau: Timestamp, a: f64, b: f64, rate: f64) {
        let tau = tau.unix_nanos();
        if self.is_empty() {
            self.anchor = tau;
        }
        let mut exponent = (tau as f64 - self.anchor as f64) * rate;
        if exponent > REANCHOR_HALF_LIVES {
            let scale = exp2(-exponent);
            self.a *= scale;
            self.b *= scale;
            self.anchor = tau;
            exponent = 0.0;
        }
        let d = exp2(exponent);
        self.a += a * d;
        self.b += b * d;
    }

    /// The sums as of `at` (decayed from the anchor).
    pub fn at(&self, at: Timestamp, h_nanos: f64) -> (f64, f64) {
        if self.is_empty() {
            return (0.0, 0.0);
        }
        let d = exp2(-(at.unix_nanos() as f64 - self.anchor as f64) * (1.0 / h_nanos));
        (self.a * d, self.b * d)
    }
}

/// The decay factor of evidence at `tau` seen from `at`.
pub fn decay(tau: Timestamp, at: Timestamp, h_nanos: f64) -> f64 {
    exp2(-(at.unix_nanos() as f64 - tau.unix_nanos() as f64) * (1.0 / h_nanos))
}

/// The three events that weigh most in one factor, whatever the evaluation time.
///
/// Influence is `log2(|weight·(x - prior)|) + τ/h`: all terms decay by the same factor, so this
/// orders them at every later instant. Ties break on the event id, so the list does not depend
/// on the order events were added. Compact: 60 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Top3 {
    keys: [f32; 3],
    /// Filled from slot 0; the nil id marks an empty slot.
    ids: [u128; 3],
}

/// Serialized as its filled slots only, each a key and the id's 16 bytes: a binary format
/// (a checkpoint's postcard) would otherwise write three keys and three `u128` varints of up to
/// 19 bytes, empty slots included.
impl Serialize for Top3 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let filled = self.ids.iter().take_while(|id| **id != 0).count();
        let mut seq = s.serialize_seq(Some(filled))?;
        for slot in 0..filled {
            seq.serialize_element(&(self.keys[slot], self.ids[slot].to_be_bytes()))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Top3 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let filled = Vec::<(f32, [u8; 16])>::deserialize(d)?;
        if filled.len() > 3 {
            return Err(serde::de::Error::custom(format!("{} top events, at most 3", filled.len())));
        }
        let mut top = Top3::default();
        for (slot, (key, id)) in filled.into_iter().enumerate() {
            let id = u128::from_be_bytes(id);
            if id == 0 {
                return Err(serde::de::Error::custom("a top event with the nil id"));
            }
            top.keys[slot] = key;
            top.ids[slot] = id;
        }
        Ok(top)
    }
}

impl Top3 {
    /// Offers an event with the raw influence `magnitude` at `tau`.
    #[inline]
    pub fn offer(&mut self, id: EventId, magnitude: f64, tau: Timestamp, h_nanos: f64) {
        self.offer_at_rate(id, magnitude, tau, 1.0 / h_nanos);
    }

    /// [`offer`](Self::offer) with the half-life given as its reciprocal.
    #[inline(always)]
    pub fn offer_at_rate(&mut self, id: EventId, magnitude: f64, tau: Timestamp, rate: f64) {
        if !(magnitude > 0.0 && magnitude < f64::INFINITY) {
            return;
        }
        let log = key_log2(magnitude);
        let key = (log + tau.unix_nanos() as f64 * rate) as f32;
        self.offer_key(u128::from_be_bytes(id.to_bytes()), key);
    }

    #[inline]
    fn offer_key(&mut self, id: u128, key: f32) {
        // The nil id marks an empty slot; real event ids are never nil.
        let beats = |s: usize, keys: &[f32; 3], ids: &[u128; 3]| {
            ids[s] == 0 || key > keys[s] || (key == keys[s] && id < ids[s])
        };
        if id == 0 || !beats(2, &self.keys, &self.ids) || self.ids.contains(&id) {
            return;
        }
        let mut slot = 2;
        while slot > 0 && beats(slot - 1, &self.keys, &self.ids) {
            self.keys[slot] = self.keys[slot - 1];
            self.ids[slot] = self.ids[slot - 1];
            slot -= 1;
        }
        self.keys[slot] = key;
        self.ids[slot] = id;
    }

    /// The ids, most influential first.
    pub fn ids(&self) -> TopEvents {
        TopEvents::from_distinct_slots(self.ids.map(|id| (id != 0).then(|| EventId::from_bytes(id.to_be_bytes()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top3_round_trips_through_its_filled_slots_and_refuses_more_or_nil() {
        let mut top = Top3::default();
        let mut forms = vec![serde_json::to_string(&top).unwrap()];
        for n in 1..=4u8 {
            top.offer(EventId::from_bytes([n; 16]), f64::from(n), day(i64::from(n)), 10.0 * NANOS_PER_DAY_F);
            forms.push(serde_json::to_string(&top).unwrap());
            let back: Top3 = serde_json::from_str(forms.last().unwrap()).unwrap();
            assert_eq!(back, top);
        }
        assert_eq!(forms[0], "[]", "an empty list costs nothing");
        let four = format!("[{}]", vec![format!("[1.0,{:?}]", [7u8; 16]); 4].join(","));
        assert!(serde_json::from_str::<Top3>(&four).unwrap_err().to_string().contains("at most 3"));
        let nil = format!("[[1.0,{:?}]]", [0u8; 16]);
        assert!(serde_json::from_str::<Top3>(&nil).unwrap_err().to_string().contains("nil id"));
    }

    const DAY: f64 = NANOS_PER_DAY_F;

    fn day(n: i64) -> Timestamp {
        Timestamp::from_unix_seconds(n * 86_400)
    }

    #[test]
    fn halves_every_half_life_in_any_order() {
        let h = 10.0 * DAY;
        let mut x = Decayed::default();
        x.add(day(0), 1.0, 0.0, h);
        x.add(day(10), 1.0, 2.0, h);
        let mut y = Decayed::default();
        y.add(day(10), 1.0, 2.0, h);
        y.add(day(0), 1.0, 0.0, h);
        let (a, b) = x.at(day(20), h);
        assert!((a - 0.75).abs() < 1e-12 && (b - 1.0).abs() < 1e-12, "{a} {b}");
        let (a2, b2) = y.at(day(20), h);
        assert!((a - a2).abs() < 1e-12 && (b - b2).abs() < 1e-12);
    }

    #[test]
    fn reanchors_without_overflow() {
        let h = DAY;
        let mut x = Decayed::default();
        x.add(day(0), 1.0, 0.0, h);
        x.add(day(2_000), 1.0, 0.0, h);
        let (a, _) = x.at(day(2_000), h);
        assert!((a - 1.0).abs() < 1e-12, "{a}");
        // The old term was scaled away on re-anchoring; a year later both have decayed to nothing.
        let (later, _) = x.at(day(2_365), h);
        assert!(later.is_finite() && (0.0..1e-100).contains(&later), "{later}");
    }

    #[test]
    fn top3_is_order_free() {
        let h = DAY;
        let ids: Vec<EventId> = (1u8..=5).map(|i| EventId::from_bytes([i; 16])).collect();
        let mut a = Top3::default();
        let mut b = Top3::default();
        let offers = [(0usize, 1.0, 0i64), (1, 2.0, 0), (2, 1.0, 3), (3, 0.5, 1), (4, 1.0, 0)];
        for &(i, m, d) in &offers {
            a.offer(ids[i], m, day(d), h);
        }
        for &(i, m, d) in offers.iter().rev() {
            b.offer(ids[i], m, day(d), h);
        }
        assert_eq!(a.ids(), b.ids());
        assert_eq!(a.ids()[0], ids[2], "1.0 three days later beats 2.0 now at a one-day half-life");
    }
}
