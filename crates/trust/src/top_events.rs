//! [`TopEvents`]: the few events that explain a factor, held inline.

use std::fmt;
use std::ops::Deref;

use rapport_core::EventId;
use serde::{Deserialize, Serialize};

/// The events that moved a factor most, most influential first: at most [`TopEvents::MAX`],
/// held inline, so a score of ten factors allocates no list per factor (a list each made twenty
/// allocations an account when a runner scored it now and a window ago). Reads as a slice of
/// event ids; serialises as a list.
///
/// Equality and hashing see the unused slots too, which are always nil.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TopEvents {
    /// Filled from slot 0; slots at `len` and beyond are nil.
    ids: [EventId; TopEvents::MAX],
    len: u8,
}

impl Default for TopEvents {
    fn default() -> Self {
        Self { ids: [EventId::from_bytes([0; 16]); Self::MAX], len: 0 }
    }
}

impl TopEvents {
    /// How many events a factor names at most.
    pub const MAX: usize = 3;

    /// No events.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `id` after those held, unless it is held already (an event is named once); false
    /// (and nothing added) when [`MAX`](Self::MAX) others are held.
    #[inline]
    pub fn push(&mut self, id: EventId) -> bool {
        let len = usize::from(self.len);
        // Compared as integers: this runs for every factor of every score.
        let key = u128::from_ne_bytes(id.to_bytes());
        if self.ids[..len].iter().any(|held| u128::from_ne_bytes(held.to_bytes()) == key) {
            return true;
        }
        if len == Self::MAX {
            return false;
        }
        self.ids[len] = id;
        self.len += 1;
        true
    }

    /// The events of `slots` up to the first empty one, which the caller knows to be distinct
    /// (a [`Top3`](crate::evidence::Top3)'s: it keeps each event once), without comparing them.
    #[inline]
    pub(crate) fn from_distinct_slots(slots: [Option<EventId>; TopEvents::MAX]) -> Self {
        let mut top = Self::new();
        for id in slots.into_iter().map_while(|id| id) {
            debug_assert!(!top.contains(&id), "the slots hold distinct events");
            top.ids[usize::from(top.len)] = id;
            top.len += 1;
        }
        top
    }

    /// The events of `slots` up to the first empty one.
    #[inline]
    pub fn from_slots(slots: [Option<EventId>; TopEvents::MAX]) -> Self {
        let mut top = Self::new();
        for id in slots.into_iter().map_while(|id| id) {
            top.push(id);
        }
        top
    }
}

impl Deref for TopEvents {
    type Target = [EventId];

    fn deref(&self) -> &[EventId] {
        &self.ids[..usize::from(self.len)]
    }
}

impl fmt::Debug for TopEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for TopEvents {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for TopEvents {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ids = Vec::<EventId>::deserialize(d)?;
        if ids.len() > Self::MAX {
            return Err(serde::de::Error::custom(format!("{} top events, at most {}", ids.len(), Self::MAX)));
        }
        // A list naming an event twice (written before `push` kept each once) reads as the
        // events it names.
        let mut top = Self::new();
        for id in ids {
            top.push(id);
        }
        Ok(top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> EventId {
        EventId::from_bytes([n; 16])
    }

    #[test]
    fn holds_three_in_order_and_refuses_a_fourth() {
        let mut top = TopEvents::new();
        assert!(top.is_empty());
        for n in 1..=3 {
            assert!(top.push(id(n)));
        }
        assert!(!top.push(id(4)));
        assert!(top.push(id(2)), "an event held already is held");
        assert_eq!(&top[..], &[id(1), id(2), id(3)]);
        let mut twice = TopEvents::new();
        assert!(twice.push(id(5)) && twice.push(id(5)) && twice.push(id(6)));
        assert_eq!(&twice[..], &[id(5), id(6)], "each event once");
        assert_eq!(TopEvents::from_slots([Some(id(1)), None, Some(id(3))]).to_vec(), vec![id(1)]);
    }

    #[test]
    fn serialises_as_a_list_and_refuses_more_than_three() {
        let top = TopEvents::from_slots([Some(id(1)), Some(id(2)), None]);
        let json = serde_json::to_string(&top).unwrap();
        assert_eq!(json, serde_json::to_string(&vec![id(1), id(2)]).unwrap());
        assert_eq!(serde_json::from_str::<TopEvents>(&json).unwrap(), top);
        assert_eq!(format!("{top:?}"), format!("{:?}", vec![id(1), id(2)]));
        let four = serde_json::to_string(&vec![id(1); 4]).unwrap();
        let err = serde_json::from_str::<TopEvents>(&four).unwrap_err().to_string();
        assert!(err.contains("4 top events, at most 3"), "{err}");
        let repeated = serde_json::to_string(&vec![id(1), id(2), id(1)]).unwrap();
        assert_eq!(&serde_json::from_str::<TopEvents>(&repeated).unwrap()[..], &[id(1), id(2)]);
    }
}
