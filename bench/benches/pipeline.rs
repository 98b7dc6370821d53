//! criterion benchmarks: the CPU pieces of one child in memory, one group per input
//! shape (40 IDs per node, the default, and 1,000), each stage's whole per-child CPU
//! (`stage/*`), and a separate end-to-end run of 1,000 children on disk.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tandem_bench::{child_ids, completion, processed, procured};
use tandem_core::exchange;
use tandem_core::executor::{self, ExecutorConfig};
use tandem_core::ids::{IdFile, write_range};
use tandem_core::manifest::Manifest;
use tandem_core::names::Stage;
use tandem_core::plan::PartitionPlan;
use tandem_core::prepare::{PrepareOptions, prepare};
use tandem_core::stage::RunContext;
use tandem_core::verify::{check_result, verify};
use tandem_core::workload::{self, DEFAULT_SEED, process_schema, procure_schema};

fn partition(c: &mut Criterion) {
    // Slicing every child of a 400,000-ID, 10,000-child run out of the mapped file.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ids.arrow");
    write_range(&path, 1, 400_000).expect("write ids");
    let file = IdFile::open(&path).expect("map ids");
    let plan = PartitionPlan::new(400_000, 40).expect("plan");
    let mut g = c.benchmark_group("partition/400k_k40");
    g.throughput(Throughput::Elements(u64::from(plan.array_size)));
    g.bench_function("slice_all_children", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for i in 0..plan.array_size {
                let r = plan.slice(i).expect("in range");
                n += file.ids(r).expect("slice").len();
            }
            black_box(n)
        })
    });
    g.bench_function("open_id_file", |b| {
        b.iter(|| black_box(IdFile::open(&path).expect("map ids").len()))
    });
    g.finish();
}

fn child_cpu(c: &mut Criterion) {
    for k in [40u64, 1000] {
        let mut g = c.benchmark_group(format!("child/k{k}"));
        g.throughput(Throughput::Elements(k));
        let ids = child_ids(k);
        g.bench_function("generate_records", |b| {
            b.iter(|| black_box(workload::procure(black_box(&ids), DEFAULT_SEED)))
        });
        let (b1, d1) = procured(k);
        g.bench_function("process_transform", |b| {
            b.iter(|| black_box(workload::process(&b1).expect("ok")))
        });
        g.bench_function("parquet_write_stage1", |b| {
            let mut c1 = completion(Stage::Procure, d1);
            b.iter(|| black_box(exchange::encode(&b1, &mut c1).expect("encode")))
        });
        let bytes1 = Bytes::from(exchange::encode(&b1, &mut completion(Stage::Procure, d1)).expect("encode"));
        g.bench_function("parquet_read_stage1", |b| {
            b.iter(|| {
                black_box(exchange::decode("bench", bytes1.clone(), &procure_schema()).expect("decode"))
            })
        });
        let (b2, d2) = processed(k);
        let bytes2 = Bytes::from(exchange::encode(&b2, &mut completion(Stage::Process, d2)).expect("encode"));
        g.bench_function("parquet_read_stage2", |b| {
            b.iter(|| {
                black_box(exchange::decode("bench", bytes2.clone(), &process_schema()).expect("decode"))
            })
        });
        g.bench_function("egress_restamp", |b| {
            let c3 = completion(Stage::Egress, d2);
            b.iter(|| {
                let footer = exchange::read_footer("bench", &bytes2).expect("footer");
                black_box(exchange::restamp("bench", &bytes2, &footer, &c3).expect("restamp"))
            })
        });
        g.finish();
    }
}

/// Per-child CPU of each stage as a worker runs it, in memory (no file work): what a
/// regression in one stage shows up in. Throughput is IDs per second.
fn stages(c: &mut Criterion) {
    for k in [40u64, 1000] {
        let mut g = c.benchmark_group(format!("stage/k{k}"));
        g.throughput(Throughput::Elements(k));
        let ids = child_ids(k);
        g.bench_function("procure_generate_write", |b| {
            b.iter(|| {
                let (batch, digest) = workload::procure(black_box(&ids), DEFAULT_SEED);
                black_box(exchange::encode(&batch, &mut completion(Stage::Procure, digest)).expect("encode"))
            })
        });
        let (b1, d1) = procured(k);
        let file1 = Bytes::from(exchange::encode(&b1, &mut completion(Stage::Procure, d1)).expect("encode"));
        g.bench_function("process_decode_transform_write", |b| {
            b.iter(|| {
                let input = exchange::decode("bench", file1.clone(), &procure_schema()).expect("decode");
                let (batch, digest) = workload::process(&input.batch).expect("process");
                black_box(exchange::encode(&batch, &mut completion(Stage::Process, digest)).expect("encode"))
            })
        });
        let (b2, d2) = processed(k);
        let file2 = Bytes::from(exchange::encode(&b2, &mut completion(Stage::Process, d2)).expect("encode"));
        g.bench_function("egress_check_restamp", |b| {
            let c3 = completion(Stage::Egress, d2);
            b.iter(|| {
                let footer = exchange::read_footer("bench", &file2).expect("footer");
                black_box(exchange::restamp("bench", &file2, &footer, &c3).expect("restamp"))
            })
        });
        let footer = exchange::read_footer("bench", &file2).expect("footer");
        let object = Bytes::from(
            exchange::restamp("bench", &file2, &footer, &completion(Stage::Egress, d2)).expect("restamp"),
        );
        let manifest = Manifest {
            format: tandem_core::manifest::FORMAT,
            run_id: "20261128T000000Z-bench0".parse().unwrap(),
            created_at: "2026-11-28T00:00:00Z".into(),
            first_id: 1,
            seed: DEFAULT_SEED,
            plan: PartitionPlan::new(k, k).expect("plan"),
            id_file: "ids.arrow".into(),
            bucket: "file:///dev/null".into(),
        };
        g.bench_function("verify_read_check", |b| {
            b.iter(|| check_result(&manifest, 0, black_box(object.clone())).expect("a good object"))
        });
        g.finish();
    }
}

fn end_to_end(c: &mut Criterion) {
    // Prepare + three stages + verify for 1,000 children (40,000 IDs) on disk (the
    // temporary directory's file system: set TMPDIR to measure another), two workers.
    let mut g = c.benchmark_group("end_to_end/disk");
    g.sample_size(10);
    let children = 1000u64;
    g.throughput(Throughput::Elements(children));
    g.bench_with_input(
        BenchmarkId::new("children", children),
        &children,
        |b, &children| {
            let base = std::env::current_dir()
                .expect("cwd")
                .join("target")
                .join("bench-e2e");
            b.iter_batched(
                || {
                    let _ = std::fs::remove_dir_all(&base);
                    base.clone()
                },
                |base| {
                    let opts = PrepareOptions {
                        root: base.join("vol"),
                        run_id: None,
                        records: children * 40,
                        first_id: 1,
                        ids_per_node: 40,
                        seed: DEFAULT_SEED,
                        overwrite: false,
                    };
                    let store =
                        tandem_core::store::open(&format!("file://{}", base.join("bucket").display()))
                            .expect("bucket");
                    let (layout, _) = prepare(&opts, store.as_ref()).expect("prepare");
                    let ctx = RunContext::open(layout.root(), layout.run_id(), None).expect("open");
                    let ex = executor::execute(
                        &ctx,
                        &executor::all_tasks(ctx.manifest.plan.array_size),
                        &ExecutorConfig::new(2, 1),
                        &|_| {},
                    );
                    assert!(ex.failures().is_empty());
                    let v = verify(&ctx.manifest, ctx.store.as_ref(), 2).expect("verify");
                    assert!(v.ok);
                    black_box(v.checksum)
                },
                criterion::BatchSize::PerIteration,
            )
        },
    );
    g.finish();
}

criterion_group!(benches, partition, child_cpu, stages, end_to_end);
criterion_main!(benches);
