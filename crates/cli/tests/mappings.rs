//! The shipped mappings (`examples/mappings/`): each sample export is what its generator here
//! writes, imports through its mapping, re-imports with nothing appended, and gives the scores
//! its story says.

use std::path::PathBuf;

use rapport_core::Timestamp;

mod support;
use support::{Tmp, ok, p};

const HOUR: i64 = 3_600_000_000_000;
const MINUTE: i64 = 60_000_000_000;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/mappings")
}

/// A small deterministic generator (a linear congruential one): samples must not change
/// between runs or machines.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// The helpdesk sample: two organisations with 24 tickets each over 2024, `brightline`
/// answered within minutes and solved within hours, `slowpoke` answered after most SLAs and
/// solved after days; each one's last ticket is still open and unanswered, the one before
/// answered but open.
fn helpdesk_export() -> String {
    let mut rng = Lcg(2024);
    let start = Timestamp::parse("2024-01-03T08:00:00Z").unwrap();
    let priorities = ["urgent", "high", "normal", "low"];
    let mut out = String::new();
    let mut id = 1000;
    for (org, fast) in [("brightline", true), ("slowpoke", false)] {
        for n in 0..24i64 {
            id += 1;
            let created = start.add_nanos(n * 15 * 24 * HOUR + rng.below(8 * 60) as i64 * MINUTE);
            let reply = if fast { 5 + rng.below(45) as i64 } else { 8 * 60 + rng.below(52 * 60) as i64 };
            let solve =
                if fast { 2 * 60 + rng.below(18 * 60) as i64 } else { 3 * 24 * 60 + rng.below(7 * 24 * 60) as i64 };
            let replied = created.add_nanos(reply * MINUTE);
            let solved = created.add_nanos(solve * MINUTE).max(replied.add_nanos(MINUTE));
            // The helpdesk's local time: UTC+01:00, without an offset.
            let local = created.add_nanos(HOUR).to_string().replace('T', " ").replace('Z', "");
            let first_reply = if n < 23 { (replied.unix_nanos() / 1_000_000).to_string() } else { "null".into() };
            let solved_at = if n < 22 { (solved.unix_nanos() / 1_000_000_000).to_string() } else { "null".into() };
            out.push_str(&format!(
                "{{\"ticket\":{{\"id\":{id},\"subject\":\"Ticket {id}\",\"priority\":\"{}\",\"created_at\":\"{local}\",\"organization\":{{\"external_id\":\"{org}\",\"name\":\"{org} Ltd\"}}}},\"metrics\":{{\"first_reply_at_ms\":{first_reply},\"solved_at\":{solved_at},\"reopens\":{}}}}}\n",
                priorities[(n % 4) as usize],
                rng.below(3) / 2
            ));
        }
    }
    out
}

/// The committed sample is the generator's: `RAPPORT_WRITE_SAMPLES=1` rewrites it.
fn sample(name: &str, generated: &str) -> PathBuf {
    let path = examples().join(name);
    if std::env::var_os("RAPPORT_WRITE_SAMPLES").is_some() {
        std::fs::write(&path, generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == generated, "{name} is not what its generator writes; run with RAPPORT_WRITE_SAMPLES=1");
    path
}

fn factor(json: &str, score: &str, name: &str) -> f64 {
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    let f = v[score]["factors"].as_array().unwrap().iter().find(|f| f["name"] == name).unwrap().clone();
    f["value"].as_f64().unwrap()
}

#[test]
fn the_helpdesk_export_maps_to_escalations_and_slow_replies_cost_responsiveness() {
    let export = sample("helpdesk.jsonl", &helpdesk_export());
    let mapping = examples().join("helpdesk.jq");
    let tmp = Tmp::new("helpdesk");
    let store = tmp.join("store");
    // 48 tickets: each raised, 46 answered, 44 solved.
    let first = ok(&["import", "--store", p(&store), "--map", p(&mapping), p(&export)]);
    assert!(first.contains("appended 138, duplicates 0, rejected 0"), "{first}");
    let again = ok(&["import", "--store", p(&store), "--map", p(&mapping), p(&export)]);
    assert!(again.contains("appended 0, duplicates 138"), "{again}");
    let at = "2025-01-15T00:00:00Z";
    let fast = ok(&["score", "--store", p(&store), "--as-of", at, "--account", "brightline", "--format", "json"]);
    let slow = ok(&["score", "--store", p(&store), "--as-of", at, "--account", "slowpoke", "--format", "json"]);
    let (f, s) = (factor(&fast, "trust", "responsiveness"), factor(&slow, "trust", "responsiveness"));
    assert!(f > s + 0.2, "fast replies keep responsiveness high: {f} against {s}");
}
