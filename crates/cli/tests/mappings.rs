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

/// The survey sample, a CSV: four quarterly campaigns of 2024, six respondents of each company
/// a campaign, each asked the NPS and the CSAT question; `happyco` answers as promoters and
/// satisfied, `grumpyco` as detractors; some answers blank, some comments quoted with commas.
fn survey_export() -> String {
    let mut rng = Lcg(7);
    let mut out = String::from("Response ID,Campaign,Company ID,Question,Score,Comment,Submitted At\n");
    let mut id = 5000;
    for (q, month) in [("2024-q1", 2), ("2024-q2", 5), ("2024-q3", 8), ("2024-q4", 11)] {
        for (company, happy) in [("happyco", true), ("grumpyco", false)] {
            for respondent in 0..6u64 {
                let day = 3 + respondent * 4 + rng.below(3);
                let (hour, minute) = (9 + rng.below(8), rng.below(60));
                let at = format!("{day:02}/{month:02}/2024 {hour:02}:{minute:02}");
                let nps = if happy { 9 + rng.below(2) } else { 2 + rng.below(5) };
                let csat = if happy { 4 + rng.below(2) } else { 1 + rng.below(3) };
                let blank = rng.below(10) == 0;
                let comment = match (happy, respondent % 3) {
                    (_, 0) => String::new(),
                    (true, _) => "\"Fast, friendly, and they kept their word\"".into(),
                    (false, _) => "\"Slow answers, again\"".into(),
                };
                for (question, score) in
                    [("How likely are you to recommend us?", nps), ("How satisfied were you with support?", csat)]
                {
                    id += 1;
                    let score = if blank { String::new() } else { score.to_string() };
                    out.push_str(&format!("{id},{q},{company},{question},{score},{comment},{at}\n"));
                }
            }
        }
    }
    out
}

/// The CRM sample: a year of activities of two accounts, meetings and calls, notes, and tasks
/// with due dates; `reliableco`'s tasks are completed before they are due, `latecorp`'s after,
/// or never. Times carry a +02:00 offset.
fn crm_export() -> String {
    let mut rng = Lcg(11);
    let start = Timestamp::parse("2024-01-08T07:00:00Z").unwrap();
    let mut out = String::new();
    let mut id = 700;
    let local = |t: Timestamp| t.add_nanos(2 * HOUR).to_string().replace('Z', "+02:00");
    for (account, reliable) in [("reliableco", true), ("latecorp", false)] {
        for week in 0..50i64 {
            id += 1;
            let at = start.add_nanos((week * 7 * 24 + rng.below(48) as i64) * HOUR);
            let line = match week % 5 {
                0 | 3 => {
                    let kind = if week % 5 == 0 { "meeting" } else { "call" };
                    format!(
                        "{{\"id\":{id},\"kind\":\"{kind}\",\"account\":{{\"id\":\"{account}\"}},\"subject\":\"{kind} {id}\",\"start\":\"{}\"}}",
                        local(at)
                    )
                }
                4 => format!(
                    "{{\"id\":{id},\"kind\":\"note\",\"account\":{{\"id\":\"{account}\"}},\"subject\":\"note {id}\",\"created_at\":\"{}\"}}",
                    local(at)
                ),
                _ => {
                    let due_days = 5 + rng.below(10) as i64;
                    let due = at.add_nanos(due_days * 24 * HOUR);
                    let due_date = &due.to_string()[..10];
                    let completed = if reliable {
                        Some(at.add_nanos((1 + rng.below(due_days as u64 - 1) as i64) * 24 * HOUR))
                    } else if week % 3 != 0 {
                        Some(due.add_nanos((3 + rng.below(20) as i64) * 24 * HOUR))
                    } else {
                        None
                    };
                    let completed = completed.map_or("null".to_owned(), |c| format!("\"{}\"", local(c)));
                    format!(
                        "{{\"id\":{id},\"kind\":\"task\",\"account\":{{\"id\":\"{account}\"}},\"subject\":\"Follow-up {id}\",\"created_at\":\"{}\",\"due_date\":\"{due_date}\",\"completed_at\":{completed}}}",
                        local(at)
                    )
                }
            };
            out.push_str(&line);
            out.push('\n');
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

/// A store made from `export` through examples/mappings/`mapping` (with `format`'s flags),
/// which must append `events` and, imported again, none; each account's scores as JSON.
struct Mapped {
    _tmp: Tmp,
    store: PathBuf,
}

impl Mapped {
    fn import(export: &std::path::Path, mapping: &str, format: &[&str], events: usize) -> Self {
        let mapping = examples().join(mapping);
        let tmp = Tmp::new(mapping.file_stem().unwrap().to_str().unwrap());
        let store = tmp.join("store");
        let args = |s: &PathBuf| -> Vec<String> {
            let mut a: Vec<String> = ["import", "--store", p(s), "--map", p(&mapping)].map(String::from).to_vec();
            a.extend(format.iter().map(|f| f.to_string()));
            a.push(p(export).to_owned());
            a
        };
        let run = |s: &PathBuf| ok(&args(s).iter().map(String::as_str).collect::<Vec<_>>());
        let first = run(&store);
        assert!(first.contains(&format!("appended {events}, duplicates 0, rejected 0")), "{first}");
        let again = run(&store);
        assert!(again.contains(&format!("appended 0, duplicates {events}")), "{again}");
        Self { _tmp: tmp, store }
    }

    /// Every event the store holds.
    fn events(&self) -> Vec<rapport_core::Envelope> {
        let store = rapport_store_file::FileStore::open_read_only(&self.store).expect("open");
        rapport_core::testing::conformance::assert_log_invariants(&store)
    }

    fn scores(&self, account: &str) -> String {
        let at = "2025-01-15T00:00:00Z";
        ok(&["score", "--store", p(&self.store), "--as-of", at, "--account", account, "--format", "json"])
    }
}

#[test]
fn the_helpdesk_export_maps_to_escalations_and_slow_replies_cost_responsiveness() {
    let export = sample("helpdesk.jsonl", &helpdesk_export());
    // 48 tickets: each raised, 46 answered, 44 solved.
    let store = Mapped::import(&export, "helpdesk.jq", &[], 138);
    let (fast, slow) = (store.scores("brightline"), store.scores("slowpoke"));
    let (f, s) = (factor(&fast, "trust", "responsiveness"), factor(&slow, "trust", "responsiveness"));
    assert!(f > s + 0.2, "fast replies keep responsiveness high: {f} against {s}");
    assert!(store.events().iter().all(|e| e.meta.source() == Some("helpdesk")), "stamped with the mapping's name");
}

#[test]
fn a_mapped_import_into_a_store_without_metadata_stamps_nothing() {
    // A copy of the frozen format-2 store: it holds no metadata, so the importer stamps no
    // source, and the mapped events append as they would have before.
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../store-file/tests/fixtures/v2");
    let tmp = Tmp::new("mapped-v2");
    let store = tmp.join("store");
    std::fs::create_dir_all(&store).unwrap();
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), store.join(entry.file_name())).unwrap();
    }
    let export = sample("helpdesk.jsonl", &helpdesk_export());
    let said = ok(&["import", "--store", p(&store), "--map", p(&examples().join("helpdesk.jq")), p(&export)]);
    assert!(said.contains("appended 138, duplicates 0, rejected 0"), "{said}");
    let verified = ok(&["verify", "--store", p(&store)]);
    assert!(verified.contains("format 2: holds no metadata"), "{verified}");
    // A mapping that sets metadata itself is refused in the first pass, naming the line, so
    // nothing of the file is appended.
    let tmp_map = tmp.join("with-actor.jq");
    std::fs::write(&tmp_map, "{type: \"touchpoint\", account: .ticket.organization.external_id, occurred_at: (.ticket.created_at | from_local(\"+00:00\")), channel: \"email\", actor: \"agent\"}").unwrap();
    let refused = support::rapport(&["import", "--store", p(&store), "--map", p(&tmp_map), p(&export)]);
    assert_ne!(refused.status.code(), Some(0));
    let said = support::stderr(&refused);
    assert!(said.contains("helpdesk.jsonl:1:") && said.contains("rapport upgrade"), "{said}");
    assert_eq!(ok(&["verify", "--store", p(&store)]).lines().next(), verified.lines().next(), "nothing appended");
}

/// The CLI says when a mapping runs every record in jaq, and only then; the events are the
/// same either way.
#[test]
fn a_mapping_outside_the_compiled_part_is_named_and_imports_the_same() {
    let tmp = Tmp::new("mapped-in-jaq");
    let export = sample("helpdesk.jsonl", &helpdesk_export());
    let shipped = std::fs::read_to_string(examples().join("helpdesk.jq")).unwrap();
    // `reduce` is outside the compiled part; this one leaves every record as it is.
    // Named like the shipped one, so that both stamp the source `helpdesk`.
    std::fs::create_dir_all(tmp.join("mapping")).unwrap();
    let in_jaq = tmp.join("mapping/helpdesk.jq");
    std::fs::write(&in_jaq, format!("reduce empty as $x (.; .) | {shipped}")).unwrap();
    let mut exports = Vec::new();
    for (name, mapping) in [("compiled", examples().join("helpdesk.jq")), ("in-jaq", in_jaq)] {
        let store = tmp.join(name);
        let run = support::rapport(&["import", "--store", p(&store), "--map", p(&mapping), p(&export)]);
        assert_eq!(run.status.code(), Some(0), "{}", support::stderr(&run));
        let said = support::stderr(&run);
        assert_eq!(said.contains("every record runs in jaq"), name == "in-jaq", "{name}: {said}");
        let accounts = ["brightline", "slowpoke"];
        exports.push(accounts.map(|a| ok(&["export", "--store", p(&store), "--account", a])).concat());
    }
    assert_eq!(exports[0].lines().count(), 138);
    assert_eq!(exports[0], exports[1]);
}

#[test]
fn the_survey_export_maps_to_answers_and_promoters_raise_nps() {
    let export = sample("surveys.csv", &survey_export());
    // Every answer with a score (the fifth column, before any quoted comment) is an event.
    let text = std::fs::read_to_string(&export).unwrap();
    let rows = text.lines().skip(1).filter(|l| l.split(',').nth(4).is_some_and(|s| !s.is_empty())).count();
    let store = Mapped::import(&export, "surveys.jq", &["--format", "csv"], rows);
    let (happy, grumpy) = (store.scores("happyco"), store.scores("grumpyco"));
    for name in ["nps", "csat"] {
        let (h, g) = (factor(&happy, "health", name), factor(&grumpy, "health", name));
        assert!(h > g + 0.2, "{name}: promoters and satisfied answers rate higher: {h} against {g}");
    }
}

#[test]
fn the_crm_log_maps_to_touchpoints_and_tasks_and_late_tasks_cost_reliability() {
    let export = sample("crm.jsonl", &crm_export());
    let text = std::fs::read_to_string(&export).unwrap();
    let events = text.lines().filter(|l| !l.contains("\"note\"")).count()
        + text.lines().filter(|l| l.contains("\"task\"") && !l.contains("\"completed_at\":null")).count();
    let store = Mapped::import(&export, "crm.jq", &[], events);
    let (kept, late) = (store.scores("reliableco"), store.scores("latecorp"));
    let (k, l) = (factor(&kept, "trust", "reliability"), factor(&late, "trust", "reliability"));
    assert!(k > l + 0.2, "tasks done before their due dates keep reliability: {k} against {l}");
    let (k, l) = (factor(&kept, "health", "engagement"), factor(&late, "health", "engagement"));
    assert!((k - l).abs() < 0.05, "both held as many meetings and calls: {k} against {l}");
}
