//! Seeded synthetic histories: item plans that expand into valid event sequences, and a
//! deterministic generator of whole portfolios for examples, benches and the CLI.
//!
//! The proptest strategies in `testing` generate the same [`ItemPlan`]s, so property tests and
//! benches exercise one notion of a "realistic" history.

use crate::event::{AdvocacyKind, Channel, Event, NewEvent, Severity, SurveyScore};
use crate::id::{AccountId, CommitmentKey, EscalationKey, EventId, SurveyKey};
use crate::profile::{Arr, Currency, Lifecycle, Profile};
use crate::timestamp::{NANOS_PER_HOUR, Timestamp};

/// How a planned commitment ends. Offsets are hours after the commitment was made.
#[derive(Debug, Clone, PartialEq)]
pub enum CommitmentEnding {
    /// Never delivered nor cancelled (yet).
    Open,
    /// Delivered `at_hours` after it was made (before or after the due date).
    Delivered {
        /// Hours after made.
        at_hours: u32,
        /// Accepted by the customer.
        accepted: bool,
    },
    /// Renegotiated `at_hours` after made to a due date `new_lead_hours` after made, then
    /// maybe delivered `delivered_hours` after made (clamped to after the renegotiation).
    Renegotiated {
        /// Hours after made.
        at_hours: u32,
        /// New due date, in hours after made.
        new_lead_hours: u32,
        /// Delivery time in hours after made, if delivered.
        delivered_hours: Option<u32>,
    },
    /// Cancelled `at_hours` after made.
    Cancelled {
        /// Hours after made.
        at_hours: u32,
    },
}

/// One planned item of an account's history, timed in hours after a base instant.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemPlan {
    /// A commitment and its ending.
    Commitment {
        /// When it was made.
        made_hours: u32,
        /// Due, in hours after made.
        lead_hours: u32,
        /// Its weight.
        weight: f64,
        /// How it ends.
        ending: CommitmentEnding,
    },
    /// An escalation and its handling.
    Escalation {
        /// When it was raised.
        raised_hours: u32,
        /// Its severity.
        severity: Severity,
        /// Acknowledged this many hours after raised, if at all.
        ack_after_hours: Option<u32>,
        /// Resolved this many hours after the acknowledgement (or the raise), if at all.
        resolve_after_hours: Option<u32>,
        /// Reopened this many hours after resolution (only if resolved), then resolved again
        /// after the second number of hours, if given.
        reopen: Option<(u32, Option<u32>)>,
    },
    /// A survey answer.
    Survey {
        /// When.
        at_hours: u32,
        /// The answer.
        score: SurveyScore,
    },
    /// A touchpoint.
    Touchpoint {
        /// When.
        at_hours: u32,
        /// How.
        channel: Channel,
    },
    /// A disclosed issue.
    Disclosure {
        /// When.
        at_hours: u32,
    },
    /// Advocacy.
    Advocacy {
        /// When.
        at_hours: u32,
        /// How.
        kind: AdvocacyKind,
    },
    /// A profile of the account.
    Profile {
        /// When.
        at_hours: u32,
        /// The profile (its `renews_at` set from `renews_after_hours` when given).
        profile: Box<Profile>,
        /// The renewal date, in hours after the profile.
        renews_after_hours: Option<u32>,
    },
    /// A manual assessment.
    Assessment {
        /// When.
        at_hours: u32,
        /// 1 to 5.
        sentiment: u8,
        /// Valid for this many hours, or the model's default when `None`.
        valid_hours: Option<u32>,
    },
}

/// Expands plans into one account's valid history, sorted by `occurred_at`.
///
/// Ids are v5 ids derived from `(salt, account, index)`, so the same plans give the same events.
/// Events after `until` (when given) are left out, so open items stay open.
pub fn expand(
    account: &AccountId,
    base: Timestamp,
    plans: &[ItemPlan],
    salt: u64,
    until: Option<Timestamp>,
) -> Vec<NewEvent> {
    let mut steps = Steps { account, base, salt, seq: 0, out: Vec::with_capacity(plans.len() * 3) };
    for (i, plan) in plans.iter().enumerate() {
        match plan {
            ItemPlan::Commitment { made_hours, lead_hours, weight, ending } => {
                steps.commitment(i, u64::from(*made_hours), u64::from(*lead_hours), *weight, ending);
            }
            ItemPlan::Escalation { raised_hours, severity, ack_after_hours, resolve_after_hours, reopen } => {
                steps.escalation(
                    i,
                    u64::from(*raised_hours),
                    *severity,
                    *ack_after_hours,
                    *resolve_after_hours,
                    *reopen,
                );
            }
            ItemPlan::Survey { at_hours, score } => {
                let survey = key(SurveyKey::new, "s", i);
                steps.push(u64::from(*at_hours), Event::SurveyAnswered { survey, score: *score, comment: None });
            }
            ItemPlan::Touchpoint { at_hours, channel } => {
                steps.push(u64::from(*at_hours), Event::TouchpointHeld { channel: *channel });
            }
            ItemPlan::Disclosure { at_hours } => {
                steps.push(u64::from(*at_hours), Event::IssueDisclosed { summary: None });
            }
            ItemPlan::Advocacy { at_hours, kind } => {
                steps.push(u64::from(*at_hours), Event::AdvocacyGiven { kind: *kind });
            }
            ItemPlan::Profile { at_hours, profile, renews_after_hours } => {
                let mut profile = profile.clone();
                if let Some(h) = renews_after_hours {
                    let hours = i64::from(*at_hours) + i64::from(*h);
                    profile.renews_at = Some(base.add_nanos(hours.saturating_mul(NANOS_PER_HOUR)));
                }
                steps.push(u64::from(*at_hours), Event::AccountProfiled { profile });
            }
            ItemPlan::Assessment { at_hours, sentiment, valid_hours } => {
                let valid_until = valid_hours.map(|h| {
                    base.add_nanos((i64::from(*at_hours) + i64::from(h.max(1))).saturating_mul(NANOS_PER_HOUR))
                });
                let reason = format!("quarterly review {i}");
                steps.push(
                    u64::from(*at_hours),
                    Event::AssessmentRecorded { sentiment: *sentiment, reason, valid_until },
                );
            }
        }
    }
    let mut out = steps.out;
    // A stable sort keeps each item's steps in order when their times tie.
    out.sort_by_key(|e| e.occurred_at);
    if let Some(until) = until {
        out.retain(|e| e.occurred_at <= until);
    }
    out
}

/// One account's events as [`expand`] writes them, in plan order, each with the next id.
struct Steps<'a> {
    account: &'a AccountId,
    base: Timestamp,
    salt: u64,
    seq: u64,
    out: Vec<NewEvent>,
}

impl Steps<'_> {
    /// The event `hours` after the base time.
    fn push(&mut self, hours: u64, event: Event) {
        let key = format!("synth:{}:{}:{}", self.salt, self.account, self.seq);
        self.seq += 1;
        let occurred_at = self.base.add_nanos((hours as i64).saturating_mul(NANOS_PER_HOUR));
        self.out.push(NewEvent {
            id: EventId::derive(key.as_bytes()),
            account: self.account.clone(),
            occurred_at,
            event,
            meta: Default::default(),
        });
    }

    /// Commitment `i`, made at `made` and due `lead` hours later, then its ending.
    fn commitment(&mut self, i: usize, made: u64, lead: u64, weight: f64, ending: &CommitmentEnding) {
        let commitment = key(CommitmentKey::new, "c", i);
        let title = format!("deliverable {i}");
        let due = self.base.add_nanos(((made + lead) as i64).saturating_mul(NANOS_PER_HOUR));
        self.push(made, Event::CommitmentMade { commitment: commitment.clone(), title, due, weight });
        match ending {
            CommitmentEnding::Open => {}
            CommitmentEnding::Delivered { at_hours, accepted } => {
                self.push(made + u64::from(*at_hours), Event::CommitmentDelivered { commitment, accepted: *accepted })
            }
            CommitmentEnding::Renegotiated { at_hours, new_lead_hours, delivered_hours } => {
                let reneg = made + u64::from(*at_hours);
                let due =
                    self.base.add_nanos(((made + u64::from(*new_lead_hours)) as i64).saturating_mul(NANOS_PER_HOUR));
                let reason = Some("scope change".into());
                self.push(reneg, Event::CommitmentRenegotiated { commitment: commitment.clone(), due, reason });
                if let Some(d) = delivered_hours {
                    let when = (made + u64::from(*d)).max(reneg);
                    self.push(when, Event::CommitmentDelivered { commitment, accepted: true });
                }
            }
            CommitmentEnding::Cancelled { at_hours } => {
                self.push(made + u64::from(*at_hours), Event::CommitmentCancelled { commitment, reason: None });
            }
        }
    }

    /// Escalation `i`, raised at `raised`, then acknowledged, resolved, reopened and resolved
    /// again as far as its plan goes, each step after the one before.
    fn escalation(
        &mut self,
        i: usize,
        raised: u64,
        severity: Severity,
        ack_after: Option<u32>,
        resolve_after: Option<u32>,
        reopen: Option<(u32, Option<u32>)>,
    ) {
        let escalation = key(EscalationKey::new, "e", i);
        let mut t = raised;
        self.push(t, Event::EscalationRaised { escalation: escalation.clone(), severity, summary: None });
        if let Some(a) = ack_after {
            t += u64::from(a);
            self.push(t, Event::EscalationAcknowledged { escalation: escalation.clone() });
        }
        let Some(r) = resolve_after else { return };
        t += u64::from(r);
        self.push(t, Event::EscalationResolved { escalation: escalation.clone() });
        if let Some((again, second)) = reopen {
            t += u64::from(again);
            self.push(t, Event::EscalationReopened { escalation: escalation.clone() });
            if let Some(s) = second {
                t += u64::from(s);
                self.push(t, Event::EscalationResolved { escalation });
            }
        }
    }
}

fn key<K>(make: fn(&str) -> Result<K, crate::ParseIdError>, prefix: &str, i: usize) -> K {
    match make(&format!("{prefix}-{i}")) {
        Ok(k) => k,
        // A short ASCII key is always valid.
        Err(e) => unreachable!("synthetic key {prefix}-{i}: {e}"),
    }
}

/// A small, fast, seedable PRNG (SplitMix64). Deterministic across platforms and releases.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

/// Settings for [`generate`]. By default: 100 accounts, 24 months from 2020-01-01, seed 1.
///
/// Every generated event is valid as of [`end`](Self::end): its times lie between `start`
/// and `end`, and its due dates at most [`DUE_AFTER_END_MAX_HOURS`] after `end`. A history
/// that ends in the future holds events an append refuses (they would occur in the future).
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    /// How many accounts.
    pub accounts: u32,
    /// How many months of history per account.
    pub months: u32,
    /// The seed; the same config always gives the same events.
    pub seed: u64,
    /// When the history starts.
    pub start: Timestamp,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self { accounts: 100, months: 24, seed: 1, start: Timestamp::from_unix_seconds(1_577_836_800) }
    }
}

impl SynthConfig {
    /// When the history ends: `start` plus `months` of 730 hours. No event occurs later.
    pub fn end(&self) -> Timestamp {
        let months = i64::from(self.months.min(MONTHS_MAX));
        self.start.add_nanos(months * i64::from(HOURS_PER_MONTH) * NANOS_PER_HOUR)
    }
}

/// How far after [`SynthConfig::end`] a generated commitment may be due, in hours: a
/// commitment made in the last month with the longest lead, renegotiated by the most.
pub const DUE_AFTER_END_MAX_HOURS: u32 = 24 * (14 + 49 + 7 + 20);

const HOURS_PER_MONTH: u32 = 730;

/// The most months [`generate`] plans per account (100 years); larger requests are clamped.
pub const MONTHS_MAX: u32 = 1_200;

/// Plans one account's history. `quality` in [0, 1] sets how well we treat the customer.
pub fn plan_account(rng: &mut SplitMix64, months: u32, quality: f64) -> Vec<ItemPlan> {
    let months = months.min(MONTHS_MAX);
    let mut plans = Vec::new();
    for month in 0..months {
        let m0 = month * HOURS_PER_MONTH;
        let t = |rng: &mut SplitMix64| m0 + rng.below(HOURS_PER_MONTH);
        for _ in 0..rng.below(3) {
            let lead = 24 * (14 + rng.below(50));
            let r = rng.unit();
            let ending = if r < quality * 0.8 {
                CommitmentEnding::Delivered {
                    at_hours: lead - rng.below(lead / 2),
                    accepted: rng.chance(0.9 + 0.1 * quality),
                }
            } else if r < quality * 0.8 + 0.08 {
                let at_hours = rng.below(lead);
                let new_lead = lead + 24 * (7 + rng.below(21));
                CommitmentEnding::Renegotiated {
                    at_hours,
                    new_lead_hours: new_lead,
                    delivered_hours: Some(new_lead - rng.below(new_lead - at_hours).min(24 * 7)),
                }
            } else if r < quality * 0.8 + 0.12 {
                CommitmentEnding::Cancelled { at_hours: rng.below(lead * 2) }
            } else if r < 0.97 {
                CommitmentEnding::Delivered { at_hours: lead + 24 * (1 + rng.below(40)), accepted: rng.chance(0.7) }
            } else {
                CommitmentEnding::Open
            };
            plans.push(ItemPlan::Commitment {
                made_hours: t(rng),
                lead_hours: lead,
                weight: [0.5, 1.0, 1.0, 2.0][rng.below(4) as usize],
                ending,
            });
        }
        if rng.chance(0.35 + 0.3 * (1.0 - quality)) {
            let severity = [Severity::Low, Severity::Medium, Severity::Medium, Severity::High, Severity::Critical]
                [rng.below(5) as usize];
            let slow = !rng.chance(quality);
            let ack = if slow { 2 + rng.below(96) } else { rng.below(2) };
            let resolve = if slow { 24 + rng.below(24 * 20) } else { 1 + rng.below(20) };
            plans.push(ItemPlan::Escalation {
                raised_hours: t(rng),
                severity,
                ack_after_hours: Some(ack),
                resolve_after_hours: Some(resolve),
                reopen: rng.chance(0.1).then(|| (24 + rng.below(200), Some(1 + rng.below(48)))),
            });
        }
        if month % 3 == 2 {
            let good = rng.chance(quality);
            let at = t(rng);
            let score = match rng.below(3) {
                0 => SurveyScore::Nps(if good { 8 + rng.below(3) as u8 } else { rng.below(8) as u8 }),
                1 => SurveyScore::Csat(if good { 4 + rng.below(2) as u8 } else { 1 + rng.below(3) as u8 }),
                _ => SurveyScore::Ces(if good { 1 + rng.below(3) as u8 } else { 4 + rng.below(4) as u8 }),
            };
            plans.push(ItemPlan::Survey { at_hours: at, score });
        }
        for _ in 0..(1 + rng.below(4)) {
            let channel =
                [Channel::Meeting, Channel::Call, Channel::Email, Channel::Chat, Channel::Visit][rng.below(5) as usize];
            plans.push(ItemPlan::Touchpoint { at_hours: t(rng), channel });
        }
        if rng.chance(0.08) {
            plans.push(ItemPlan::Disclosure { at_hours: t(rng) });
        }
        if rng.chance(0.05 * quality) {
            let kind = [AdvocacyKind::Referral, AdvocacyKind::Reference, AdvocacyKind::CaseStudy, AdvocacyKind::Review]
                [rng.below(4) as usize];
            plans.push(ItemPlan::Advocacy { at_hours: t(rng), kind });
        }
    }
    plans
}

/// Plans account `n`'s profiles and assessments, from a generator of their own (so the
/// rest of a portfolio is the same with or without them). A profile at the start, restated
/// (ARR grown or shrunk with `quality`, the next renewal date) at each yearly renewal; in
/// groups of five, the first account of every other group is the parent of the four after it.
/// Every quarter, most accounts get a CSM's assessment: usually close to `quality`, sometimes
/// an optimistic "green" whatever the evidence, sometimes with a stated validity of 30 days.
pub fn plan_profile(rng: &mut SplitMix64, n: u32, months: u32, quality: f64) -> Vec<ItemPlan> {
    let months = months.min(MONTHS_MAX);
    let mut plans = Vec::new();
    let segments = ["smb", "mid_market", "enterprise"];
    let mut arr = [12_000.0, 60_000.0, 250_000.0][rng.below(3) as usize] * (0.5 + rng.unit());
    let parent =
        (!n.is_multiple_of(5) && (n / 5).is_multiple_of(2)).then(|| key(AccountId::new, "acct", (n - n % 5) as usize));
    let owner = format!("csm-{}", rng.below(12));
    for year in 0..months.div_ceil(12) {
        let at_hours = year * 12 * HOURS_PER_MONTH + u32::from(year > 0) * rng.below(48);
        let segment = if arr >= 100_000.0 {
            2
        } else if arr >= 30_000.0 {
            1
        } else {
            0
        };
        let lifecycle = match year {
            0 => Lifecycle::Onboarding,
            _ if quality < 0.25 && rng.chance(0.3) => Lifecycle::Churned,
            _ if quality > 0.7 => Lifecycle::Expansion,
            _ => Lifecycle::Adoption,
        };
        let profile = Profile {
            segment: Some(segments[segment].to_owned()),
            tier: Some(["bronze", "silver", "gold"][segment].to_owned()),
            arr: Currency::new("USD").ok().map(|currency| Arr { amount: (arr * 100.0).round() / 100.0, currency }),
            parent: parent.clone(),
            lifecycle: Some(lifecycle),
            renews_at: None,
            owner: Some(owner.clone()),
        };
        let renews_after_hours = Some((year + 1) * 12 * HOURS_PER_MONTH - at_hours);
        plans.push(ItemPlan::Profile { at_hours, profile: Box::new(profile), renews_after_hours });
        arr = (arr * (0.8 + 0.5 * quality)).clamp(1_000.0, 50_000_000.0);
    }
    for quarter in 0..months / 3 {
        if !rng.chance(0.7) {
            continue;
        }
        let at_hours = (quarter * 3 + 2) * HOURS_PER_MONTH + rng.below(HOURS_PER_MONTH);
        let sentiment = if rng.chance(0.15) {
            4 + rng.below(2) as u8
        } else {
            let noisy = (quality * 4.0 + 1.0 + (rng.unit() - 0.5) * 1.5).round();
            noisy.clamp(1.0, 5.0) as u8
        };
        let valid_hours = rng.chance(0.2).then_some(30 * 24);
        plans.push(ItemPlan::Assessment { at_hours, sentiment, valid_hours });
    }
    plans
}

/// A deterministic portfolio history: account after account, each sorted by time.
///
/// Memory stays flat: one account's events are buffered at a time.
///
/// ```
/// use rapport_core::testing::synth::{generate, SynthConfig};
/// let events: Vec<_> = generate(SynthConfig { accounts: 3, months: 6, ..Default::default() }).collect();
/// assert!(events.len() > 30);
/// ```
pub fn generate(mut config: SynthConfig) -> Generate {
    config.months = config.months.min(MONTHS_MAX);
    Generate { rng: SplitMix64::new(config.seed), config, next_account: 0, buffer: Vec::new().into_iter() }
}

/// The iterator [`generate`] returns.
#[derive(Debug)]
pub struct Generate {
    config: SynthConfig,
    rng: SplitMix64,
    next_account: u32,
    buffer: std::vec::IntoIter<NewEvent>,
}

impl Iterator for Generate {
    type Item = NewEvent;

    fn next(&mut self) -> Option<NewEvent> {
        loop {
            if let Some(e) = self.buffer.next() {
                return Some(e);
            }
            if self.next_account >= self.config.accounts {
                return None;
            }
            let n = self.next_account;
            self.next_account += 1;
            let account = key(AccountId::new, "acct", n as usize);
            // Qualities spread from struggling to excellent, skewed towards good.
            let quality = 1.0 - (self.rng.unit() * self.rng.unit());
            let mut plans = plan_account(&mut self.rng, self.config.months, quality);
            // Their own generator: the rest of the portfolio is the same as before they existed.
            let mut own =
                SplitMix64::new(self.config.seed ^ u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5052_4F46);
            plans.extend(plan_profile(&mut own, n, self.config.months, quality));
            let until = self.config.end();
            self.buffer = expand(&account, self.config.start, &plans, self.config.seed, Some(until)).into_iter();
        }
    }
}
