//! Deterministic inputs for the criterion benchmarks in `benches/`.
//!
//! Every benchmark computes the reference workload (`docs/workload.md`), so the
//! inputs are the IDs and batches one array child sees.

use arrow_array::RecordBatch;
use tandem_core::exchange::{Completion, StageTiming};
use tandem_core::names::Stage;
use tandem_core::workload::{self, DEFAULT_SEED, Digest};

/// The IDs child 0 owns with `k` IDs per node and first id 1.
pub fn child_ids(k: u64) -> Vec<u64> {
    (1..=k).collect()
}

/// Child 0's stage-1 batch and digest.
pub fn procured(k: u64) -> (RecordBatch, Digest) {
    workload::procure(&child_ids(k), DEFAULT_SEED)
}

/// Child 0's stage-2 batch and digest.
pub fn processed(k: u64) -> (RecordBatch, Digest) {
    let (b, _) = procured(k);
    workload::process(&b).expect("a procured batch always processes")
}

/// A completion record like the ones stages write.
pub fn completion(stage: Stage, digest: Digest) -> Completion {
    Completion {
        run_id: "20261128T000000Z-bench0".into(),
        index: 0,
        stage,
        digest,
        history: vec![StageTiming {
            stage,
            attempt: 1,
            start_us: 1,
            end_us: 2,
        }],
    }
}
