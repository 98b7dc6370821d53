//! The Parquet files stages exchange, and the completion record inside them.
//!
//! A child's completion record (run, index, stage, rows, id sum, checksum and the
//! timing of every stage so far) travels as key-value metadata in the Parquet footer
//! of the file the child must write anyway. The footer is written last, so a file
//! whose footer decodes, whose record names the expected run/index/stage and whose
//! rows reproduce the recorded digest is complete; a half-written, truncated or
//! foreign file fails one of those checks and is treated as missing. This costs no
//! extra files (on EFS every create is a network round trip) and lets an output be
//! written in place: a retried child simply truncates and rewrites it.

use std::sync::{Arc, LazyLock};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::file::metadata::{
    FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::stage::Stage;
use crate::workload::{self, Digest};
use crate::{Error, Result};

/// The footer key holding the completion record (JSON).
pub const COMPLETION_KEY: &str = "tandem.completion";

/// When one stage ran for a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageTiming {
    /// The stage.
    pub stage: Stage,
    /// 1-based attempt that produced the output.
    pub attempt: u32,
    /// Wall clock, microseconds since the Unix epoch.
    pub start_us: u64,
    /// Wall clock when the output was encoded, microseconds since the Unix epoch.
    pub end_us: u64,
}

/// What a stage learned about a child, stored in the footer of its output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// Run the file belongs to.
    pub run_id: String,
    /// Array index of the child.
    pub index: u32,
    /// Stage that wrote the file.
    pub stage: Stage,
    /// Rows, id sum and checksum of the rows in the file.
    #[serde(flatten)]
    pub digest: Digest,
    /// Timings of this stage and the stages before it, in order.
    pub history: Vec<StageTiming>,
}

impl Completion {
    /// Checks that the record is for `run_id`/`index`/`stage`.
    pub fn check_identity(&self, path: &str, run_id: &str, index: u32, stage: Stage) -> Result<()> {
        if self.run_id != run_id || self.index != index || self.stage != stage {
            return Err(Error::corrupt(
                path,
                format!(
                    "belongs to run {} child {} stage {}, expected run {run_id} child {index} stage {stage}",
                    self.run_id, self.index, self.stage
                ),
            ));
        }
        Ok(())
    }
}

static PROPS: LazyLock<WriterProperties> = LazyLock::new(|| {
    WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        // One row group per child; chunk statistics are enough for readers to prune,
        // page-level indexes would only grow a file of a few dozen rows.
        .set_statistics_enabled(EnabledStatistics::Chunk)
        // IDs, quantities, prices and totals are (nearly) all distinct: a dictionary
        // would be built and then abandoned for every file. Only the category, eight
        // values, is dictionary-encoded.
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(ColumnPath::from("category"), true)
        .set_created_by(concat!("tandem ", env!("CARGO_PKG_VERSION")).to_string())
        .build()
});

/// Encodes `batch` as one Parquet file in memory, with `completion` in the footer.
///
/// The last entry of the completion's history gets its `end_us` stamped once the
/// rows are encoded, just before the footer is written.
pub fn encode(batch: &RecordBatch, completion: &mut Completion) -> Result<Vec<u8>> {
    let (stage, index) = (completion.stage, completion.index);
    let fail = |what: &str, e: &dyn std::fmt::Display| Error::Child {
        stage: stage.to_string(),
        index,
        message: format!("encoding {what}: {e}"),
    };
    let mut out = Vec::with_capacity(2048 + batch.get_array_memory_size() / 2);
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(PROPS.clone()))
        .map_err(|e| fail("Parquet", &e))?;
    writer.write(batch).map_err(|e| fail("Parquet", &e))?;
    if let Some(last) = completion.history.last_mut() {
        last.end_us = crate::time::now_micros();
    }
    let json = serde_json::to_string(completion).map_err(|e| fail("the completion record", &e))?;
    writer.append_key_value_metadata(KeyValue::new(COMPLETION_KEY.to_string(), json));
    writer.close().map_err(|e| fail("Parquet", &e))?;
    Ok(out)
}

/// A decoded stage file.
#[derive(Debug)]
pub struct Decoded {
    /// All rows of the file in one batch.
    pub batch: RecordBatch,
    /// The completion record from its footer.
    pub completion: Completion,
}

/// A parsed Parquet footer and the completion record in it.
#[derive(Debug)]
pub struct Footer {
    /// The file's Parquet metadata.
    pub metadata: Arc<ParquetMetaData>,
    /// The completion record.
    pub completion: Completion,
}

/// Parses the footer of an encoded file (no data pages are read). A file whose
/// footer does not parse is half written, truncated or not Parquet.
pub fn read_footer(path: &str, bytes: &Bytes) -> Result<Footer> {
    let metadata = ParquetMetaDataReader::new()
        .parse_and_finish(bytes)
        .map_err(|e| incomplete(path, e))?;
    let completion = completion_of(path, &metadata)?;
    Ok(Footer {
        metadata: Arc::new(metadata),
        completion,
    })
}

/// Reads only the completion record of a Parquet file (footer, no data pages).
pub fn read_completion(path: &str, bytes: &Bytes) -> Result<Completion> {
    read_footer(path, bytes).map(|f| f.completion)
}

fn incomplete(path: &str, e: impl std::fmt::Display) -> Error {
    Error::corrupt(
        path,
        format!("not a complete Parquet file (half written, truncated or foreign): {e}"),
    )
}

fn completion_of(path: &str, meta: &ParquetMetaData) -> Result<Completion> {
    let json = meta
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == COMPLETION_KEY))
        .and_then(|k| k.value.as_deref())
        .ok_or_else(|| {
            Error::corrupt(
                path,
                format!("Parquet file has no {COMPLETION_KEY} record: not written by tandem"),
            )
        })?;
    serde_json::from_str(json).map_err(|e| Error::corrupt(path, format!("unreadable completion record: {e}")))
}

/// Decodes a stage file: checks the footer, the schema against `schema`, and that
/// the rows reproduce the recorded digest.
///
/// The rows are read with `schema` supplied, which skips decoding the Arrow schema
/// embedded in the file (kept there for other readers, such as pyarrow).
pub fn decode(path: &str, bytes: Bytes, schema: &SchemaRef) -> Result<Decoded> {
    let Footer { metadata, completion } = read_footer(path, &bytes)?;
    let descr = metadata.file_metadata().schema_descr();
    let found: Vec<&str> = descr.columns().iter().map(|c| c.name()).collect();
    let wanted: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    if found != wanted {
        return Err(Error::corrupt(
            path,
            format!("schema does not match: found columns {found:?}, expected {wanted:?}"),
        ));
    }
    let rows = metadata.file_metadata().num_rows().max(1) as usize;
    let options = ArrowReaderOptions::new().with_schema(schema.clone());
    let arrow_meta = ArrowReaderMetadata::try_new(metadata, options)
        .map_err(|e| Error::corrupt(path, format!("schema does not match: {e}")))?;
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, arrow_meta)
        .with_batch_size(rows)
        .build()
        .map_err(|e| incomplete(path, e))?;
    let mut batches = Vec::with_capacity(1);
    for b in reader {
        batches.push(b.map_err(|e| incomplete(path, e))?);
    }
    let batch = match batches.len() {
        0 => RecordBatch::new_empty(schema.clone()),
        1 => batches.pop().unwrap_or_else(|| unreachable!()),
        _ => arrow_select::concat::concat_batches(schema, &batches).map_err(|e| incomplete(path, e))?,
    };
    let digest = if completion.stage == Stage::Procure {
        workload::digest_procured(&batch)?
    } else {
        workload::digest_processed(&batch)?
    };
    if digest != completion.digest {
        return Err(Error::corrupt(
            path,
            format!(
                "rows do not match the completion record: file has {} rows, checksum {}, record says {} rows, checksum {}",
                digest.rows, digest.checksum, completion.digest.rows, completion.digest.checksum
            ),
        ));
    }
    Ok(Decoded { batch, completion })
}

/// Replaces the completion record in the footer of an encoded Parquet file without
/// touching its data pages: the bytes before the footer are kept as they are and a
/// new footer is appended. Egress uses it to stamp its own record on the object.
pub fn restamp(path: &str, bytes: &Bytes, footer: &Footer, completion: &Completion) -> Result<Vec<u8>> {
    let len = bytes.len();
    // read_footer has checked the magic and that the footer fits in the file.
    let meta_len =
        u32::from_le_bytes([bytes[len - 8], bytes[len - 7], bytes[len - 6], bytes[len - 5]]) as usize;
    let data_end = len.checked_sub(8 + meta_len).ok_or_else(|| {
        incomplete(
            path,
            format!("footer length {meta_len} exceeds the file size {len}"),
        )
    })?;
    let json = serde_json::to_string(completion)
        .map_err(|e| Error::corrupt(path, format!("cannot encode completion record: {e}")))?;
    let fm = footer.metadata.file_metadata();
    let mut kv: Vec<KeyValue> = fm
        .key_value_metadata()
        .map(|kv| kv.iter().filter(|k| k.key != COMPLETION_KEY).cloned().collect())
        .unwrap_or_default();
    kv.push(KeyValue::new(COMPLETION_KEY.to_string(), json));
    let new_fm = FileMetaData::new(
        fm.version(),
        fm.num_rows(),
        fm.created_by().map(str::to_string),
        Some(kv),
        fm.schema_descr_ptr(),
        fm.column_orders().cloned(),
    );
    let new_meta = ParquetMetaData::new(new_fm, footer.metadata.row_groups().to_vec());
    let mut out = Vec::with_capacity(len + 256);
    out.extend_from_slice(&bytes[..data_end]);
    ParquetMetaDataWriter::new(&mut out, &new_meta)
        .finish()
        .map_err(|e| Error::corrupt(path, format!("cannot write the new footer: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{process, process_schema, procure, procure_schema};

    fn completion(stage: Stage, digest: Digest) -> Completion {
        Completion {
            run_id: "r".into(),
            index: 3,
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

    #[test]
    fn round_trips_batch_and_completion() {
        let ids: Vec<u64> = (1..=40).collect();
        let (b, d) = procure(&ids, 42);
        let mut c = completion(Stage::Procure, d);
        let bytes = encode(&b, &mut c).unwrap();
        assert!(c.history[0].end_us > 2, "end not stamped");
        let got = decode("f", Bytes::from(bytes.clone()), &procure_schema()).unwrap();
        assert_eq!(got.completion, c);
        assert_eq!(got.batch, b);
        assert_eq!(read_completion("f", &Bytes::from(bytes)).unwrap(), c);
    }

    #[test]
    fn large_child_reads_back_as_one_batch() {
        let ids: Vec<u64> = (1..=5000).collect();
        let (b, d) = procure(&ids, 42);
        let bytes = encode(&b, &mut completion(Stage::Procure, d)).unwrap();
        let got = decode("f", Bytes::from(bytes), &procure_schema()).unwrap();
        assert_eq!(got.batch.num_rows(), 5000);
    }

    #[test]
    fn every_truncation_is_detected() {
        let ids: Vec<u64> = (1..=40).collect();
        let (b, d) = procure(&ids, 42);
        let bytes = encode(&b, &mut completion(Stage::Procure, d)).unwrap();
        for cut in 0..bytes.len() {
            let r = decode("f", Bytes::copy_from_slice(&bytes[..cut]), &procure_schema());
            assert!(
                r.is_err(),
                "a file cut at {cut} of {} bytes was accepted",
                bytes.len()
            );
        }
    }

    #[test]
    fn wrong_schema_is_refused() {
        let ids: Vec<u64> = (1..=40).collect();
        let (b, d) = procure(&ids, 42);
        let bytes = encode(&b, &mut completion(Stage::Procure, d)).unwrap();
        let err = decode("f", Bytes::from(bytes), &process_schema())
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema does not match"), "{err}");
    }

    #[test]
    fn restamp_keeps_the_rows_and_replaces_the_record() {
        let ids: Vec<u64> = (1..=40).collect();
        let (b1, _) = procure(&ids, 42);
        let (b2, d2) = process(&b1).unwrap();
        let mut c = completion(Stage::Process, d2);
        let bytes = Bytes::from(encode(&b2, &mut c).unwrap());
        let mut c3 = c.clone();
        c3.stage = Stage::Egress;
        c3.history.push(StageTiming {
            stage: Stage::Egress,
            attempt: 2,
            start_us: 5,
            end_us: 6,
        });
        let footer = read_footer("f", &bytes).unwrap();
        let stamped = Bytes::from(restamp("f", &bytes, &footer, &c3).unwrap());
        let got = decode("f", stamped, &process_schema()).unwrap();
        assert_eq!(got.completion, c3);
        assert_eq!(got.batch, b2);
    }
}
