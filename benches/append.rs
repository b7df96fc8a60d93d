//! Validated in-memory append throughput: batches of 1,000 generated events into a
//! `MemoryStore` (parse-free: the events are built in advance).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rapport_core::testing::synth::{SynthConfig, generate};
use rapport_core::{ExpectedVersion, MemoryStore, NewEvent, Store};

fn append(c: &mut Criterion) {
    let events: Vec<NewEvent> =
        generate(SynthConfig { accounts: 1_000, months: 12, seed: 7, ..Default::default() }).take(100_000).collect();
    let batches: Vec<Vec<NewEvent>> = events.chunks(1_000).map(<[NewEvent]>::to_vec).collect();
    let mut group = c.benchmark_group("memory_store");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(20);
    group.bench_function("append_100k_in_batches_of_1000", |b| {
        b.iter_batched(
            || (MemoryStore::new(), batches.clone()),
            |(store, batches)| {
                for batch in batches {
                    pollster::block_on(store.append(batch, ExpectedVersion::Any)).expect("valid");
                }
                store
            },
            criterion::BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
