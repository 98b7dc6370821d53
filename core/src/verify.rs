//! Independent verification of a finished run.
//!
//! Reads every egressed object back from the store and checks the run's contract
//! (`shared/workload.md`): exactly `N` rows, every ID of the range exactly once, and
//! the checksum equal to the formula. It trusts nothing the pipeline wrote about
//! itself: completion records are ignored, the rows are decoded with a plain
//! Parquet reader (only the `id` and `total_cents` columns), and the expected answer
//! is computed straight from the formulas.

use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::{Array, UInt64Array};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use serde::Serialize;

use crate::manifest::Manifest;
use crate::stage::{object_key, results_prefix};
use crate::store::ObjectStore;
use crate::workload;
use crate::{Error, Result};

/// The outcome of [`verify`]. `ok` is true only when every check passed.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The run.
    pub run_id: String,
    /// True when rows, IDs and checksum are all exactly right.
    pub ok: bool,
    /// Rows the run must hold (`N`).
    pub expected_rows: u64,
    /// Rows found in the objects.
    pub rows: u64,
    /// The checksum the formula gives.
    pub expected_checksum: u64,
    /// Sum of `total_cents` over all rows found (wrapping).
    pub checksum: u64,
    /// IDs of the range found in no object.
    pub missing_ids: u64,
    /// Extra occurrences of IDs found more than once.
    pub duplicate_ids: u64,
    /// Rows whose ID is outside the run's range.
    pub out_of_range_ids: u64,
    /// Children with no object.
    pub missing_objects: Vec<u32>,
    /// Children whose object could not be read as a result file, with the reason.
    pub unreadable_objects: Vec<(u32, String)>,
    /// Children owning IDs that are missing.
    pub indices_with_missing_ids: Vec<u32>,
    /// Children owning IDs that occur more than once.
    pub indices_with_duplicate_ids: Vec<u32>,
    /// Objects under the run's results prefix that belong to no child.
    pub unexpected_objects: Vec<String>,
}

impl VerifyReport {
    /// One line per problem, for people.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let list = |v: &[u32]| {
            let shown: Vec<String> = v.iter().take(20).map(u32::to_string).collect();
            let more = if v.len() > 20 {
                format!(" and {} more", v.len() - 20)
            } else {
                String::new()
            };
            format!("{}{more}", shown.join(", "))
        };
        if !self.missing_objects.is_empty() {
            p.push(format!(
                "{} children have no result object: indices {}",
                self.missing_objects.len(),
                list(&self.missing_objects)
            ));
        }
        for (i, why) in self.unreadable_objects.iter().take(20) {
            p.push(format!("child {i}: unreadable result: {why}"));
        }
        if self.rows != self.expected_rows {
            p.push(format!(
                "rows: found {}, expected {} ({:+})",
                self.rows,
                self.expected_rows,
                self.rows as i128 - self.expected_rows as i128
            ));
        }
        if self.missing_ids > 0 {
            p.push(format!(
                "{} IDs missing, owned by indices {}",
                self.missing_ids,
                list(&self.indices_with_missing_ids)
            ));
        }
        if self.duplicate_ids > 0 {
            p.push(format!(
                "{} duplicate rows, owned by indices {}",
                self.duplicate_ids,
                list(&self.indices_with_duplicate_ids)
            ));
        }
        if self.out_of_range_ids > 0 {
            p.push(format!(
                "{} rows have IDs outside the run's range",
                self.out_of_range_ids
            ));
        }
        if self.checksum != self.expected_checksum {
            p.push(format!(
                "checksum {} differs from the expected {}",
                self.checksum, self.expected_checksum
            ));
        }
        if !self.unexpected_objects.is_empty() {
            p.push(format!(
                "{} objects under the results prefix belong to no child, e.g. {}",
                self.unexpected_objects.len(),
                self.unexpected_objects[0]
            ));
        }
        p
    }
}

/// A bitset over the run's positions, set from several threads.
struct Seen {
    bits: Vec<AtomicU64>,
}

impl Seen {
    fn new(n: u64) -> Self {
        Self {
            bits: (0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
        }
    }
    /// Marks `pos`; true if it was already marked.
    fn mark(&self, pos: u64) -> bool {
        let bit = 1u64 << (pos % 64);
        self.bits[(pos / 64) as usize].fetch_or(bit, Ordering::Relaxed) & bit != 0
    }
    fn is_marked(&self, pos: u64) -> bool {
        self.bits[(pos / 64) as usize].load(Ordering::Relaxed) & (1u64 << (pos % 64)) != 0
    }
}

/// Reads `id` and `total_cents` of one object.
fn read_columns(bytes: bytes::Bytes) -> std::result::Result<(UInt64Array, UInt64Array), String> {
    // The Parquet schema alone says id and total_cents are UInt64; skip decoding the
    // embedded Arrow schema.
    let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(bytes, options)
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    let descr = builder.metadata().file_metadata().schema_descr_ptr();
    let mask = ProjectionMask::columns(&descr, ["id", "total_cents"]);
    let rows = builder.metadata().file_metadata().num_rows().max(1) as usize;
    let reader = builder
        .with_projection(mask)
        .with_batch_size(rows)
        .build()
        .map_err(|e| e.to_string())?;
    let mut ids = Vec::new();
    let mut totals = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| format!("undecodable rows: {e}"))?;
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
                .filter(|c| c.null_count() == 0)
                .cloned()
                .ok_or_else(|| format!("no non-null UInt64 column {name:?}"))
        };
        ids.push(col("id")?);
        totals.push(col("total_cents")?);
    }
    let cat = |v: Vec<UInt64Array>| -> UInt64Array {
        if v.len() == 1 {
            v.into_iter()
                .next()
                .unwrap_or_else(|| UInt64Array::from(Vec::<u64>::new()))
        } else {
            UInt64Array::from_iter_values(v.iter().flat_map(|a| a.values().iter().copied()))
        }
    };
    Ok((cat(ids), cat(totals)))
}

/// Verifies run `manifest` against the objects in `store`, reading with `threads`.
pub fn verify(manifest: &Manifest, store: &dyn ObjectStore, threads: usize) -> Result<VerifyReport> {
    let plan = manifest.plan;
    let n = plan.records;
    let first = manifest.first_id;
    let run_id = manifest.run_id.as_str();
    let seen = Seen::new(n);
    let dup = Seen::new(n);

    /// What one object held.
    enum Seen1 {
        Rows {
            rows: u64,
            checksum: u64,
            out_of_range: u64,
            duplicates: u64,
        },
        Missing,
        Unreadable(String),
        Failed(Error),
    }
    let per_child = crate::par::for_each_index(plan.array_size, threads, |index| {
        let bytes = match store.get(&object_key(run_id, index)) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Some(Seen1::Missing),
            Err(e) => return Some(Seen1::Failed(e)),
        };
        let (ids, totals) = match read_columns(bytes) {
            Ok(v) => v,
            Err(why) => return Some(Seen1::Unreadable(why)),
        };
        let (mut checksum, mut out_of_range, mut duplicates) = (0u64, 0u64, 0u64);
        for (id, t) in ids.values().iter().zip(totals.values()) {
            checksum = checksum.wrapping_add(*t);
            let pos = id.wrapping_sub(first);
            if *id < first || pos >= n {
                out_of_range += 1;
            } else if seen.mark(pos) {
                duplicates += 1;
                dup.mark(pos);
            }
        }
        Some(Seen1::Rows {
            rows: ids.len() as u64,
            checksum,
            out_of_range,
            duplicates,
        })
    });
    let (mut rows, mut checksum, mut out_of_range, mut duplicates) = (0u64, 0u64, 0u64, 0u64);
    let mut missing_objects = Vec::new();
    let mut unreadable = Vec::new();
    for (index, seen1) in per_child {
        match seen1 {
            Seen1::Rows {
                rows: r,
                checksum: c,
                out_of_range: o,
                duplicates: d,
            } => {
                rows += r;
                checksum = checksum.wrapping_add(c);
                out_of_range += o;
                duplicates += d;
            }
            Seen1::Missing => missing_objects.push(index),
            Seen1::Unreadable(why) => unreadable.push((index, why)),
            Seen1::Failed(e) => return Err(e),
        }
    }

    let mut missing_ids = 0u64;
    let mut with_missing = Vec::new();
    let mut with_dups = Vec::new();
    for index in 0..plan.array_size {
        let range = plan.slice(index)?;
        let (mut miss, mut dupd) = (0u64, false);
        for pos in range.start as u64..range.end as u64 {
            if !seen.is_marked(pos) {
                miss += 1;
            }
            dupd |= dup.is_marked(pos);
        }
        if miss > 0 {
            missing_ids += miss;
            with_missing.push(index);
        }
        if dupd {
            with_dups.push(index);
        }
    }
    let expected = workload::expected(first, n, manifest.seed);
    let mut unexpected = Vec::new();
    for o in store.list(&results_prefix(run_id))? {
        let known = o
            .key
            .strip_prefix(&results_prefix(run_id))
            .and_then(|k| k.strip_suffix(".parquet"))
            .and_then(|k| k.parse::<u32>().ok())
            .is_some_and(|i| i < plan.array_size && object_key(run_id, i) == o.key);
        if !known {
            unexpected.push(o.key);
        }
    }
    let mut report = VerifyReport {
        run_id: run_id.to_string(),
        ok: false,
        expected_rows: n,
        rows,
        expected_checksum: expected.checksum,
        checksum,
        missing_ids,
        duplicate_ids: duplicates,
        out_of_range_ids: out_of_range,
        missing_objects,
        unreadable_objects: unreadable,
        indices_with_missing_ids: with_missing,
        indices_with_duplicate_ids: with_dups,
        unexpected_objects: unexpected,
    };
    report.ok = report.problems().is_empty();
    Ok(report)
}
