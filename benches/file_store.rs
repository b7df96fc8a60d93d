//! File-store benches: durable batched append, full scan, and open (reading the whole log, and
//! from the index snapshot a clean close saves).
//!
//! `cargo bench --bench file_store`. `benches/compare.rs` runs the same operations against
//! SQLite and prints ratios.

use std::path::PathBuf;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rapport_core::testing::synth::{SynthConfig, generate};
use rapport_core::{ExpectedVersion, NewEvent, Position, Store};
use rapport_store_file::{FileStore, Options};

#[path = "support/pages.rs"]
mod pages;
use pages::read_all_pages;

const N: usize = 100_000;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rapport-bench-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn events() -> Vec<NewEvent> {
    generate(SynthConfig { accounts: (N / 50) as u32, months: 12, seed: 3, ..Default::default() }).take(N).collect()
}

fn file_store(c: &mut Criterion) {
    let evs = events();
    let n = evs.len() as u64;
    let mut group = c.benchmark_group("file_store");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n));
    let mut round = 0;
    group.bench_function("durable_append_batches_of_1000", |b| {
        b.iter_batched(
            || {
                round += 1;
                let d = dir(&format!("append-{round}"));
                (FileStore::open(&d).expect("open"), d)
            },
            |(store, d)| {
                for chunk in evs.chunks(1_000) {
                    pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).expect("append");
                }
                drop(store);
                let _ = std::fs::remove_dir_all(d);
            },
            BatchSize::PerIteration,
        )
    });
    let d = dir("scan");
    {
        let store = FileStore::open(&d).expect("open");
        for chunk in evs.chunks(1_000) {
            pollster::block_on(store.append(chunk.to_vec(), ExpectedVersion::Any)).expect("append");
        }
    }
    let store = FileStore::open(&d).expect("reopen");
    group.bench_function("full_scan_and_decode", |b| b.iter(|| assert_eq!(read_all_pages(&store) as u64, n)));
    // A follower reading one event at a time: 1,000 reads of one event, spread over the log.
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("read_all_of_one_event_1000_times", |b| {
        b.iter(|| {
            for k in 0..1_000u64 {
                let at = Position(1 + k * (n / 1_000));
                let page = pollster::block_on(store.read_all(at, 1)).expect("read");
                assert_eq!(page.len(), 1);
            }
        })
    });
    group.throughput(Throughput::Elements(n));
    drop(store);
    let whole = Options { index_snapshot: false, ..Options::default() };
    group.bench_function("open_reading_the_whole_log", |b| {
        b.iter_with_large_drop(|| FileStore::open_with(&d, whole.clone()).expect("open"))
    });
    // Each open's clean close (outside the timing) saves the snapshot the next one loads.
    group.bench_function("open_from_the_index_snapshot", |b| {
        b.iter_with_large_drop(|| FileStore::open(&d).expect("open"))
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&d);
}

criterion_group!(benches, file_store);
criterion_main!(benches);
