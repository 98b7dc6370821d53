//! The reference workload (`docs/workload.md`): record generation (stage 1,
//! "procure"), processing (stage 2, "process") and the exact answer.
//!
//! Pure functions over `&[u64]` and `RecordBatch`: no I/O, so benchmarks measure
//! only the computation and tests need no files. All arithmetic is wrapping `u64`.

use std::sync::{Arc, LazyLock};

use arrow_array::types::UInt8Type;
use arrow_array::{
    Array, ArrayRef, DictionaryArray, RecordBatch, StringArray, UInt8Array, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::{Error, Result};

/// The eight product categories, indexed by `r & 7`.
pub const CATEGORIES: [&str; 8] = [
    "Accessories",
    "Audio",
    "Books",
    "Cameras",
    "Computers",
    "Games",
    "Home",
    "Phones",
];

/// The default seed of the reference workload.
pub const DEFAULT_SEED: u64 = 42;
/// The reference workload's records (N).
pub const DEFAULT_RECORDS: u64 = 400_000;
/// The reference workload's first ID.
pub const DEFAULT_FIRST_ID: u64 = 1;
/// The reference workload's IDs per child (K).
pub const DEFAULT_IDS_PER_NODE: u64 = 40;

/// A run's workload as it is asked for. The CLI's flags, the run state machine's
/// execution input (`tandem start`, the schedule) and the prepare function's event are
/// this one type: a missing field takes the reference workload's value, an unknown one
/// (a typo such as `record`) is refused rather than silently ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadInput {
    /// `N` ([`DEFAULT_RECORDS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// `K` ([`DEFAULT_IDS_PER_NODE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids_per_node: Option<u64>,
    /// The seed ([`DEFAULT_SEED`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The first ID ([`DEFAULT_FIRST_ID`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_id: Option<u64>,
}

impl WorkloadInput {
    pub fn records(&self) -> u64 {
        self.records.unwrap_or(DEFAULT_RECORDS)
    }

    pub fn ids_per_node(&self) -> u64 {
        self.ids_per_node.unwrap_or(DEFAULT_IDS_PER_NODE)
    }

    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or(DEFAULT_SEED)
    }

    pub fn first_id(&self) -> u64 {
        self.first_id.unwrap_or(DEFAULT_FIRST_ID)
    }

    /// The plan it makes, refused as prepare would refuse it (over Batch's 10,000
    /// children, naming the `--ids-per-node` that fits).
    pub fn plan(&self) -> crate::Result<crate::plan::PartitionPlan> {
        crate::plan::PartitionPlan::new(self.records(), self.ids_per_node())
    }

    /// The options of a run of this workload under `root`.
    pub fn prepare_options(
        &self,
        root: &std::path::Path,
        run_id: Option<crate::layout::RunId>,
        overwrite: bool,
    ) -> crate::prepare::PrepareOptions {
        crate::prepare::PrepareOptions {
            root: root.to_path_buf(),
            run_id,
            records: self.records(),
            first_id: self.first_id(),
            ids_per_node: self.ids_per_node(),
            seed: self.seed(),
            overwrite,
        }
    }
}

/// splitmix64 as specified (Steele, Lea, Flood 2014).
#[inline]
pub fn splitmix64(x: u64) -> u64 {
    let x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One generated record, before it becomes a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Index into [`CATEGORIES`].
    pub category: u8,
    /// 1..=100
    pub quantity: u32,
    /// 100..=100099
    pub price_cents: u64,
}

impl Record {
    /// `price_cents * quantity`, wrapping.
    #[inline]
    pub fn total_cents(&self) -> u64 {
        self.price_cents.wrapping_mul(u64::from(self.quantity))
    }
}

/// The record for `id` under `seed`.
#[inline]
pub fn record(seed: u64, id: u64) -> Record {
    let r = splitmix64(seed ^ id);
    Record {
        category: (r & 7) as u8,
        quantity: 1 + ((r >> 8) % 100) as u32,
        price_cents: 100 + ((r >> 16) % 100_000),
    }
}

/// Schema of a stage-1 ("procure") file.
pub fn procure_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::UInt64, false),
            Field::new("category", category_type(), false),
            Field::new("quantity", DataType::UInt32, false),
            Field::new("price_cents", DataType::UInt64, false),
        ]))
    });
    S.clone()
}

/// Schema of a stage-2 ("process") file and of the egressed objects.
pub fn process_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::UInt64, false),
            Field::new("category", category_type(), false),
            Field::new("total_cents", DataType::UInt64, false),
        ]))
    });
    S.clone()
}

/// `category` is Utf8, dictionary-encoded over the eight categories.
fn category_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt8), Box::new(DataType::Utf8))
}

fn category_values() -> ArrayRef {
    static V: LazyLock<ArrayRef> =
        LazyLock::new(|| Arc::new(StringArray::from(CATEGORIES.to_vec())) as ArrayRef);
    V.clone()
}

/// What a stage learned about the rows it wrote; the next stage checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Digest {
    /// Number of rows.
    pub rows: u64,
    /// Sum of the ids, wrapping.
    pub id_sum: u64,
    /// Sum of `total_cents` (for stage 1, of `price_cents * quantity`), wrapping.
    pub checksum: u64,
}

impl Digest {
    /// Adds another digest (wrapping), for totals over children.
    pub fn merge(&mut self, other: &Digest) {
        self.rows += other.rows;
        self.id_sum = self.id_sum.wrapping_add(other.id_sum);
        self.checksum = self.checksum.wrapping_add(other.checksum);
    }
}

/// Stage 1: generates the records for `ids` and returns the batch with its digest.
pub fn procure(ids: &[u64], seed: u64) -> (RecordBatch, Digest) {
    let mut keys = Vec::with_capacity(ids.len());
    let mut quantity = Vec::with_capacity(ids.len());
    let mut price = Vec::with_capacity(ids.len());
    let mut digest = Digest {
        rows: ids.len() as u64,
        ..Digest::default()
    };
    for &id in ids {
        let rec = record(seed, id);
        keys.push(rec.category);
        quantity.push(rec.quantity);
        price.push(rec.price_cents);
        digest.id_sum = digest.id_sum.wrapping_add(id);
        digest.checksum = digest.checksum.wrapping_add(rec.total_cents());
    }
    let category = DictionaryArray::<UInt8Type>::try_new(UInt8Array::from(keys), category_values())
        .map(|a| Arc::new(a) as ArrayRef);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from(ids.to_vec())),
        category.unwrap_or_else(|e| unreachable!("category keys are < 8: {e}")),
        Arc::new(UInt32Array::from(quantity)),
        Arc::new(UInt64Array::from(price)),
    ];
    let batch = RecordBatch::try_new(procure_schema(), columns)
        .unwrap_or_else(|e| unreachable!("columns match the procure schema: {e}"));
    (batch, digest)
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "batch has no column {name:?} of the expected type (schema: {})",
                batch.schema()
            ))
        })
}

/// Digest of a stage-1 batch, recomputed from its rows.
pub fn digest_procured(batch: &RecordBatch) -> Result<Digest> {
    let id = column::<UInt64Array>(batch, "id")?;
    let quantity = column::<UInt32Array>(batch, "quantity")?;
    let price = column::<UInt64Array>(batch, "price_cents")?;
    let mut d = Digest {
        rows: batch.num_rows() as u64,
        ..Digest::default()
    };
    for ((id, q), p) in id.values().iter().zip(quantity.values()).zip(price.values()) {
        d.id_sum = d.id_sum.wrapping_add(*id);
        d.checksum = d.checksum.wrapping_add(p.wrapping_mul(u64::from(*q)));
    }
    Ok(d)
}

/// Digest of a stage-2 batch, recomputed from its rows.
pub fn digest_processed(batch: &RecordBatch) -> Result<Digest> {
    let id = column::<UInt64Array>(batch, "id")?;
    let total = column::<UInt64Array>(batch, "total_cents")?;
    Ok(Digest {
        rows: batch.num_rows() as u64,
        id_sum: id.values().iter().fold(0u64, |a, v| a.wrapping_add(*v)),
        checksum: total.values().iter().fold(0u64, |a, v| a.wrapping_add(*v)),
    })
}

/// Stage 2: `total_cents = price_cents * quantity`, keeping `id` and `category`.
///
/// Fails (does not panic) on a batch without the stage-1 columns.
pub fn process(batch: &RecordBatch) -> Result<(RecordBatch, Digest)> {
    let id = column::<UInt64Array>(batch, "id")?;
    let quantity = column::<UInt32Array>(batch, "quantity")?;
    let price = column::<UInt64Array>(batch, "price_cents")?;
    let category = batch
        .column_by_name("category")
        .filter(|c| c.data_type() == &category_type())
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "batch has no dictionary column \"category\" (schema: {})",
                batch.schema()
            ))
        })?;
    if id.null_count() + quantity.null_count() + price.null_count() > 0 {
        return Err(Error::InvalidInput("stage-1 batch has null values".into()));
    }
    let total: Vec<u64> = price
        .values()
        .iter()
        .zip(quantity.values())
        .map(|(p, q)| p.wrapping_mul(u64::from(*q)))
        .collect();
    let digest = Digest {
        rows: batch.num_rows() as u64,
        id_sum: id.values().iter().fold(0u64, |a, v| a.wrapping_add(*v)),
        checksum: total.iter().fold(0u64, |a, v| a.wrapping_add(*v)),
    };
    let out = RecordBatch::try_new(
        process_schema(),
        vec![
            Arc::new(id.clone()) as ArrayRef,
            category.clone(),
            Arc::new(UInt64Array::from(total)),
        ],
    )
    .map_err(|e| Error::InvalidInput(format!("cannot build the stage-2 batch: {e}")))?;
    Ok((out, digest))
}

/// The exact answer for `records` IDs starting at `first_id`, computed straight
/// from the formulas (no batches, no files).
pub fn expected(first_id: u64, records: u64, seed: u64) -> Digest {
    let mut d = Digest {
        rows: records,
        ..Digest::default()
    };
    for k in 0..records {
        let id = first_id.wrapping_add(k);
        d.id_sum = d.id_sum.wrapping_add(id);
        d.checksum = d.checksum.wrapping_add(record(seed, id).total_cents());
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_reference_values() {
        // First outputs of the reference generator seeded with 0 (x advanced by the
        // golden gamma each step, as in Vigna's splitmix64.c).
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn records_stay_in_their_ranges() {
        for id in 1..10_000 {
            let r = record(42, id);
            assert!(r.category < 8);
            assert!((1..=100).contains(&r.quantity));
            assert!((100..=100_099).contains(&r.price_cents));
        }
    }

    #[test]
    fn expected_matches_the_python_oracle_for_1000() {
        // python3 scripts/workload_oracle.py 1000
        let d = expected(1, 1000, 42);
        assert_eq!(d.rows, 1000);
        assert_eq!(d.id_sum, 500_500);
        assert_eq!(d.checksum, ORACLE_1000);
    }

    /// `python3 scripts/workload_oracle.py 1000` -> checksum.
    const ORACLE_1000: u64 = 2_449_902_434;

    #[test]
    fn procure_then_process_reproduces_the_formula() {
        let ids: Vec<u64> = (1..=1000).collect();
        let (b1, d1) = procure(&ids, 42);
        assert_eq!(digest_procured(&b1).unwrap(), d1);
        let (b2, d2) = process(&b1).unwrap();
        assert_eq!(d1, d2);
        assert_eq!(digest_processed(&b2).unwrap(), d2);
        assert_eq!(d2, expected(1, 1000, 42));
    }

    #[test]
    fn process_rejects_a_batch_without_stage1_columns() {
        let ids: Vec<u64> = (1..=10).collect();
        let (b1, _) = procure(&ids, 42);
        let (b2, _) = process(&b1).unwrap();
        let err = process(&b2).unwrap_err().to_string();
        assert!(err.contains("quantity"), "{err}");
    }
}
