//! Proptest strategies that generate *valid* account histories with a realistic mix of every
//! event type. Every crate's property tests draw from these.

use proptest::collection::vec;
use proptest::prelude::*;

use crate::event::{AdvocacyKind, Channel, Event, NewEvent, Severity, SurveyScore};
use crate::id::{AccountId, CommitmentKey, EscalationKey, EventId, SurveyKey};
use crate::meta::Metadata;
use crate::profile::{Arr, Currency, Lifecycle, Profile};
use crate::testing::synth::{CommitmentEnding, ItemPlan, expand};
use crate::timestamp::Timestamp;

/// The base instant of generated histories: 2020-01-01T00:00:00Z, far enough back that every
/// generated event (two years of items, each up to two more years long) is in the past, as
/// an append requires.
pub const BASE: Timestamp = Timestamp::from_unix_seconds(1_577_836_800);

/// Hours in the generated window: two years.
pub const SPAN_HOURS: u32 = 2 * 8_760;

/// Any severity.
pub fn arb_severity() -> impl Strategy<Value = Severity> {
    prop_oneof![Just(Severity::Low), Just(Severity::Medium), Just(Severity::High), Just(Severity::Critical)]
}

/// Any channel.
pub fn arb_channel() -> impl Strategy<Value = Channel> {
    prop_oneof![
        Just(Channel::Meeting),
        Just(Channel::Call),
        Just(Channel::Email),
        Just(Channel::Chat),
        Just(Channel::Visit)
    ]
}

/// Any advocacy kind.
pub fn arb_advocacy_kind() -> impl Strategy<Value = AdvocacyKind> {
    prop_oneof![
        Just(AdvocacyKind::Referral),
        Just(AdvocacyKind::Reference),
        Just(AdvocacyKind::CaseStudy),
        Just(AdvocacyKind::Review)
    ]
}

/// Any in-range survey answer.
pub fn arb_survey_score() -> impl Strategy<Value = SurveyScore> {
    prop_oneof![
        (0u8..=10).prop_map(SurveyScore::Nps),
        (1u8..=5).prop_map(SurveyScore::Csat),
        (1u8..=7).prop_map(SurveyScore::Ces),
    ]
}

/// How a commitment with the given lead time (hours) ends: mostly on time, sometimes late,
/// renegotiated, cancelled, rejected or still open.
pub fn arb_ending(lead_hours: u32) -> impl Strategy<Value = CommitmentEnding> {
    prop_oneof![
        5 => (0..=lead_hours).prop_map(|at_hours| CommitmentEnding::Delivered { at_hours, accepted: true }),
        2 => (lead_hours + 1..lead_hours + 24 * 60, any::<bool>())
            .prop_map(|(at_hours, accepted)| CommitmentEnding::Delivered { at_hours, accepted }),
        1 => (0..lead_hours * 2, 1u32..24 * 60, proptest::option::of(0u32..24 * 90)).prop_map(
            move |(at_hours, extra, delivered)| CommitmentEnding::Renegotiated {
                at_hours,
                new_lead_hours: at_hours.max(lead_hours) + extra,
                delivered_hours: delivered.map(|d| at_hours + d),
            }
        ),
        1 => (0..lead_hours * 2).prop_map(|at_hours| CommitmentEnding::Cancelled { at_hours }),
        1 => Just(CommitmentEnding::Open),
    ]
}

/// One planned item anywhere in the two-year window, weighted like a real account's mix.
pub fn arb_item_plan() -> impl Strategy<Value = ItemPlan> {
    let at = 0..SPAN_HOURS;
    prop_oneof![
        4 => (at.clone(), 24u32..24 * 360, prop_oneof![Just(1.0), Just(0.5), Just(2.0), 0.1f64..5.0])
            .prop_flat_map(|(made_hours, lead_hours, weight)| {
                arb_ending(lead_hours).prop_map(move |ending| ItemPlan::Commitment {
                    made_hours,
                    lead_hours,
                    weight,
                    ending,
                })
            }),
        2 => (
            at.clone(),
            arb_severity(),
            proptest::option::weighted(0.9, 0u32..120),
            proptest::option::weighted(0.85, 0u32..24 * 30),
            proptest::option::weighted(0.1, (1u32..24 * 30, proptest::option::of(0u32..24 * 14))),
        )
            .prop_map(|(raised_hours, severity, ack_after_hours, resolve_after_hours, reopen)| {
                ItemPlan::Escalation { raised_hours, severity, ack_after_hours, resolve_after_hours, reopen }
            }),
        2 => (at.clone(), arb_survey_score()).prop_map(|(at_hours, score)| ItemPlan::Survey { at_hours, score }),
        3 => (at.clone(), arb_channel()).prop_map(|(at_hours, channel)| ItemPlan::Touchpoint { at_hours, channel }),
        1 => at.clone().prop_map(|at_hours| ItemPlan::Disclosure { at_hours }),
        1 => (at.clone(), arb_advocacy_kind()).prop_map(|(at_hours, kind)| ItemPlan::Advocacy { at_hours, kind }),
        1 => (at.clone(), arb_profile(), proptest::option::of(1u32..24 * 400)).prop_map(
            |(at_hours, profile, renews_after_hours)| {
                // No parent (the plan knows no other account), and never empty without it.
                let lifecycle = profile.lifecycle.or(Some(Lifecycle::Adoption));
                let profile = Box::new(Profile { parent: None, lifecycle, ..profile });
                ItemPlan::Profile { at_hours, profile, renews_after_hours }
            }
        ),
        1 => (at, 1u8..=5, proptest::option::of(1u32..24 * 200)).prop_map(|(at_hours, sentiment, valid_hours)| {
            ItemPlan::Assessment { at_hours, sentiment, valid_hours }
        }),
    ]
}

/// Any valid profile (of an account other than its `parent`, which is an `acct-N` id or
/// none; [`arb_new_event`] keeps it apart from the account).
pub fn arb_profile() -> impl Strategy<Value = Profile> {
    let key = || proptest::option::of("[a-z0-9_é-]{1,16}");
    let arr = proptest::option::of((0.01f64..1e9, "[A-Z]{3}"));
    let lifecycle = proptest::option::of(proptest::sample::select(Lifecycle::ALL.to_vec()));
    let time = proptest::option::of((-2_000_000_000i64..7_000_000_000).prop_map(Timestamp::from_unix_seconds));
    let parent = proptest::option::of((0u32..50).prop_map(|n| format!("parent-{n}")));
    let owner =
        proptest::option::of("\\PC{1,30}".prop_filter("no control characters", |s| !s.chars().any(char::is_control)));
    (key(), key(), arr, parent, lifecycle, time, owner).prop_filter_map(
        "a valid profile",
        |(segment, tier, arr, parent, lifecycle, renews_at, owner)| {
            let arr = match arr {
                Some((amount, code)) => Some(Arr { amount, currency: Currency::new(&code).ok()? }),
                None => None,
            };
            let parent = match parent {
                Some(p) => Some(AccountId::new(&p).ok()?),
                None => None,
            };
            let p = Profile { segment, tier, arr, parent, lifecycle, renews_at, owner };
            p.check("").is_ok().then_some(p)
        },
    )
}

/// An account id, sometimes with awkward but valid characters.
pub fn arb_account_id() -> impl Strategy<Value = AccountId> {
    prop_oneof![
        4 => (0u32..1000).prop_map(|n| format!("acct-{n}")),
        1 => "[a-zA-Z0-9 '\"\\\\._-]{1,24}",
        1 => "\\PC{1,12}",
    ]
    .prop_filter_map("valid account id", |s| AccountId::new(&s).ok())
}

/// Plans for one account: up to `max_items` items.
pub fn arb_plans(max_items: usize) -> impl Strategy<Value = Vec<ItemPlan>> {
    vec(arb_item_plan(), 0..=max_items)
}

/// One account's valid history, sorted by time (up to 40 items, about 100 events).
pub fn arb_account_history() -> impl Strategy<Value = Vec<NewEvent>> {
    (arb_account_id(), arb_plans(40)).prop_map(|(account, plans)| expand(&account, BASE, &plans, 0, None))
}

/// A valid multi-account history (1–4 accounts), each account's events in time order and the
/// accounts interleaved.
pub fn arb_portfolio() -> impl Strategy<Value = Vec<NewEvent>> {
    vec((arb_plans(25), any::<u8>()), 1..=4).prop_map(|accounts| {
        let mut streams: Vec<std::vec::IntoIter<NewEvent>> = accounts
            .iter()
            .enumerate()
            .map(|(i, (plans, _))| {
                let account = AccountId::new(&format!("acct-{i}")).unwrap_or_else(|e| unreachable!("{e}"));
                expand(&account, BASE, plans, 0, None).into_iter()
            })
            .collect();
        // Interleave round-robin, driven by each account's byte, keeping per-account order.
        let mut out = Vec::new();
        let mut turn = 0usize;
        while streams.iter().any(|s| s.len() > 0) {
            let i = turn % streams.len();
            let take = 1 + usize::from(accounts[i].1 % 3);
            out.extend(streams[i].by_ref().take(take));
            turn += 1;
        }
        out
    })
}

/// Any one event of any type, with arbitrary valid keys, text and values (not tied to a
/// history: for codecs and forms, which take every event the parser does).
pub fn arb_event() -> impl Strategy<Value = Event> {
    let key = || "[a-zA-Z0-9_.:é-]{1,24}";
    let text = || "\\PC{0,60}";
    let maybe = || proptest::option::of("\\PC{0,60}");
    let time = || (-2_000_000_000i64..7_000_000_000).prop_map(Timestamp::from_unix_seconds);
    let ck = |k: String| CommitmentKey::new(&k).ok();
    let ek = |k: String| EscalationKey::new(&k).ok();
    prop_oneof![
        (key(), text(), time(), 0.01f64..100.0).prop_filter_map("key", move |(k, title, due, weight)| {
            Some(Event::CommitmentMade { commitment: ck(k)?, title, due, weight })
        }),
        (key(), time(), maybe()).prop_filter_map("key", move |(k, due, reason)| {
            Some(Event::CommitmentRenegotiated { commitment: ck(k)?, due, reason })
        }),
        (key(), any::<bool>()).prop_filter_map("key", move |(k, accepted)| {
            Some(Event::CommitmentDelivered { commitment: ck(k)?, accepted })
        }),
        (key(), maybe())
            .prop_filter_map("key", move |(k, reason)| Some(Event::CommitmentCancelled { commitment: ck(k)?, reason })),
        (key(), arb_severity(), maybe()).prop_filter_map("key", move |(k, severity, summary)| {
            Some(Event::EscalationRaised { escalation: ek(k)?, severity, summary })
        }),
        (key(), 0u8..3).prop_filter_map("key", move |(k, which)| {
            let escalation = ek(k)?;
            Some(match which {
                0 => Event::EscalationAcknowledged { escalation },
                1 => Event::EscalationResolved { escalation },
                _ => Event::EscalationReopened { escalation },
            })
        }),
        (key(), arb_survey_score(), maybe()).prop_filter_map("key", |(k, score, comment)| {
            Some(Event::SurveyAnswered { survey: SurveyKey::new(&k).ok()?, score, comment })
        }),
        arb_channel().prop_map(|channel| Event::TouchpointHeld { channel }),
        maybe().prop_map(|summary| Event::IssueDisclosed { summary }),
        arb_advocacy_kind().prop_map(|kind| Event::AdvocacyGiven { kind }),
        arb_profile().prop_map(|profile| Event::AccountProfiled { profile: Box::new(profile) }),
        (1u8..=5, text(), proptest::option::of(time())).prop_map(|(sentiment, reason, valid_until)| {
            Event::AssessmentRecorded { sentiment, reason, valid_until }
        }),
    ]
}

/// Any valid metadata: each field set or not, up to five tags.
pub fn arb_metadata() -> impl Strategy<Value = Metadata> {
    let value = || proptest::option::of("\\PC{1,40}");
    (value(), value(), value(), value(), vec(("[a-z0-9_.:-]{1,12}", "\\PC{0,20}"), 0..5)).prop_filter_map(
        "valid metadata",
        |(actor, source, correlation, causation, tags)| {
            let mut m = Metadata::new();
            if let Some(v) = actor {
                m = m.with_actor(v).ok()?;
            }
            if let Some(v) = source {
                m = m.with_source(v).ok()?;
            }
            if let Some(v) = correlation {
                m = m.with_correlation_id(v).ok()?;
            }
            if let Some(v) = causation {
                m = m.with_causation_id(v).ok()?;
            }
            for (name, value) in tags {
                m = m.with_tag(name, value).ok()?;
            }
            Some(m)
        },
    )
}

/// Any one submitted event of any type ([`arb_event`]), with an arbitrary id, account and
/// time, and no metadata; valid by [`check_event`](crate::validate::check_event) (a profile's
/// parent is not the account, an assessment's `valid_until` is after its time).
pub fn arb_new_event() -> impl Strategy<Value = NewEvent> {
    (1u128.., arb_account_id(), (-2_000_000_000i64..7_000_000_000), arb_event()).prop_filter_map(
        "a profile of its own parent",
        |(id, account, t, mut event)| {
            let occurred_at = Timestamp::from_unix_seconds(t);
            match &mut event {
                Event::AccountProfiled { profile } if profile.check(account.as_str()).is_err() => return None,
                Event::AssessmentRecorded { valid_until: Some(until), .. } if *until <= occurred_at => {
                    *until = occurred_at.add_nanos(crate::timestamp::NANOS_PER_HOUR);
                }
                _ => {}
            }
            Some(NewEvent {
                id: EventId::from_bytes(id.to_be_bytes()),
                account,
                occurred_at,
                event,
                meta: Metadata::new(),
            })
        },
    )
}
