//! Observability: opening the store runs in a `rapport.open` span and reports what recovery
//! found; a committed group is reported at trace level. Captured by a minimal subscriber.

#[path = "support/common.rs"]
mod common;

use std::sync::{Arc, Mutex};

use rapport_core::{ExpectedVersion, Store};
use rapport_store_file::FileStore;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use common::{TempDir, history};

/// Every span's name and every event's message and fields, as text.
#[derive(Default, Clone)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut f = Fields(format!("span {}", span.metadata().name()));
        span.record(&mut f);
        self.0.lock().unwrap().push(f.0);
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut f = Fields(format!("event {}", event.metadata().target()));
        event.record(&mut f);
        self.0.lock().unwrap().push(f.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn open_and_append_report_what_they_did() {
    let dir = TempDir::new("tracing");
    let capture = Capture::default();
    let seen = Arc::clone(&capture.0);
    // Global: the writer thread reports too. (This file holds one test, so one process.)
    tracing::subscriber::set_global_default(capture).expect("the only subscriber");
    let store = FileStore::open(dir.path()).expect("open");
    pollster::block_on(store.append(history(2, 2, 1), ExpectedVersion::Any)).expect("append");
    drop(store);
    FileStore::open(dir.path()).expect("reopen");
    let seen = seen.lock().unwrap().join("\n");
    assert!(seen.contains("span rapport.open"), "{seen}");
    assert!(seen.contains("message=opened: log recovered events=0"), "{seen}");
    assert!(seen.contains("message=group committed"), "{seen}");
    let reopened = seen.lines().filter(|l| l.contains("opened: log recovered")).nth(1).expect("the reopen");
    assert!(!reopened.contains("events=0"), "{reopened}");
}
