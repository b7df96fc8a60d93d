//! Rollups: a parent account's health from its children's, weighted by contract value as of the
//! instant evaluated (`docs/scoring.md`, "Rollups").
//!
//! The children of P are the accounts whose profile (as of T) names P as `parent`; P's own
//! events, when it has any, count as one more child. A child that is itself a parent counts
//! with its rolled-up health, so a group of groups rolls up level by level (leaves first,
//! without recursion). Weights are the children's ARR when every one states it in one
//! currency; otherwise every child weighs the same and the rollup says why. A cycle of parent
//! links is reported, and its accounts get no rollup: nothing loops on it.

use std::collections::{BTreeMap, HashMap};

use rapport_core::AccountId;
use serde::Serialize;

use crate::portfolio::AccountScores;
use crate::{Band, HealthModel};

/// How a rollup weighed its children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "by")]
pub enum Weighting {
    /// By annual contract value, all in this currency.
    Arr {
        /// The currency.
        currency: String,
    },
    /// Equally, because `reason`.
    Equal {
        /// Why not by contract value: a child states none, or the currencies differ.
        reason: String,
    },
}

/// A parent account's rolled-up health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollup {
    /// The parent.
    pub account: AccountId,
    /// Σ wᵢ·hᵢ / Σ wᵢ over its children (and itself, when it has events).
    pub health: f64,
    /// Σ wᵢ·coverageᵢ / Σ wᵢ: how much of the value the evidence covers.
    pub confidence: f64,
    /// The band of `health` read with `confidence`.
    pub band: Band,
    /// How the children were weighed.
    pub weighting: Weighting,
    /// The children counted (itself included, when it has events), in id order.
    pub children: Vec<AccountId>,
    /// Σ wᵢ: the value covered (the ARR summed, or the number of children when weighed equally).
    pub value: f64,
}

/// What [`rollups`] found: a rollup per parent, and the cycles it refused to follow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollups {
    /// One per account named as a parent (outside a cycle), in id order.
    pub rollups: Vec<Rollup>,
    /// Each cycle of parent links, its accounts in id order; their links are ignored.
    pub cycles: Vec<Vec<AccountId>>,
}

/// One node's health, coverage and ARR, as a child counts it.
#[derive(Clone)]
struct Node {
    health: f64,
    coverage: f64,
    arr: Option<(f64, String)>,
}

/// Rolls up every parent named by the profiles in `scores` (all evaluated at one instant).
pub fn rollups(model: &HealthModel, scores: &[AccountScores]) -> Rollups {
    let by_id: HashMap<&AccountId, &AccountScores> = scores.iter().map(|s| (&s.account, s)).collect();
    let parents: HashMap<&AccountId, AccountId> = scores
        .iter()
        .filter_map(|s| Some((&s.account, AccountId::new(s.profile.as_ref()?.fields().parent?).ok()?)))
        .collect();
    let parent_of: HashMap<&AccountId, &AccountId> = parents.iter().map(|(c, p)| (*c, p)).collect();
    let mut children: BTreeMap<&AccountId, Vec<&AccountId>> = BTreeMap::new();
    for (&child, &parent) in &parent_of {
        children.entry(parent).or_default().push(child);
    }
    // Leaves first (Kahn's order over child → parent links): a parent is ready once every
    // child is. Each account has at most one parent, so what never gets ready lies on a cycle.
    let mut waiting: HashMap<&AccountId, usize> = children.iter().map(|(p, c)| (*p, c.len())).collect();
    let mut ready: Vec<&AccountId> = parent_of.keys().copied().filter(|a| !children.contains_key(a)).collect();
    ready.sort();
    let mut order: Vec<&AccountId> = Vec::new();
    while let Some(a) = ready.pop() {
        order.push(a);
        if let Some(&p) = parent_of.get(a)
            && let Some(n) = waiting.get_mut(p)
        {
            *n -= 1;
            if *n == 0 {
                ready.push(p);
            }
        }
    }
    let mut done: HashMap<&AccountId, Node> = HashMap::new();
    let mut out = Vec::new();
    for &a in &order {
        let own = by_id.get(a).map(|s| Node {
            health: s.scores.health.score,
            coverage: s.scores.health.confidence,
            arr: s.profile.as_ref().and_then(|p| p.fields().arr).map(|x| (x.amount, x.currency.as_str().to_owned())),
        });
        let node = match children.get(a) {
            None => own,
            Some(kids) => {
                let mut parts: Vec<(&AccountId, Node)> =
                    kids.iter().filter_map(|k| Some((*k, done.get(k)?.clone()))).collect();
                if let Some(own) = own.clone() {
                    parts.push((a, own));
                }
                parts.sort_by(|x, y| x.0.cmp(y.0));
                let r = combine(model, a, &parts);
                let node = Node { health: r.health, coverage: r.confidence, arr: own.and_then(|o| o.arr) };
                out.push(r);
                Some(node)
            }
        };
        if let Some(node) = node {
            done.insert(a, node);
        }
    }
    // The parents no child reached: they lie on cycles (or have no scored child).
    let in_order: std::collections::HashSet<&AccountId> = order.iter().copied().collect();
    let mut cycles = Vec::new();
    let mut seen: std::collections::HashSet<&AccountId> = std::collections::HashSet::new();
    for &start in parent_of.keys() {
        if in_order.contains(start) || seen.contains(start) {
            continue;
        }
        let mut cycle = vec![start];
        seen.insert(start);
        let mut at = start;
        while let Some(&p) = parent_of.get(at) {
            if p == start || !seen.insert(p) {
                break;
            }
            cycle.push(p);
            at = p;
        }
        cycle.sort();
        cycles.push(cycle.into_iter().cloned().collect());
    }
    cycles.sort();
    out.sort_by(|a, b| a.account.cmp(&b.account));
    Rollups { rollups: out, cycles }
}

/// One parent's rollup from its parts (each child's node, and its own).
fn combine(model: &HealthModel, parent: &AccountId, parts: &[(&AccountId, Node)]) -> Rollup {
    let currencies: std::collections::BTreeSet<&str> =
        parts.iter().filter_map(|(_, n)| n.arr.as_ref().map(|a| a.1.as_str())).collect();
    let all_stated = parts.iter().all(|(_, n)| n.arr.is_some());
    let weighting = match (all_stated, currencies.len()) {
        (true, 1) => Weighting::Arr { currency: currencies.iter().next().map(|c| (*c).to_owned()).unwrap_or_default() },
        (false, _) => Weighting::Equal { reason: "a child's profile states no contract value".into() },
        _ => Weighting::Equal { reason: format!("the contract values are in {} currencies", currencies.len()) },
    };
    let weight = |n: &Node| match weighting {
        Weighting::Arr { .. } => n.arr.as_ref().map_or(0.0, |a| a.0),
        Weighting::Equal { .. } => 1.0,
    };
    let value: f64 = parts.iter().map(|(_, n)| weight(n)).sum();
    let (mut health, mut confidence) = (0.0, 0.0);
    if value > 0.0 {
        for (_, n) in parts {
            health += weight(n) * n.health / value;
            confidence += weight(n) * n.coverage / value;
        }
    }
    let (health, confidence) = (health.clamp(0.0, 100.0), confidence.clamp(0.0, 1.0));
    Rollup {
        account: parent.clone(),
        health,
        confidence,
        band: model.bands.band(health, confidence),
        weighting,
        children: parts.iter().map(|(a, _)| (*a).clone()).collect(),
        value,
    }
}
