//! rapport-trust's integration tests: the outcome rules, given/then.

use std::sync::Arc;

use rapport_core::testing::story::{Story, day};
use rapport_core::{Projection, Severity};
use rapport_trust::{Band, Score, TrustModel, TrustProjection};

fn given(story: Story) -> Given {
    Given { story }
}

struct Given {
    story: Story,
}

impl Given {
    fn at(&self, days: f64) -> Score {
        let mut p = TrustProjection::new(Arc::new(TrustModel::default()));
        for e in self.story.envelopes().iter().filter(|e| e.occurred_at <= day(days)) {
            p.apply(&e.view());
        }
        p.evaluate(day(days))
    }
}

fn value(s: &Score, factor: &str) -> f64 {
    s.factor(factor).map(|f| f.value).unwrap_or(f64::NAN)
}

#[test]
fn an_overdue_open_commitment_fails_at_evaluation_time_without_any_stored_event() {
    let g = given(Story::new("a").commit("c", 0.0, 10.0));
    let before_due = g.at(9.0);
    let after_due = g.at(11.0);
    assert!(value(&after_due, "reliability") < value(&before_due, "reliability"));
    assert!(value(&after_due, "candour") < value(&before_due, "candour"), "a silent slip");
    assert_eq!(before_due.factor("reliability").unwrap().confidence, 0.0, "nothing is due yet");
}

#[test]
fn failures_count_at_the_deadline_so_late_beats_never() {
    let late = given(Story::new("a").commit("c", 0.0, 10.0).deliver("c", 40.0, true)).at(60.0);
    let never = given(Story::new("a").commit("c", 0.0, 10.0)).at(60.0);
    assert!(late.score >= never.score);
    assert!(value(&late, "reliability") > value(&never, "reliability"));
}

#[test]
fn the_early_delivery_bonus_is_capped() {
    let model = TrustModel::default();
    // Delivered the moment it was promised: the full bonus, and no more.
    let s = given(Story::new("a").commit("c", 0.0, 100.0).deliver("c", 0.0, true)).at(100.0);
    let (pos, n0) = (1.0 + model.early_bonus_max, model.reliability.prior_strength);
    let expected = (model.reliability.prior_mean * n0 + pos) / (n0 + pos);
    assert!((value(&s, "reliability") - expected).abs() < 1e-9, "{} vs {expected}", value(&s, "reliability"));
}

#[test]
fn early_renegotiation_scores_between_keeping_and_slipping() {
    let keep = given(Story::new("a").commit("c", 0.0, 10.0).deliver("c", 9.0, true)).at(30.0);
    let reneg =
        given(Story::new("a").commit("c", 0.0, 10.0).renegotiate("c", 5.0, 20.0).deliver("c", 19.0, true)).at(30.0);
    let slip = given(Story::new("a").commit("c", 0.0, 10.0).deliver("c", 19.0, true)).at(30.0);
    assert!(keep.score > reneg.score && reneg.score > slip.score, "{} > {} > {}", keep.score, reneg.score, slip.score);
    let late_reneg =
        given(Story::new("a").commit("c", 0.0, 10.0).renegotiate("c", 12.0, 20.0).deliver("c", 19.0, true)).at(30.0);
    assert!(value(&late_reneg, "candour") < value(&reneg, "candour"), "renegotiating after the due date is a slip");
}

#[test]
fn sla_targets_come_from_severity() {
    // Acknowledged after two hours: within SLA for high (4 h), not for critical (1 h).
    let high = given(Story::new("a").escalate("e", 0.0, Severity::High).ack("e", 2.0 / 24.0)).at(0.5);
    let critical = given(Story::new("a").escalate("e", 0.0, Severity::Critical).ack("e", 2.0 / 24.0)).at(0.5);
    let prior = TrustModel::default().responsiveness.prior_mean;
    assert!(value(&high, "responsiveness") > prior);
    assert!(value(&critical, "responsiveness") < prior);
}

#[test]
fn an_unacknowledged_escalation_breaches_its_sla_at_evaluation_time() {
    let g = given(Story::new("a").escalate("e", 0.0, Severity::Critical));
    assert_eq!(g.at(0.5 / 24.0).factor("responsiveness").unwrap().confidence, 0.0);
    assert!(value(&g.at(2.0 / 24.0), "responsiveness") < value(&g.at(0.5 / 24.0), "responsiveness"));
    assert!(value(&g.at(2.0), "responsiveness") < value(&g.at(2.0 / 24.0), "responsiveness"), "then resolution too");
}

#[test]
fn reopening_costs_responsiveness() {
    let base = Story::new("a").escalate("e", 0.0, Severity::Medium).ack("e", 0.1).resolve("e", 1.0);
    let clean = given(base.clone()).at(20.0);
    let reopened = given(base.reopen("e", 5.0).resolve("e", 6.0)).at(20.0);
    assert!(value(&reopened, "responsiveness") < value(&clean, "responsiveness"));
}

#[test]
fn disclosure_builds_candour_and_factors_name_their_events() {
    let story = Story::new("a").disclose(1.0).disclose(2.0);
    let ids: Vec<_> = story.events().iter().map(|e| e.id).collect();
    let s = given(story).at(10.0);
    let candour = s.factor("candour").unwrap();
    assert!(candour.value > TrustModel::default().candour.prior_mean);
    assert_eq!(candour.top_events[..], [ids[1], ids[0]], "the more recent disclosure weighs more");
    assert_eq!(s.model, "rapport-trust/1");
}

#[test]
fn no_evidence_is_grey_at_the_prior() {
    let s = given(Story::new("a").meeting(1.0)).at(10.0);
    assert_eq!(s.band, Band::Grey);
    assert_eq!(s.confidence, 0.0);
    let m = TrustModel::default();
    let prior =
        100.0 * (0.5 * m.reliability.prior_mean + 0.25 * m.candour.prior_mean + 0.25 * m.responsiveness.prior_mean);
    assert!((s.score - prior).abs() < 1e-9);
}

#[test]
fn checkpoint_restores_through_the_projection_contract() {
    let story = Story::new("a").commit("c", 0.0, 10.0).escalate("e", 1.0, Severity::High).deliver("c", 12.0, true);
    let envs = story.envelopes();
    let mut p = TrustProjection::new(Arc::new(TrustModel::default()));
    p.apply(&envs[0].view());
    p.apply(&envs[1].view());
    let saved = serde_json::to_string(&p.checkpoint()).unwrap();
    let mut q = TrustProjection::restore(serde_json::from_str(&saved).unwrap());
    p.apply(&envs[2].view());
    q.apply(&envs[2].view());
    assert_eq!(p.evaluate(day(30.0)), q.evaluate(day(30.0)));
}

#[test]
fn the_model_is_a_serde_config_with_defaults() {
    let m: TrustModel = serde_json::from_str(r#"{"early_bonus_max":0.1}"#).unwrap();
    assert_eq!(m.early_bonus_max, 0.1);
    assert_eq!(m.reliability, TrustModel::default().reliability);
    assert!(serde_json::from_str::<TrustModel>(r#"{"early_bonus":0.1}"#).is_err(), "typos are refused");
}
