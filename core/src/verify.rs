//! Independent verification of a finished run.
//!
//! Reads every egressed object back from the store and checks the run's contract
//! (`docs/workload.md`): exactly `N` rows, every ID of the range exactly once, in the
//! object of the child that owns it, and every value of every row (`category`,
//! `total_cents`) equal to the workload's formulas; the checksum is then the
//! formula's too. It trusts nothing the pipeline wrote about itself: completion
//! records are ignored, the rows are decoded the way a standard reader decodes them
//! (the embedded Arrow schema included, which pyarrow relies on), and the expected
//! answer is computed straight from the formulas. The file's seal (see
//! [`crate::exchange`]) is only ever a reason to refuse a file, never to accept one:
//! it catches damage in the parts of the file no value check reads (statistics,
//! padding, the Arrow schema's spare bytes) that would still trip other readers.
//!
//! Rerun asks the same question of one object ([`check_result`]), so what rerun calls
//! complete is exactly what verify passes.

use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::types::UInt8Type;
use arrow_array::{Array, DictionaryArray, RecordBatch, StringArray, UInt64Array};
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;
use serde::Serialize;

use crate::manifest::Manifest;
use crate::names::{index_of_key, object_key, results_prefix};
use crate::store::ObjectStore;
use crate::workload::{self, CATEGORIES};
use crate::{Error, Result};

/// The outcome of [`verify`]. `ok` is true only when every check passed.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The run.
    pub run_id: String,
    /// True when rows, IDs, values and checksum are all exactly right.
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
    /// Rows whose ID is in the run's range but in another child's object.
    pub misplaced_ids: u64,
    /// Rows whose `category` or `total_cents` differs from the workload's formulas.
    pub wrong_values: u64,
    /// Children with no object.
    pub missing_objects: Vec<u32>,
    /// Children whose object could not be read as a result file, with the reason.
    pub unreadable_objects: Vec<(u32, String)>,
    /// Children owning IDs that are missing.
    pub indices_with_missing_ids: Vec<u32>,
    /// Children owning IDs that occur more than once.
    pub indices_with_duplicate_ids: Vec<u32>,
    /// Children whose object holds IDs of the range that another child owns.
    pub indices_with_misplaced_ids: Vec<u32>,
    /// Children whose object holds rows with wrong values.
    pub indices_with_wrong_values: Vec<u32>,
    /// Objects under the run's results prefix that belong to no child.
    pub unexpected_objects: Vec<String>,
}

/// `1, 2, 3 and 17 more`.
fn list(v: &[u32]) -> String {
    let shown: Vec<String> = v.iter().take(20).map(u32::to_string).collect();
    let more = if v.len() > 20 {
        format!(" and {} more", v.len() - 20)
    } else {
        String::new()
    };
    format!("{}{more}", shown.join(", "))
}

impl VerifyReport {
    /// One line per problem, for people.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
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
        if self.unreadable_objects.len() > 20 {
            p.push(format!(
                "... and {} more unreadable results",
                self.unreadable_objects.len() - 20
            ));
        }
        if self.rows != self.expected_rows {
            p.push(format!(
                "rows: found {}, expected {} ({:+})",
                self.rows,
                self.expected_rows,
                i128::from(self.rows) - i128::from(self.expected_rows)
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
        if self.misplaced_ids > 0 {
            p.push(format!(
                "{} rows are in the object of a child that does not own their ID: objects of indices {}",
                self.misplaced_ids,
                list(&self.indices_with_misplaced_ids)
            ));
        }
        if self.wrong_values > 0 {
            p.push(format!(
                "{} rows have a category or total_cents that differs from the workload: objects of indices {}",
                self.wrong_values,
                list(&self.indices_with_wrong_values)
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

/// The rows of a result object, decoded as a standard reader decodes them.
#[derive(Debug)]
pub struct ResultRows {
    /// `id`.
    pub ids: UInt64Array,
    /// `category`, as an index into [`CATEGORIES`]; `None` for a value that is not one.
    pub categories: Vec<Option<u8>>,
    /// `total_cents`.
    pub totals: UInt64Array,
}

/// Checks that `schema`, as decoded from the file's embedded Arrow schema, is the
/// result schema: `id` UInt64, `category` dictionary-encoded Utf8, `total_cents`
/// UInt64, none nullable.
fn check_schema(schema: &SchemaRef) -> std::result::Result<(), String> {
    let want = workload::process_schema();
    let same = schema.fields().len() == want.fields().len()
        && schema.fields().iter().zip(want.fields()).all(|(a, b)| {
            a.name() == b.name() && a.data_type() == b.data_type() && a.is_nullable() == b.is_nullable()
        });
    if same {
        Ok(())
    } else {
        Err(format!(
            "schema is not the result schema: found {schema}, expected {want}"
        ))
    }
}

fn columns(batch: &RecordBatch) -> std::result::Result<(UInt64Array, Vec<Option<u8>>, UInt64Array), String> {
    let u64_col = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
            .filter(|c| c.null_count() == 0)
            .cloned()
            .ok_or_else(|| format!("no non-null UInt64 column {name:?}"))
    };
    let ids = u64_col("id")?;
    let totals = u64_col("total_cents")?;
    let dict = batch
        .column_by_name("category")
        .and_then(|c| c.as_any().downcast_ref::<DictionaryArray<UInt8Type>>())
        .filter(|c| c.null_count() == 0)
        .ok_or("no non-null dictionary column \"category\"")?;
    let values = dict
        .values()
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or("the category dictionary does not hold strings")?;
    // Each dictionary entry once, then each row by its key.
    let known: Vec<Option<u8>> = (0..values.len())
        .map(|i| {
            (!values.is_null(i))
                .then(|| CATEGORIES.iter().position(|c| *c == values.value(i)))
                .flatten()
                .map(|p| p as u8)
        })
        .collect();
    let categories = dict
        .keys()
        .values()
        .iter()
        .map(|k| known.get(usize::from(*k)).copied().flatten())
        .collect();
    Ok((ids, categories, totals))
}

/// Reads a result object: seal, footer, embedded Arrow schema, then every row of
/// all three columns. The error is the reason the object is unreadable.
pub fn read_result(bytes: bytes::Bytes) -> std::result::Result<ResultRows, String> {
    crate::exchange::check_seal("object", &bytes).map_err(|e| match e {
        Error::Corrupt { reason, .. } => reason,
        other => other.to_string(),
    })?;
    crate::guard::guarded(|| {
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .map_err(|e| format!("not a readable Parquet file: {e}"))?;
        check_schema(builder.schema())?;
        let rows = usize::try_from(builder.metadata().file_metadata().num_rows())
            .map_err(|_| "negative row count in the footer".to_string())?
            .max(1);
        let reader = builder
            .with_batch_size(rows)
            .build()
            .map_err(|e| format!("undecodable rows: {e}"))?;
        let (mut ids, mut categories, mut totals) = (Vec::new(), Vec::new(), Vec::new());
        for batch in reader {
            let batch = batch.map_err(|e| format!("undecodable rows: {e}"))?;
            let (i, c, t) = columns(&batch)?;
            ids.push(i);
            categories.extend(c);
            totals.push(t);
        }
        // The reader's batch is the whole file, so there is one batch and it is
        // taken as it is; more are concatenated. (Mutation testing flips the test to
        // `!=`: an equivalent mutant, since both arms give the same array for one
        // batch or none; scripts/mutants.sh excludes it by name.)
        let cat = |v: Vec<UInt64Array>| -> UInt64Array {
            if v.len() == 1 {
                v.into_iter()
                    .next()
                    .unwrap_or_else(|| UInt64Array::from(Vec::<u64>::new()))
            } else {
                UInt64Array::from_iter_values(v.iter().flat_map(|a| a.values().iter().copied()))
            }
        };
        Ok(ResultRows {
            ids: cat(ids),
            categories,
            totals: cat(totals),
        })
    })
    .map_err(|panic| format!("the Parquet decoder failed: {panic}"))?
}

/// What one object's rows say, checked against the workload for the child that
/// owns the object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Findings {
    /// Rows.
    pub rows: u64,
    /// Sum of `total_cents` (wrapping).
    pub checksum: u64,
    /// Rows whose ID is outside the run's range.
    pub out_of_range: u64,
    /// Rows whose ID another child owns.
    pub misplaced: u64,
    /// Rows whose ID was already seen.
    pub duplicates: u64,
    /// Rows whose values differ from the formulas.
    pub wrong_values: u64,
}

/// Checks `rows`, the object of child `index`: every ID against the run's range and
/// the child's slice, every value against the formulas. `seen(pos)` marks a position
/// of the run and says whether it was marked before.
pub fn check_rows(
    manifest: &Manifest,
    index: u32,
    rows: &ResultRows,
    mut seen: impl FnMut(u64) -> bool,
) -> Findings {
    let (n, first, k) = (
        manifest.plan.records,
        manifest.first_id,
        manifest.plan.ids_per_node,
    );
    let mut f = Findings {
        rows: rows.ids.len() as u64,
        ..Findings::default()
    };
    for ((id, total), category) in rows
        .ids
        .values()
        .iter()
        .zip(rows.totals.values())
        .zip(&rows.categories)
    {
        f.checksum = f.checksum.wrapping_add(*total);
        let pos = id.wrapping_sub(first);
        if *id < first || pos >= n {
            f.out_of_range += 1;
            continue;
        }
        if seen(pos) {
            f.duplicates += 1;
        }
        if pos / k != u64::from(index) {
            f.misplaced += 1;
        }
        let rec = workload::record(manifest.seed, *id);
        if *category != Some(rec.category) || *total != rec.total_cents() {
            f.wrong_values += 1;
        }
    }
    f
}

/// Whether child `index`'s result object is complete: readable, and holding exactly
/// the child's IDs, each once, with the workload's values. The error says why not.
/// This is verify's check of one object, for rerun.
pub fn check_result(manifest: &Manifest, index: u32, bytes: bytes::Bytes) -> std::result::Result<(), String> {
    let rows = read_result(bytes)?;
    let range = manifest.plan.slice(index).map_err(|e| e.to_string())?;
    let start = range.start as u64;
    let mut local = vec![false; range.len()];
    let f = check_rows(manifest, index, &rows, |pos| {
        match pos.checked_sub(start).and_then(|p| local.get_mut(p as usize)) {
            Some(slot) => std::mem::replace(slot, true),
            // Another child's position: counted as misplaced, not as a duplicate.
            None => false,
        }
    });
    let mut why = Vec::new();
    if f.rows != range.len() as u64 {
        why.push(format!("{} rows, the child owns {} IDs", f.rows, range.len()));
    }
    for (count, what) in [
        (f.out_of_range, "rows with IDs outside the run's range"),
        (f.misplaced, "rows with IDs another child owns"),
        (f.duplicates, "duplicate rows"),
        (f.wrong_values, "rows whose values differ from the workload"),
    ] {
        if count > 0 {
            why.push(format!("{count} {what}"));
        }
    }
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join(", "))
    }
}

/// A pool of `threads` threads for visiting every child of a run: the number of
/// reads in flight is the caller's choice (one per core for local files, more for
/// S3), not the machine's default.
///
/// Not a check: `scripts/mutants.sh` leaves it out by name (its one mutant, a
/// default pool, does not build; a changed thread count changes only the speed).
pub fn reader_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("tandem-reader-{i}"))
        .build()
        .map_err(|e| Error::InvalidInput(format!("cannot start {threads} reader threads: {e}")))
}

/// Verifies run `manifest` against the objects in `store`, reading with `threads`.
pub fn verify(manifest: &Manifest, store: &dyn ObjectStore, threads: usize) -> Result<VerifyReport> {
    let plan = manifest.plan;
    let n = plan.records;
    let run_id = manifest.run_id.as_str();
    let seen = Seen::new(n);
    let dup = Seen::new(n);

    /// What one object held.
    enum Object {
        Rows(Findings),
        Missing,
        Unreadable(String),
        Unchecked(Error),
    }
    let per_child: Vec<(u32, Object)> = reader_pool(threads)?.install(|| {
        (0..plan.array_size)
            .into_par_iter()
            .map(|index| {
                let bytes = match store.get(&object_key(run_id, index)) {
                    Ok(b) => b,
                    Err(e) if e.is_not_found() => return (index, Object::Missing),
                    // A remote store that refused or failed the request (denied,
                    // throttled past its retries) says nothing about the object: the
                    // verification cannot be made, and saying "unreadable" would blame
                    // the result.
                    Err(e @ Error::Backend { .. }) => return (index, Object::Unchecked(e)),
                    // A directory where the object should be, a file that cannot be
                    // opened: this object is unreadable.
                    Err(e) => {
                        return (
                            index,
                            Object::Unreadable(format!("cannot read it: {}", crate::error::chain(&e))),
                        );
                    }
                };
                match read_result(bytes) {
                    Ok(rows) => {
                        let f = check_rows(manifest, index, &rows, |pos| {
                            let again = seen.mark(pos);
                            if again {
                                dup.mark(pos);
                            }
                            again
                        });
                        (index, Object::Rows(f))
                    }
                    Err(why) => (index, Object::Unreadable(why)),
                }
            })
            .collect()
    });
    let mut total = Findings::default();
    let mut missing_objects = Vec::new();
    let mut unreadable = Vec::new();
    let mut with_misplaced = Vec::new();
    let mut with_wrong = Vec::new();
    for (index, object) in per_child {
        match object {
            Object::Rows(f) => {
                total.rows += f.rows;
                total.checksum = total.checksum.wrapping_add(f.checksum);
                total.out_of_range += f.out_of_range;
                total.duplicates += f.duplicates;
                total.misplaced += f.misplaced;
                total.wrong_values += f.wrong_values;
                if f.misplaced > 0 {
                    with_misplaced.push(index);
                }
                if f.wrong_values > 0 {
                    with_wrong.push(index);
                }
            }
            Object::Missing => missing_objects.push(index),
            Object::Unreadable(why) => unreadable.push((index, why)),
            // The first such error ends the verification (exit 2), naming the object.
            Object::Unchecked(e) => return Err(e),
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
    let expected = workload::expected(manifest.first_id, n, manifest.seed);
    let unexpected = store
        .list(&results_prefix(run_id))?
        .into_iter()
        .filter(|o| index_of_key(run_id, &o.key).is_none_or(|i| i >= plan.array_size))
        .map(|o| o.key)
        .collect();
    let mut report = VerifyReport {
        run_id: run_id.to_string(),
        ok: false,
        expected_rows: n,
        rows: total.rows,
        expected_checksum: expected.checksum,
        checksum: total.checksum,
        missing_ids,
        duplicate_ids: total.duplicates,
        out_of_range_ids: total.out_of_range,
        misplaced_ids: total.misplaced,
        wrong_values: total.wrong_values,
        missing_objects,
        unreadable_objects: unreadable,
        indices_with_missing_ids: with_missing,
        indices_with_duplicate_ids: with_dups,
        indices_with_misplaced_ids: with_misplaced,
        indices_with_wrong_values: with_wrong,
        unexpected_objects: unexpected,
    };
    report.ok = report.problems().is_empty();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{Completion, encode};
    use crate::names::Stage;
    use crate::plan::PartitionPlan;

    fn manifest(records: u64, k: u64) -> Manifest {
        Manifest {
            format: crate::manifest::FORMAT,
            run_id: "r".parse().unwrap(),
            created_at: String::new(),
            first_id: 1,
            seed: 42,
            plan: PartitionPlan::new(records, k).unwrap(),
            id_file: "ids.arrow".into(),
            bucket: String::new(),
        }
    }

    fn object(ids: &[u64], seed: u64, tweak: impl FnOnce(&mut Vec<u64>)) -> bytes::Bytes {
        object_with(ids, seed, tweak, |_| {})
    }

    /// A sealed result of `ids` whose totals and category keys the tweaks may change.
    fn object_with(
        ids: &[u64],
        seed: u64,
        tweak: impl FnOnce(&mut Vec<u64>),
        tweak_categories: impl FnOnce(&mut Vec<u8>),
    ) -> bytes::Bytes {
        let (b1, _) = workload::procure(ids, seed);
        let (b2, d) = workload::process(&b1).unwrap();
        let mut totals: Vec<u64> = b2
            .column(2)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap()
            .values()
            .to_vec();
        tweak(&mut totals);
        let dict = b2
            .column(1)
            .as_any()
            .downcast_ref::<DictionaryArray<UInt8Type>>()
            .unwrap();
        let mut keys: Vec<u8> = dict.keys().values().to_vec();
        tweak_categories(&mut keys);
        let categories =
            DictionaryArray::<UInt8Type>::try_new(arrow_array::UInt8Array::from(keys), dict.values().clone())
                .unwrap();
        let b2 = RecordBatch::try_new(
            b2.schema(),
            vec![
                b2.column(0).clone(),
                std::sync::Arc::new(categories),
                std::sync::Arc::new(UInt64Array::from(totals)),
            ],
        )
        .unwrap();
        let mut c = Completion {
            run_id: "r".parse().unwrap(),
            index: 0,
            stage: Stage::Egress,
            digest: d,
            history: vec![],
        };
        bytes::Bytes::from(encode(&b2, &mut c).unwrap())
    }

    #[test]
    fn a_correct_object_is_complete() {
        let m = manifest(40, 20);
        let ids: Vec<u64> = (21..=40).collect();
        check_result(&m, 1, object(&ids, 42, |_| {})).unwrap();
    }

    #[test]
    fn a_wrong_category_alone_is_caught() {
        // Every total right, one row's category another valid one: only the category
        // comparison can see it (remove it, and this object passes).
        let m = manifest(40, 20);
        let ids: Vec<u64> = (21..=40).collect();
        let n = CATEGORIES.len() as u8;
        let bad = object_with(&ids, 42, |_| {}, |k| k[5] = (k[5] + 1) % n);
        let err = check_result(&m, 1, bad.clone()).unwrap_err();
        assert!(err.contains("1 rows whose values differ"), "{err}");
        let rows = read_result(bad).unwrap();
        let f = check_rows(&m, 1, &rows, |_| false);
        assert_eq!((f.wrong_values, f.misplaced, f.duplicates), (1, 0, 0));
    }

    #[test]
    fn wrong_values_foreign_ids_and_other_seeds_are_named() {
        let m = manifest(40, 20);
        let ids: Vec<u64> = (21..=40).collect();
        let err = check_result(&m, 1, object(&ids, 42, |t| t[3] += 1)).unwrap_err();
        assert!(err.contains("1 rows whose values differ"), "{err}");
        // A stale object of a run with another seed: same IDs, other values.
        let err = check_result(&m, 1, object(&ids, 7, |_| {})).unwrap_err();
        assert!(err.contains("values differ"), "{err}");
        // Child 0's rows in child 1's object.
        let err = check_result(&m, 1, object(&(1..=20).collect::<Vec<_>>(), 42, |_| {})).unwrap_err();
        assert!(err.contains("20 rows with IDs another child owns"), "{err}");
        // A short object.
        let err = check_result(&m, 1, object(&(21..=39).collect::<Vec<_>>(), 42, |_| {})).unwrap_err();
        assert!(err.contains("19 rows, the child owns 20"), "{err}");
    }

    /// A report of a clean run of `children` children: no problem at all.
    fn clean(children: u32) -> VerifyReport {
        VerifyReport {
            run_id: "r".into(),
            ok: true,
            expected_rows: 40,
            rows: 40,
            expected_checksum: 7,
            checksum: 7,
            missing_ids: 0,
            duplicate_ids: 0,
            out_of_range_ids: 0,
            misplaced_ids: 0,
            wrong_values: 0,
            missing_objects: vec![],
            unreadable_objects: (0..children).map(|i| (i, "torn".to_string())).collect(),
            indices_with_missing_ids: vec![],
            indices_with_duplicate_ids: vec![],
            indices_with_misplaced_ids: vec![],
            indices_with_wrong_values: vec![],
            unexpected_objects: vec![],
        }
    }

    #[test]
    fn a_list_shows_twenty_indices_and_counts_the_rest() {
        let twenty: Vec<u32> = (0..20).collect();
        assert_eq!(
            list(&twenty),
            twenty.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        );
        let more: Vec<u32> = (0..21).collect();
        assert!(list(&more).ends_with("18, 19 and 1 more"), "{}", list(&more));
    }

    #[test]
    fn twenty_unreadable_results_are_named_and_the_rest_counted() {
        let p = clean(20).problems();
        assert_eq!(p.len(), 20, "{p:?}");
        let p = clean(21).problems();
        assert_eq!(p.len(), 21, "{p:?}");
        assert_eq!(p[20], "... and 1 more unreadable results");
        assert!(clean(0).problems().is_empty());
    }

    #[test]
    fn one_missing_duplicate_out_of_range_misplaced_or_wrong_row_is_a_problem() {
        let mut r = clean(0);
        r.missing_ids = 1;
        r.indices_with_missing_ids = vec![3];
        assert_eq!(r.problems(), ["1 IDs missing, owned by indices 3"]);
        let mut r = clean(0);
        r.duplicate_ids = 1;
        r.indices_with_duplicate_ids = vec![4];
        assert_eq!(r.problems(), ["1 duplicate rows, owned by indices 4"]);
        let mut r = clean(0);
        r.misplaced_ids = 1;
        r.indices_with_misplaced_ids = vec![5];
        assert_eq!(
            r.problems(),
            ["1 rows are in the object of a child that does not own their ID: objects of indices 5"]
        );
        let mut r = clean(0);
        r.out_of_range_ids = 1;
        assert_eq!(r.problems(), ["1 rows have IDs outside the run's range"]);
        let mut r = clean(0);
        r.wrong_values = 1;
        r.indices_with_wrong_values = vec![6];
        assert_eq!(
            r.problems(),
            ["1 rows have a category or total_cents that differs from the workload: objects of indices 6"]
        );
    }

    /// A sealed object of `batch` (any schema).
    fn sealed(batch: &RecordBatch) -> bytes::Bytes {
        let mut c = Completion {
            run_id: "r".parse().unwrap(),
            index: 0,
            stage: Stage::Egress,
            digest: Default::default(),
            history: vec![],
        };
        bytes::Bytes::from(encode(batch, &mut c).unwrap())
    }

    #[test]
    fn an_object_of_another_schema_is_unreadable_naming_it() {
        let ids: Vec<u64> = (1..=20).collect();
        let (procured, _) = workload::procure(&ids, 42);
        let (good, _) = workload::process(&procured).unwrap();
        let refused = |batch: &RecordBatch| {
            let err = read_result(sealed(batch)).map(|_| ()).unwrap_err();
            assert!(err.contains("schema is not the result schema"), "{err}");
        };
        // A stage file that is not a result.
        refused(&procured);
        // The result's columns and one more.
        let extra = arrow_schema::Schema::new(
            good.schema()
                .fields()
                .iter()
                .cloned()
                .chain([std::sync::Arc::new(arrow_schema::Field::new(
                    "note",
                    arrow_schema::DataType::UInt64,
                    false,
                ))])
                .collect::<Vec<_>>(),
        );
        let mut cols = good.columns().to_vec();
        cols.push(good.column(2).clone());
        refused(&RecordBatch::try_new(std::sync::Arc::new(extra), cols).unwrap());
        // The same names, total_cents of another type.
        let mut fields: Vec<arrow_schema::Field> = good
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields[2] = arrow_schema::Field::new("total_cents", arrow_schema::DataType::Int64, false);
        let totals: arrow_array::Int64Array = good
            .column(2)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap()
            .values()
            .iter()
            .map(|v| *v as i64)
            .collect();
        refused(
            &RecordBatch::try_new(
                std::sync::Arc::new(arrow_schema::Schema::new(fields)),
                vec![
                    good.column(0).clone(),
                    good.column(1).clone(),
                    std::sync::Arc::new(totals),
                ],
            )
            .unwrap(),
        );
        // The same names and types, total_cents nullable.
        let mut fields: Vec<arrow_schema::Field> = good
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields[2] = fields[2].clone().with_nullable(true);
        refused(
            &RecordBatch::try_new(
                std::sync::Arc::new(arrow_schema::Schema::new(fields)),
                good.columns().to_vec(),
            )
            .unwrap(),
        );
        // And the result itself is read.
        assert_eq!(read_result(sealed(&good)).unwrap().ids.len(), 20);
    }

    #[test]
    fn a_result_larger_than_a_default_batch_is_read_whole() {
        // More rows than arrow's default batch of 1,024: every row.
        let ids: Vec<u64> = (1..=5000).collect();
        let rows = read_result(object(&ids, 42, |_| {})).unwrap();
        assert_eq!(rows.ids.len(), 5000);
        assert_eq!(rows.totals.len(), 5000);
        assert_eq!(rows.ids.value(4999), 5000);
    }

    #[test]
    fn ids_past_either_end_of_the_range_are_out_of_range_not_misplaced() {
        let m = manifest(40, 20);
        // The last child's object with the ID after the run's last.
        let ids: Vec<u64> = (21..=41).collect();
        let f = check_rows(&m, 1, &read_result(object(&ids, 42, |_| {})).unwrap(), |_| false);
        assert_eq!((f.out_of_range, f.misplaced, f.rows), (1, 0, 21));
        // The first child's with the ID before the run's first.
        let ids: Vec<u64> = (0..=20).collect();
        let f = check_rows(&m, 0, &read_result(object(&ids, 42, |_| {})).unwrap(), |_| false);
        assert_eq!((f.out_of_range, f.misplaced, f.rows), (1, 0, 21));
    }

    #[test]
    fn verify_adds_up_every_childs_findings() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&format!("file://{}", dir.path().display())).unwrap();
        let m = manifest(40, 20);
        // Child 0: its IDs, one of them twice, and one past the run's end.
        let mut ids: Vec<u64> = (1..=20).collect();
        ids.extend([5, 41]);
        store
            .put(&crate::names::object_key("r", 0), object(&ids, 42, |_| {}))
            .unwrap();
        // Child 1: its IDs, one of them twice, one before the run's first, one total wrong.
        let mut ids: Vec<u64> = (21..=40).collect();
        ids.extend([30, 0]);
        store
            .put(&crate::names::object_key("r", 1), object(&ids, 42, |t| t[0] += 1))
            .unwrap();
        let r = verify(&m, store.as_ref(), 2).unwrap();
        assert!(!r.ok);
        assert_eq!(
            (r.out_of_range_ids, r.duplicate_ids, r.wrong_values),
            (2, 2, 1),
            "{:?}",
            r.problems()
        );
        assert_eq!(r.indices_with_wrong_values, [1]);
        assert_eq!(r.indices_with_duplicate_ids, [0, 1]);
        assert_eq!(r.rows, 44);
    }
}
