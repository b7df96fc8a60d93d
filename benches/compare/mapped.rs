//! Section 5b: a mapped import (issue #19) beside canonical lines of the same size.

use super::*;

/// A mapped import (issue #19): the shipped helpdesk export scaled up (its tickets
/// repeated over 2,000 organisations with new ids) through examples/mappings/helpdesk.jq,
/// against canonical lines of the same size, both into empty stores on the same core.
pub(crate) fn mapped_import(dir: &Path, rows: &mut Vec<Row>) {
    let records = env_usize("RAPPORT_BENCH_MAPPED_RECORDS", 100_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/mappings");
    let sample: Vec<serde_json::Value> = std::fs::read_to_string(root.join("helpdesk.jsonl"))
        .expect("sample")
        .lines()
        .map(|l| serde_json::from_str(l).expect("sample line"))
        .collect();
    let mapped_file = dir.join("helpdesk.jsonl");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&mapped_file).expect("export"));
    for i in 0..records {
        let mut r = sample[i % sample.len()].clone();
        let org = r["ticket"]["organization"]["external_id"].as_str().unwrap_or_default().to_owned();
        r["ticket"]["id"] = (100_000 + i).into();
        r["ticket"]["organization"]["external_id"] = format!("{org}-{}", i % 1_000).into();
        writeln!(w, "{r}").expect("write");
    }
    w.flush().expect("flush");
    drop(w);
    let size = std::fs::metadata(&mapped_file).expect("size").len();
    let canonical_file = dir.join("canonical-same-size.jsonl");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&canonical_file).expect("canonical"));
    let (mut written, mut lines) = (0u64, 0usize);
    for e in events(records * 3, 13) {
        let line = e.to_json_line();
        if written + line.len() as u64 + 1 > size {
            break;
        }
        writeln!(w, "{line}").expect("write");
        written += line.len() as u64 + 1;
        lines += 1;
    }
    w.flush().expect("flush");
    drop(w);
    assert!(written * 10 >= size * 9, "the canonical file is about as large as the export");
    let mapping = rapport_import::Mapping::from_file(&root.join("helpdesk.jq")).expect("mapping");
    let store = FileStore::open(dir.join("mapped")).expect("open");
    let ledger = rapport_core::Ledger::new(store.clone());
    let t = Instant::now();
    let report = rapport_import::Importer::new(&ledger).mapping(mapping).file(&mapped_file).expect("mapped import");
    let mapped = per_second(records, t.elapsed());
    let events_mapped = report.appended;
    drop(ledger);
    // The mapped events themselves as canonical lines (their ids left to be derived, as a
    // mapped event's are): what the import costs without the mapping.
    let same_file = dir.join("same-events.jsonl");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&same_file).expect("same events"));
    let mut next = Position(1);
    loop {
        let page = pollster::block_on(store.read_all(next, 4_096)).expect("read");
        let Some(last) = page.last() else { break };
        next = last.position.next();
        for e in &page {
            let mut line: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&e.to_new_event().to_json_line()).expect("line");
            line.remove("id");
            writeln!(w, "{}", serde_json::Value::Object(line)).expect("write");
        }
    }
    w.flush().expect("flush");
    drop((w, store));
    let ledger = rapport_core::Ledger::new(FileStore::open(dir.join("same")).expect("open"));
    let t = Instant::now();
    let report = rapport_import::Importer::new(&ledger).file(&same_file).expect("same events");
    let same = per_second(records, t.elapsed());
    assert_eq!(report.appended, events_mapped);
    drop(ledger);
    let ledger = rapport_core::Ledger::new(FileStore::open(dir.join("canonical")).expect("open"));
    let t = Instant::now();
    let report = rapport_import::Importer::new(&ledger).file(&canonical_file).expect("import");
    let canonical = per_second(lines, t.elapsed());
    assert_eq!(report.appended as usize, lines);
    rows.push(Row {
        what: format!(
            "mapped helpdesk import, {records} records ({events_mapped} events, {size} bytes); peer: canonical lines of that size (records/s)"
        ),
        ours: format!("{mapped:.0}"),
        peer: format!("{canonical:.0}"),
        ratio: format!("{:.3}x", mapped / canonical),
    });
    rows.push(Row {
        what: "  the same, peer: its events as canonical lines (input records' worth a second)".to_owned(),
        ours: format!("{mapped:.0}"),
        peer: format!("{same:.0}"),
        ratio: format!("{:.3}x", mapped / same),
    });
}
