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
//!
//! Every file is also sealed: the footer holds a CRC-32 of the whole file (computed
//! with the seal's own eight digits read as `00000000`). A flipped bit anywhere (a
//! data page, a statistic, the embedded Arrow schema other readers rely on) fails
//! the seal before any decoder sees the bytes, so a corrupt file is "unreadable" with
//! a reason, and egress can copy a file's data pages without decoding them and still
//! never publish a damaged one. The decoders themselves run under
//! [`crate::guard::guarded`], so a file that makes them panic is unreadable too.

use std::cell::RefCell;
use std::sync::{Arc, LazyLock};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter, add_encoded_arrow_schema_to_metadata};
use parquet::file::metadata::{
    FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::names::Stage;
use crate::workload::{self, Digest};
use crate::{Error, Result};

/// The footer key holding the completion record (JSON).
pub const COMPLETION_KEY: &str = "tandem.completion";

/// The footer key holding the file's seal: its CRC-32 as eight lowercase hex digits.
pub const SEAL_KEY: &str = "tandem.crc32";

/// What the seal holds while the CRC is computed.
const SEAL_BLANK: &[u8; 8] = b"00000000";

/// The bytes of the seal's key-value entry in the Thrift compact encoding of the
/// footer, up to its value: field 1 (binary) of length 12, the key, field 2 (binary)
/// of length 8. The value's eight bytes follow.
const SEAL_MARKER: &[u8] = b"\x18\x0ctandem.crc32\x18\x08";

/// Where the seal's eight digits are in `bytes`, a complete Parquet file: exactly
/// one seal entry inside the footer.
fn seal_position(bytes: &[u8]) -> std::result::Result<usize, String> {
    let len = bytes.len();
    if len < 12 || &bytes[..4] != b"PAR1" || &bytes[len - 4..] != b"PAR1" {
        return Err(format!(
            "not a complete Parquet file (half written, truncated or foreign): {len} bytes without PAR1 at both ends"
        ));
    }
    let meta_len =
        u32::from_le_bytes([bytes[len - 8], bytes[len - 7], bytes[len - 6], bytes[len - 5]]) as usize;
    let footer_start = len.checked_sub(8 + meta_len).filter(|s| *s >= 4).ok_or_else(|| {
        format!("footer length {meta_len} does not fit in the file ({len} bytes): truncated or corrupt")
    })?;
    let footer = &bytes[footer_start..len - 8];
    let mut found =
        memchr::memmem::find_iter(footer, SEAL_MARKER).map(|i| footer_start + i + SEAL_MARKER.len());
    match (found.next(), found.next()) {
        (Some(pos), None) if pos + 8 <= len - 8 => Ok(pos),
        (Some(_), None) => Err(format!(
            "the {SEAL_KEY} seal's digits run past the end of the footer: corrupt"
        )),
        (None, _) => Err(format!(
            "no {SEAL_KEY} seal in the footer: not written by this version of tandem, or the footer is corrupt"
        )),
        (Some(_), Some(_)) => Err(format!("the footer holds more than one {SEAL_KEY} seal: corrupt")),
    }
}

/// CRC-32 of `bytes` with the seal at `pos` read as blank.
fn crc_with_blank_seal(bytes: &[u8], pos: usize) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[..pos]);
    h.update(SEAL_BLANK);
    h.update(&bytes[pos + 8..]);
    h.finalize()
}

/// Writes the seal into an encoded file whose footer holds a blank one.
fn seal(path: &str, bytes: &mut [u8]) -> Result<()> {
    let pos = seal_position(bytes).map_err(|e| Error::corrupt(path, format!("cannot seal the file: {e}")))?;
    let crc = crc_with_blank_seal(bytes, pos);
    bytes[pos..pos + 8].copy_from_slice(format!("{crc:08x}").as_bytes());
    Ok(())
}

/// Checks a file's seal: the CRC-32 in its footer matches its bytes. Reads nothing
/// but the trailer and the footer's bytes; no decoder runs.
pub fn check_seal(path: &str, bytes: &[u8]) -> Result<()> {
    let pos = seal_position(bytes).map_err(|e| Error::corrupt(path, e))?;
    let digits = &bytes[pos..pos + 8];
    let stored = std::str::from_utf8(digits)
        .ok()
        .filter(|d| {
            d.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
        .and_then(|d| u32::from_str_radix(d, 16).ok())
        .ok_or_else(|| {
            Error::corrupt(
                path,
                format!("the {SEAL_KEY} seal {digits:?} is not eight hex digits: corrupt"),
            )
        })?;
    let computed = crc_with_blank_seal(bytes, pos);
    if stored != computed {
        return Err(Error::corrupt(
            path,
            format!(
                "checksum mismatch: the file changed after it was written (sealed crc32 {stored:08x}, bytes give {computed:08x})"
            ),
        ));
    }
    Ok(())
}

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

/// What [`ArrowWriter::try_new`] derives from a schema for every file it starts (the
/// Parquet schema, and the properties carrying the base64 Arrow schema other readers
/// use), derived once per schema and thread instead: a child's file is a few dozen
/// rows, so per-file setup is a large part of its cost. The bytes written are the
/// same (`writer_options_write_what_arrow_writer_writes`).
fn writer_options(schema: &SchemaRef) -> parquet::errors::Result<ArrowWriterOptions> {
    thread_local! {
        static KITS: RefCell<Vec<(SchemaRef, ArrowWriterOptions)>> = const { RefCell::new(Vec::new()) };
    }
    KITS.with_borrow_mut(|kits| {
        if let Some((_, options)) = kits.iter().find(|(s, _)| Arc::ptr_eq(s, schema) || s == schema) {
            return Ok(options.clone());
        }
        let mut props = PROPS.clone();
        add_encoded_arrow_schema_to_metadata(schema, &mut props);
        let descr = ArrowSchemaConverter::new()
            .with_coerce_types(props.coerce_types())
            .convert(schema)?;
        let options = ArrowWriterOptions::new()
            .with_properties(props)
            .with_skip_arrow_metadata(true)
            .with_parquet_schema(descr);
        // Stages write two schemas; a caller with many keeps only the latest few.
        if kits.len() >= 8 {
            kits.remove(0);
        }
        kits.push((schema.clone(), options.clone()));
        Ok(options)
    })
}

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
    let schema = batch.schema();
    let options = writer_options(&schema).map_err(|e| fail("Parquet", &e))?;
    let mut writer =
        ArrowWriter::try_new_with_options(&mut out, schema, options).map_err(|e| fail("Parquet", &e))?;
    writer.write(batch).map_err(|e| fail("Parquet", &e))?;
    if let Some(last) = completion.history.last_mut() {
        last.end_us = crate::time::now_micros();
    }
    let json = serde_json::to_string(completion).map_err(|e| fail("the completion record", &e))?;
    writer.append_key_value_metadata(KeyValue::new(COMPLETION_KEY.to_string(), json));
    writer.append_key_value_metadata(blank_seal());
    writer.close().map_err(|e| fail("Parquet", &e))?;
    seal(&format!("{stage} child {index}"), &mut out)?;
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

fn blank_seal() -> KeyValue {
    KeyValue::new(
        SEAL_KEY.to_string(),
        String::from_utf8_lossy(SEAL_BLANK).into_owned(),
    )
}

/// Checks the seal and parses the footer of an encoded file (no data pages are
/// decoded). A file whose seal or footer does not check out is half written,
/// truncated, corrupt or not tandem's.
pub fn read_footer(path: &str, bytes: &Bytes) -> Result<Footer> {
    check_seal(path, bytes)?;
    let metadata = crate::guard::guarded(|| ParquetMetaDataReader::new().parse_and_finish(bytes))
        .map_err(|panic| Error::corrupt(path, format!("the Parquet footer decoder failed: {panic}")))?
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

/// Decodes a stage file: checks the seal, the footer, the schema against `schema`,
/// and that the rows reproduce the recorded digest.
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
    let batch = crate::guard::guarded(|| read_rows(path, bytes, metadata, schema))
        .map_err(|panic| Error::corrupt(path, format!("the Parquet decoder failed: {panic}")))??;
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

/// All rows of a file whose footer is parsed, in one batch.
fn read_rows(
    path: &str,
    bytes: Bytes,
    metadata: Arc<ParquetMetaData>,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let rows = usize::try_from(metadata.file_metadata().num_rows())
        .map_err(|_| Error::corrupt(path, "negative row count in the footer"))?
        .max(1);
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
    match batches.len() {
        0 => Ok(RecordBatch::new_empty(schema.clone())),
        1 => Ok(batches.swap_remove(0)),
        _ => arrow_select::concat::concat_batches(schema, &batches).map_err(|e| incomplete(path, e)),
    }
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
        .map(|kv| {
            kv.iter()
                .filter(|k| k.key != COMPLETION_KEY && k.key != SEAL_KEY)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    kv.push(KeyValue::new(COMPLETION_KEY.to_string(), json));
    kv.push(blank_seal());
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
    seal(path, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{process, process_schema, procure, procure_schema};

    fn completion(stage: Stage, digest: Digest) -> Completion {
        Completion {
            run_id: "r".parse().unwrap(),
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
    fn writer_options_write_what_arrow_writer_writes() {
        let (batch, _) = procure(&[1, 2, 3, 40], 42);
        let (processed, _) = process(&batch).unwrap();
        for b in [&batch, &processed, &batch] {
            let mut plain = Vec::new();
            let mut w = ArrowWriter::try_new(&mut plain, b.schema(), Some(PROPS.clone())).unwrap();
            w.write(b).unwrap();
            w.close().unwrap();
            let mut cached = Vec::new();
            let options = writer_options(&b.schema()).unwrap();
            let mut w = ArrowWriter::try_new_with_options(&mut cached, b.schema(), options).unwrap();
            w.write(b).unwrap();
            w.close().unwrap();
            assert_eq!(plain, cached);
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

    fn sample_files() -> Vec<(&'static str, Vec<u8>, SchemaRef)> {
        let ids: Vec<u64> = (1..=40).collect();
        let (b1, d1) = procure(&ids, 42);
        let procured = encode(&b1, &mut completion(Stage::Procure, d1)).unwrap();
        let (b2, d2) = process(&b1).unwrap();
        let mut c2 = completion(Stage::Process, d2);
        let processed = Bytes::from(encode(&b2, &mut c2).unwrap());
        let mut c3 = c2.clone();
        c3.stage = Stage::Egress;
        let footer = read_footer("f", &processed).unwrap();
        let object = restamp("f", &processed, &footer, &c3).unwrap();
        vec![
            ("procure", procured, procure_schema()),
            ("process", processed.to_vec(), process_schema()),
            ("object", object, process_schema()),
        ]
    }

    #[test]
    fn every_flipped_byte_breaks_the_seal() {
        let files = sample_files();
        assert_eq!(files.len(), 3);
        for (name, bytes, schema) in files {
            check_seal("f", &bytes).unwrap();
            assert!(bytes.len() > 500, "{name}: {} bytes", bytes.len());
            for pos in 0..bytes.len() {
                for mask in [0x01u8, 0x80, 0xff] {
                    let mut b = bytes.clone();
                    b[pos] ^= mask;
                    let err = decode("f", Bytes::from(b), &schema).unwrap_err().to_string();
                    assert!(
                        err.contains("checksum mismatch")
                            || err.contains("seal")
                            || err.contains("not a complete Parquet file")
                            || err.contains("does not fit"),
                        "{name}: byte {pos} ^ {mask:#x}: {err}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_decoders_never_panic_even_on_resealed_garbage() {
        // A forged seal lets the corrupt bytes reach the decoders: every flip must
        // still end as a value or an error, never a panic.
        for (name, bytes, schema) in sample_files() {
            let seal_at = seal_position(&bytes).unwrap();
            let (mut flips, mut decoded) = (0, 0);
            for pos in 0..bytes.len() {
                if (seal_at..seal_at + 8).contains(&pos) {
                    continue;
                }
                for mask in [0x01u8, 0x10, 0x80] {
                    let mut b = bytes.clone();
                    b[pos] ^= mask;
                    flips += 1;
                    // A flip in the framing the seal itself needs cannot be resealed.
                    if seal(name, &mut b).is_err() {
                        continue;
                    }
                    decoded += 1;
                    let r = std::panic::catch_unwind(|| {
                        decode("f", Bytes::from(b), &schema).map(|d| d.batch.num_rows())
                    });
                    assert!(r.is_ok(), "{name}: byte {pos} ^ {mask:#x} escaped the guard");
                }
            }
            // The case happened: nearly every flip reached the decoders.
            assert!(
                decoded * 10 >= flips * 9,
                "{name}: only {decoded} of {flips} flips could be resealed"
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

    /// `footer` framed as a Parquet file's end: PAR1, `body`, the footer, its length,
    /// PAR1.
    fn framed(body: &[u8], footer: &[u8]) -> Vec<u8> {
        let mut f = b"PAR1".to_vec();
        f.extend_from_slice(body);
        f.extend_from_slice(footer);
        f.extend_from_slice(&(footer.len() as u32).to_le_bytes());
        f.extend_from_slice(b"PAR1");
        f
    }

    fn seal_error(bytes: &[u8]) -> String {
        check_seal("f", bytes).unwrap_err().to_string()
    }

    #[test]
    fn each_way_a_seal_can_be_wrong_has_its_own_message() {
        // The smallest frame: magic, an empty footer, magic (12 bytes).
        let e = seal_error(&framed(b"", b""));
        assert!(e.contains("no tandem.crc32 seal in the footer"), "{e}");
        // A seal marker in the data, none in the footer.
        let mut body = SEAL_MARKER.to_vec();
        body.extend_from_slice(b"0123abcd");
        let e = seal_error(&framed(&body, b"no seal here"));
        assert!(e.contains("no tandem.crc32 seal in the footer"), "{e}");
        // Two seals.
        let mut two = SEAL_MARKER.to_vec();
        two.extend_from_slice(b"00000000");
        two.extend_from_slice(SEAL_MARKER);
        two.extend_from_slice(b"00000000");
        let e = seal_error(&framed(b"", &two));
        assert!(e.contains("more than one tandem.crc32 seal"), "{e}");
        // A seal whose digits would run into the trailer.
        let mut short = SEAL_MARKER.to_vec();
        short.extend_from_slice(b"0123");
        let e = seal_error(&framed(b"", &short));
        assert!(e.contains("run past the end of the footer"), "{e}");
        // Exactly eight digits at the footer's end are read (and checked).
        let mut exact = SEAL_MARKER.to_vec();
        exact.extend_from_slice(b"00000000");
        let e = seal_error(&framed(b"", &exact));
        assert!(e.contains("checksum mismatch"), "{e}");
        // A footer longer than the file.
        let mut long = framed(b"", b"");
        long[4..8].copy_from_slice(&100u32.to_le_bytes());
        let e = seal_error(&long);
        assert!(e.contains("footer length 100 does not fit"), "{e}");
    }

    #[test]
    fn a_file_without_its_leading_magic_is_not_a_parquet_file() {
        let (b, d) = procure(&[1, 2, 3], 42);
        let mut bytes = encode(&b, &mut completion(Stage::Procure, d)).unwrap();
        bytes[0] = b'Q';
        let e = seal_error(&bytes);
        assert!(e.contains("not a complete Parquet file"), "{e}");
        // Eleven bytes with both magics are too short to be one.
        let e = seal_error(b"PAR1abcPAR1");
        assert!(e.contains("not a complete Parquet file"), "{e}");
    }

    #[test]
    fn a_seal_in_upper_case_hex_is_refused() {
        // Find a file whose seal has a letter, and write its digits in upper case:
        // the same number, not what the writer writes.
        let bytes = (1..100u64)
            .map(|n| {
                let (b, d) = procure(&[n], 42);
                encode(&b, &mut completion(Stage::Procure, d)).unwrap()
            })
            .find(|f| {
                let pos = seal_position(f).unwrap();
                f[pos..pos + 8].iter().any(u8::is_ascii_lowercase)
            })
            .unwrap();
        check_seal("f", &bytes).unwrap();
        let mut upper = bytes.clone();
        let pos = seal_position(&upper).unwrap();
        upper[pos..pos + 8].make_ascii_uppercase();
        let e = seal_error(&upper);
        assert!(e.contains("is not eight hex digits"), "{e}");
    }
}
