//! The account-level types' fields (`account_profiled`, `assessment_recorded`): built from a
//! line's fields and checked by the same rules as the owned event.

use super::fields::{Fields, Parse, invalid};
use crate::event::{Event, SENTIMENT_RANGE};
use crate::id::AccountId;
use crate::profile::{Arr, Currency, Lifecycle, Profile};

/// An `account_profiled` line's profile: `arr` and `currency` come together, and the whole
/// profile passes [`Profile::check`].
pub(super) fn build_profile(f: &Fields<'_, '_>) -> Parse<Event> {
    let r = f.raw;
    let text = |v: &Option<super::fields::Text<'_>>| v.as_deref().map(str::to_owned);
    let arr = match (r.arr, r.currency.as_deref()) {
        (None, None) => None,
        (Some(amount), Some(code)) => {
            Some(Arr { amount, currency: Currency::new(code).map_err(|e| invalid(e.field, e.reason))? })
        }
        (Some(_), None) => return Err(invalid("currency", "arr needs its currency")),
        (None, Some(_)) => return Err(invalid("arr", "currency is stated without arr")),
    };
    let parent = match r.parent.as_deref() {
        None => None,
        Some(p) => Some(AccountId::new(p).map_err(|e| invalid("parent", e))?),
    };
    let lifecycle = match r.lifecycle.as_deref() {
        None => None,
        Some(l) => Some(Lifecycle::from_tag(l).ok_or_else(|| {
            let all: Vec<&str> = Lifecycle::ALL.iter().map(|l| l.tag()).collect();
            invalid("lifecycle", format!("{l:?} is not one of {}", all.join(", ")))
        })?),
    };
    let renews_at = match &r.renews_at {
        None => None,
        Some(_) => Some(f.time("renews_at", &r.renews_at)?),
    };
    let profile = Profile {
        segment: text(&r.segment),
        tier: text(&r.tier),
        arr,
        parent,
        lifecycle,
        renews_at,
        owner: text(&r.owner),
    };
    let account = r.account.as_deref().unwrap_or_default();
    profile.check(account).map_err(|e| invalid(e.field, e.reason))?;
    Ok(Event::AccountProfiled { profile: Box::new(profile) })
}

/// An `assessment_recorded` line: a sentiment of 1 to 5, a reason, and an optional
/// `valid_until` later than `occurred_at` (checked with the event, by
/// [`check_event`](crate::validate::check_event)).
pub(super) fn build_assessment(f: &Fields<'_, '_>) -> Parse<Event> {
    let r = f.raw;
    let v = *f.req("sentiment", &r.sentiment)?;
    let sentiment = u8::try_from(v)
        .ok()
        .filter(|s| SENTIMENT_RANGE.contains(s))
        .ok_or_else(|| invalid("sentiment", format!("{v} is outside 1..=5")))?;
    let reason = match f.text("reason", &r.reason)? {
        Some(reason) => reason,
        None => return Err(super::ParseEventError::MissingField { field: "reason", kind: f.kind }),
    };
    let valid_until = match &r.valid_until {
        None => None,
        Some(_) => Some(f.time("valid_until", &r.valid_until)?),
    };
    Ok(Event::AssessmentRecorded { sentiment, reason, valid_until })
}
