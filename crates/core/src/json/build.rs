//! The typed event built from a line's fields: each type's fields checked by the same rules as
//! the owned event (the account-level types, profiles and assessments, included).

use super::ParseEventError;
use super::fields::{Fields, Parse, allowed, invalid};
use crate::event::{AdvocacyKind, Channel, Event, EventKind, SENTIMENT_RANGE, Severity, SurveyScore};
use crate::id::{AccountId, SurveyKey};
use crate::profile::{Arr, Currency, Lifecycle, Profile};

pub(super) fn build_event(f: &Fields<'_, '_>) -> Parse<Event> {
    let r = f.raw;
    // Each arm checks its type's fields with its own mask, a constant (so the check reads
    // only the fields that mask refuses).
    let event = match f.kind {
        EventKind::CommitmentMade => {
            f.only(allowed(EventKind::CommitmentMade))?;
            let weight = r.weight.unwrap_or(1.0);
            if !(weight.is_finite() && weight > 0.0) {
                return Err(invalid("weight", format!("{weight} is not a finite positive number")));
            }
            Event::CommitmentMade {
                commitment: f.commitment()?,
                title: f
                    .text("title", &r.title)?
                    .ok_or(ParseEventError::MissingField { field: "title", kind: f.kind })?,
                due: f.time("due", &r.due)?,
                weight,
            }
        }
        EventKind::CommitmentRenegotiated => {
            f.only(allowed(EventKind::CommitmentRenegotiated))?;
            Event::CommitmentRenegotiated {
                commitment: f.commitment()?,
                due: f.time("due", &r.due)?,
                reason: f.text("reason", &r.reason)?,
            }
        }
        EventKind::CommitmentDelivered => {
            f.only(allowed(EventKind::CommitmentDelivered))?;
            Event::CommitmentDelivered { commitment: f.commitment()?, accepted: r.accepted.unwrap_or(true) }
        }
        EventKind::CommitmentCancelled => {
            f.only(allowed(EventKind::CommitmentCancelled))?;
            Event::CommitmentCancelled { commitment: f.commitment()?, reason: f.text("reason", &r.reason)? }
        }
        EventKind::EscalationRaised => {
            f.only(allowed(EventKind::EscalationRaised))?;
            let s = f.req("severity", &r.severity)?;
            let severity = parse_severity(s)
                .ok_or_else(|| invalid("severity", format!("{s:?} is not one of low, medium, high, critical")))?;
            Event::EscalationRaised { escalation: f.escalation()?, severity, summary: f.text("summary", &r.summary)? }
        }
        EventKind::EscalationAcknowledged => {
            f.only(allowed(EventKind::EscalationAcknowledged))?;
            Event::EscalationAcknowledged { escalation: f.escalation()? }
        }
        EventKind::EscalationResolved => {
            f.only(allowed(EventKind::EscalationResolved))?;
            Event::EscalationResolved { escalation: f.escalation()? }
        }
        EventKind::EscalationReopened => {
            f.only(allowed(EventKind::EscalationReopened))?;
            Event::EscalationReopened { escalation: f.escalation()? }
        }
        EventKind::SurveyAnswered => {
            f.only(allowed(EventKind::SurveyAnswered))?;
            let survey = f.key("survey", &r.survey, SurveyKey::new, SurveyKey::new_in)?;
            let score = match (r.nps, r.csat, r.ces) {
                (Some(v), None, None) => (SurveyScore::Nps as fn(u8) -> SurveyScore, "nps", v),
                (None, Some(v), None) => (SurveyScore::Csat as fn(u8) -> SurveyScore, "csat", v),
                (None, None, Some(v)) => (SurveyScore::Ces as fn(u8) -> SurveyScore, "ces", v),
                (None, None, None) => {
                    return Err(invalid("nps", "a survey answer needs exactly one of nps, csat or ces"));
                }
                _ => return Err(invalid("nps", "a survey answer holds exactly one of nps, csat or ces")),
            };
            let (make, field, v) = score;
            let answer = u8::try_from(v).map(make).map_err(|_| invalid(field, format!("{v} is out of range")))?;
            if !answer.in_range() {
                let range = answer.range();
                return Err(invalid(field, format!("{v} is outside {}..={}", range.start(), range.end())));
            }
            Event::SurveyAnswered { survey, score: answer, comment: f.text("comment", &r.comment)? }
        }
        EventKind::TouchpointHeld => {
            f.only(allowed(EventKind::TouchpointHeld))?;
            let s = f.req("channel", &r.channel)?;
            let channel = parse_channel(s)
                .ok_or_else(|| invalid("channel", format!("{s:?} is not one of meeting, call, email, chat, visit")))?;
            Event::TouchpointHeld { channel }
        }
        EventKind::IssueDisclosed => {
            f.only(allowed(EventKind::IssueDisclosed))?;
            Event::IssueDisclosed { summary: f.text("summary", &r.summary)? }
        }
        EventKind::AdvocacyGiven => {
            f.only(allowed(EventKind::AdvocacyGiven))?;
            let s = f.req("kind", &r.kind)?;
            let kind = parse_advocacy(s).ok_or_else(|| {
                invalid("kind", format!("{s:?} is not one of referral, reference, case_study, review"))
            })?;
            Event::AdvocacyGiven { kind }
        }
        EventKind::AccountProfiled => {
            f.only(allowed(EventKind::AccountProfiled))?;
            build_profile(f)?
        }
        EventKind::AssessmentRecorded => {
            f.only(allowed(EventKind::AssessmentRecorded))?;
            build_assessment(f)?
        }
    };
    Ok(event)
}

pub(super) fn parse_severity(s: &str) -> Option<Severity> {
    Some(match s {
        "low" => Severity::Low,
        "medium" => Severity::Medium,
        "high" => Severity::High,
        "critical" => Severity::Critical,
        _ => return None,
    })
}

pub(super) fn parse_channel(s: &str) -> Option<Channel> {
    Some(match s {
        "meeting" => Channel::Meeting,
        "call" => Channel::Call,
        "email" => Channel::Email,
        "chat" => Channel::Chat,
        "visit" => Channel::Visit,
        _ => return None,
    })
}

pub(super) fn parse_advocacy(s: &str) -> Option<AdvocacyKind> {
    Some(match s {
        "referral" => AdvocacyKind::Referral,
        "reference" => AdvocacyKind::Reference,
        "case_study" => AdvocacyKind::CaseStudy,
        "review" => AdvocacyKind::Review,
        _ => return None,
    })
}

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
        None => return Err(ParseEventError::MissingField { field: "reason", kind: f.kind }),
    };
    let valid_until = match &r.valid_until {
        None => None,
        Some(_) => Some(f.time("valid_until", &r.valid_until)?),
    };
    Ok(Event::AssessmentRecorded { sentiment, reason, valid_until })
}
