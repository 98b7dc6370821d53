//! The run's ID file: every ID of the run, once, as an Arrow IPC file with one
//! non-null `UInt64` column named `id`.
//!
//! Prepare writes it once (to a temporary name, then renamed, so a mapped file is
//! never modified); each child maps it and takes its slice without copying or
//! parsing the rest. On EFS this replaces 10,000 per-child prep files, and their
//! 10,000 metadata round trips, with one shared read-only file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, UInt64Array};
use arrow_buffer::Buffer;
use arrow_ipc::reader::{FileDecoder, read_footer_length};
use arrow_ipc::writer::FileWriter;
use arrow_schema::{DataType, Field, Schema};

use crate::{Error, Result};

/// How many IDs are written per record batch: bounds prepare's memory for large
/// runs while keeping the batch count (and the footer) small.
const IDS_PER_BATCH: u64 = 1 << 20;

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![Field::new("id", DataType::UInt64, false)]))
}

/// Writes the IDs `first_id .. first_id + records` to `path` atomically (a temporary
/// file in the same directory, renamed into place).
pub fn write_range(path: &Path, first_id: u64, records: u64) -> Result<()> {
    if first_id.checked_add(records - records.min(1)).is_none() {
        return Err(Error::InvalidInput(format!(
            "--first-id {first_id} with --records {records} runs past the largest u64 ID"
        )));
    }
    let tmp = path.with_extension("arrow.tmp");
    let file = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
    let ipc =
        |e: arrow_schema::ArrowError| Error::corrupt(tmp.display(), format!("writing the ID file: {e}"));
    let mut writer = FileWriter::try_new(BufWriter::with_capacity(1 << 20, file), &schema()).map_err(ipc)?;
    let mut done = 0u64;
    while done < records {
        let n = (records - done).min(IDS_PER_BATCH);
        let start = first_id + done;
        // Inclusive: the last ID of a run may be u64::MAX.
        let ids = UInt64Array::from_iter_values(start..=start + (n - 1));
        let batch = RecordBatch::try_new(schema(), vec![Arc::new(ids)]).map_err(ipc)?;
        writer.write(&batch).map_err(ipc)?;
        done += n;
    }
    writer.finish().map_err(ipc)?;
    let mut buf = writer.into_inner().map_err(ipc)?;
    buf.flush().map_err(|e| Error::io("write", &tmp, e))?;
    let file = buf
        .into_inner()
        .map_err(|e| Error::io("write", &tmp, e.into_error()))?;
    crate::store::close_file(file, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", &tmp, e))?;
    Ok(())
}

/// A mapped ID file, ready to hand out children's slices.
///
/// Cheap to share between threads (`Arc` inside); slices borrow the mapping.
#[derive(Debug, Clone)]
pub struct IdFile {
    path: PathBuf,
    /// The decoded record batches, in order, with the position of their first ID.
    batches: Arc<Vec<(u64, UInt64Array)>>,
    len: u64,
}

impl IdFile {
    /// Maps `path` and decodes its footer and batch headers (not the IDs).
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = map_or_read(path)?;
        Self::from_buffer(path, Buffer::from(bytes))
    }

    fn from_buffer(path: &Path, buffer: Buffer) -> Result<Self> {
        let bad = |reason: String| Error::corrupt(path.display(), reason);
        let len = buffer.len();
        if len < 10 + 8 {
            return Err(bad(format!(
                "not an Arrow IPC ID file: {len} bytes is too short (truncated?)"
            )));
        }
        if &buffer[..6] != b"ARROW1" {
            return Err(bad("not an Arrow IPC file (no ARROW1 magic at the start)".into()));
        }
        let trailer: [u8; 10] = buffer[len - 10..]
            .try_into()
            .map_err(|_| bad("unreadable trailer".into()))?;
        let footer_len = read_footer_length(trailer)
            .map_err(|e| bad(format!("truncated or not an Arrow IPC file: {e}")))?;
        if footer_len > len - 10 - 8 {
            return Err(bad(format!(
                "footer length {footer_len} is larger than the file ({len} bytes): truncated"
            )));
        }
        let footer_bytes = &buffer[len - 10 - footer_len..len - 10];
        let footer = arrow_ipc::root_as_footer(footer_bytes)
            .map_err(|e| bad(format!("unreadable Arrow IPC footer: {e}")))?;
        let file_schema = footer
            .schema()
            .ok_or_else(|| bad("Arrow IPC footer has no schema".into()))
            .and_then(|s| {
                arrow_ipc::convert::try_fb_to_schema(s).map_err(|e| bad(format!("unreadable schema: {e}")))
            })?;
        let expected = schema();
        if file_schema.fields().len() != 1
            || file_schema.field(0).name() != "id"
            || file_schema.field(0).data_type() != &DataType::UInt64
        {
            return Err(bad(format!(
                "foreign ID file: schema is {file_schema}, expected one UInt64 column \"id\""
            )));
        }
        let decoder = FileDecoder::new(expected, footer.version());
        let mut batches = Vec::new();
        let mut pos = 0u64;
        for block in footer.recordBatches().iter().flatten() {
            let start = usize::try_from(block.offset()).ok();
            let blen = usize::try_from(block.bodyLength())
                .ok()
                .zip(usize::try_from(block.metaDataLength()).ok())
                .and_then(|(b, m)| b.checked_add(m));
            let (start, blen) = match (start, blen) {
                (Some(s), Some(b)) if s.checked_add(b).is_some_and(|end| end <= len) => (s, b),
                _ => {
                    return Err(bad(format!(
                        "record batch at offset {} runs past the end of the file ({len} bytes): truncated",
                        block.offset()
                    )));
                }
            };
            let data = buffer.slice_with_length(start, blen);
            let batch = decoder
                .read_record_batch(block, &data)
                .map_err(|e| bad(format!("undecodable record batch at offset {start}: {e}")))?
                .ok_or_else(|| bad(format!("empty message at offset {start}")))?;
            let ids = batch
                .column(0)
                .as_any()
                .downcast_ref::<UInt64Array>()
                .ok_or_else(|| bad("id column is not UInt64".into()))?
                .clone();
            // No nulls: the decoder reads against the non-nullable schema and
            // refuses a batch that has any (tested).
            let n = ids.len() as u64;
            batches.push((pos, ids));
            pos += n;
        }
        Ok(Self {
            path: path.to_path_buf(),
            batches: Arc::new(batches),
            len: pos,
        })
    }

    /// Number of IDs in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the file holds no IDs.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The IDs at positions `range`, borrowed from the mapping when the range lies in
    /// one batch (always, for a child's slice: batches are 2^20 IDs and children
    /// are aligned to the plan, so a copy happens only for a slice that straddles
    /// two batches).
    pub fn ids(&self, range: std::ops::Range<usize>) -> Result<std::borrow::Cow<'_, [u64]>> {
        let (start, end) = (range.start as u64, range.end as u64);
        if start > end || end > self.len {
            return Err(Error::corrupt(
                self.path.display(),
                format!(
                    "the ID file holds {} IDs, positions {start}..{end} were asked for (truncated or from another run?)",
                    self.len
                ),
            ));
        }
        // Find the batch holding `start` (batches are sorted by position).
        let first = self.batches.partition_point(|(p, a)| p + a.len() as u64 <= start);
        let (pos, arr) = &self.batches[first.min(self.batches.len().saturating_sub(1))];
        if start >= *pos && end <= pos + arr.len() as u64 {
            let vals = arr.values();
            return Ok(std::borrow::Cow::Borrowed(
                &vals[(start - pos) as usize..(end - pos) as usize],
            ));
        }
        let mut out = Vec::with_capacity((end - start) as usize);
        for (p, a) in self.batches[first..].iter() {
            if *p >= end {
                break;
            }
            let lo = start.max(*p) - p;
            let hi = end.min(p + a.len() as u64) - p;
            out.extend_from_slice(&a.values()[lo as usize..hi as usize]);
        }
        Ok(std::borrow::Cow::Owned(out))
    }
}

impl IdFile {
    /// Checks that positions `range` hold the run's IDs, `first_id + position`: the
    /// manifest's range is what the file must hold. A file of another run (another
    /// first ID, or the same count of other IDs) or an altered ID is refused here,
    /// naming the first position that differs.
    pub fn check_range(&self, first_id: u64, range: std::ops::Range<usize>) -> Result<()> {
        let start = range.start;
        let ids = self.ids(range)?;
        let bad = ids
            .iter()
            .enumerate()
            .find(|(j, id)| **id != first_id.wrapping_add((start + j) as u64));
        match bad {
            None => Ok(()),
            Some((j, id)) => {
                let pos = start + j;
                Err(Error::corrupt(
                    self.path.display(),
                    format!(
                        "does not hold this run's IDs: position {pos} holds {id}, the manifest's range \
                         (first ID {first_id}) puts {} there; the file belongs to another run or was altered",
                        first_id.wrapping_add(pos as u64)
                    ),
                ))
            }
        }
    }

    /// [`IdFile::check_range`] over the whole file.
    pub fn check_all(&self, first_id: u64) -> Result<()> {
        for (pos, arr) in self.batches.iter() {
            self.check_range(first_id, *pos as usize..(*pos as usize + arr.len()))?;
        }
        Ok(())
    }
}

/// Maps `path` read-only, or reads it when mapping is not possible.
fn map_or_read(path: &Path) -> Result<bytes::Bytes> {
    let file = File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound {
                what: "ID file".into(),
                location: path.display().to_string(),
            }
        } else {
            Error::io("open", path, e)
        }
    })?;
    // SAFETY: the ID file is written once to a temporary name and renamed into
    // place; nothing writes to it afterwards, so the mapping cannot change under us.
    // A file truncated by hand while mapped would fault (SIGBUS), which is the
    // documented contract: do not edit a run's ID file while children run.
    match unsafe { memmap2::Mmap::map(&file) } {
        Ok(map) => Ok(bytes::Bytes::from_owner(map)),
        Err(_) => std::fs::read(path)
            .map(bytes::Bytes::from)
            .map_err(|e| Error::io("read", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_maps_and_slices_without_copying() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.arrow");
        write_range(&path, 1, 1000).unwrap();
        let f = IdFile::open(&path).unwrap();
        assert_eq!(f.len(), 1000);
        let s = f.ids(40..80).unwrap();
        assert!(matches!(s, std::borrow::Cow::Borrowed(_)));
        assert_eq!(&*s, &(41..=80).collect::<Vec<u64>>()[..]);
        assert_eq!(
            &*f.ids(990..1000).unwrap(),
            &(991..=1000).collect::<Vec<u64>>()[..]
        );
    }

    #[test]
    fn slices_across_batches_are_correct() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.arrow");
        let n = IDS_PER_BATCH + 10;
        write_range(&path, 5, n).unwrap();
        let f = IdFile::open(&path).unwrap();
        assert_eq!(f.len(), n);
        let lo = IDS_PER_BATCH as usize - 3;
        let s = f.ids(lo..lo + 6).unwrap();
        assert_eq!(&*s, &(5 + lo as u64..5 + lo as u64 + 6).collect::<Vec<u64>>()[..]);
    }

    #[test]
    fn truncated_file_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.arrow");
        write_range(&path, 1, 1000).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 5, 100, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let err = IdFile::open(&path).unwrap_err().to_string();
            assert!(err.contains("ids.arrow"), "cut {cut}: {err}");
        }
    }

    #[test]
    fn foreign_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.arrow");
        std::fs::write(&path, b"PAR1 this is not an arrow file at all PAR1").unwrap();
        let err = IdFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("not an Arrow IPC file"), "{err}");

        // A valid IPC file with the wrong schema.
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
        let mut w = FileWriter::try_new(File::create(&path).unwrap(), &schema).unwrap();
        let b = RecordBatch::try_new(schema, vec![Arc::new(arrow_array::Int32Array::from(vec![1]))]).unwrap();
        w.write(&b).unwrap();
        w.finish().unwrap();
        let err = IdFile::open(&path).unwrap_err().to_string();
        assert!(err.contains("foreign ID file"), "{err}");
    }

    #[test]
    fn ids_may_end_at_the_largest_u64() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.arrow");
        write_range(&path, u64::MAX - 2, 3).unwrap();
        let f = IdFile::open(&path).unwrap();
        assert_eq!(&*f.ids(0..3).unwrap(), &[u64::MAX - 2, u64::MAX - 1, u64::MAX]);
    }

    #[test]
    fn ids_of_another_range_or_one_altered_id_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.arrow");
        write_range(&path, 1, 1000).unwrap();
        let f = IdFile::open(&path).unwrap();
        f.check_all(1).unwrap();
        f.check_range(1, 40..80).unwrap();
        // Another run's file with the same count.
        let err = f.check_all(101).unwrap_err().to_string();
        assert!(
            err.contains("position 0 holds 1") && err.contains("another run"),
            "{err}"
        );
        // One ID changed in place (its bytes found and rewritten).
        let mut bytes = std::fs::read(&path).unwrap();
        let needle = 500u64.to_le_bytes();
        let at = bytes.windows(8).position(|w| w == needle).unwrap();
        bytes[at..at + 8].copy_from_slice(&7777u64.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let f = IdFile::open(&path).unwrap();
        let err = f.check_all(1).unwrap_err().to_string();
        assert!(err.contains("position 499 holds 7777"), "{err}");
        f.check_range(1, 0..400).unwrap();
        assert!(f.check_range(1, 480..520).is_err());
    }

    #[test]
    fn missing_file_is_not_found() {
        let err = IdFile::open(Path::new("/nonexistent/ids.arrow")).unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    #[test]
    fn slice_past_the_end_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.arrow");
        write_range(&path, 1, 10).unwrap();
        let f = IdFile::open(&path).unwrap();
        assert!(f.ids(5..11).is_err());
    }

    fn refused(bytes: &[u8]) -> String {
        IdFile::from_buffer(Path::new("ids.arrow"), Buffer::from(bytes.to_vec()))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    }

    /// An IPC file of `batch`.
    fn ipc(batch: &RecordBatch) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = FileWriter::try_new(&mut out, &batch.schema()).unwrap();
        w.write(batch).unwrap();
        w.finish().unwrap();
        drop(w);
        out
    }

    /// ARROW1, padding, a footer length, ARROW1: `len` bytes.
    fn frame(len: usize, footer_len: u32) -> Vec<u8> {
        let mut f = b"ARROW1".to_vec();
        f.resize(len - 10, 0);
        f.extend_from_slice(&footer_len.to_le_bytes());
        f.extend_from_slice(b"ARROW1");
        f
    }

    #[test]
    fn the_smallest_frame_and_the_largest_footer_are_judged_at_their_bounds() {
        // Past the frame checks, the footer itself is read (and is not one here).
        let read_the_footer =
            |e: &str| e.contains("footer") && !e.contains("too short") && !e.contains("larger");
        // 17 bytes cannot hold both magics and a length; 18 can.
        assert!(refused(&frame(18, 0)[1..]).contains("is too short"));
        let e = refused(&frame(18, 0));
        assert!(read_the_footer(&e), "{e}");
        // A footer may fill everything between the leading magic and padding (8
        // bytes) and the trailer (10); one byte more does not fit.
        let e = refused(&frame(100, 82));
        assert!(read_the_footer(&e), "{e}");
        let e = refused(&frame(100, 83));
        assert!(
            e.contains("footer length 83 is larger than the file (100 bytes)"),
            "{e}"
        );
    }

    #[test]
    fn an_id_file_of_another_schema_is_foreign() {
        let ids = || Arc::new(UInt64Array::from(vec![1u64, 2])) as arrow_array::ArrayRef;
        let one = |name: &str, t: DataType, col: arrow_array::ArrayRef| {
            RecordBatch::try_new(Arc::new(Schema::new(vec![Field::new(name, t, false)])), vec![col]).unwrap()
        };
        let two = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::UInt64, false),
                Field::new("x", DataType::UInt64, false),
            ])),
            vec![ids(), ids()],
        )
        .unwrap();
        for (what, batch) in [
            ("a second column", two),
            ("another name", one("ids", DataType::UInt64, ids())),
            (
                "another type",
                one(
                    "id",
                    DataType::Int64,
                    Arc::new(arrow_array::Int64Array::from(vec![1i64, 2])),
                ),
            ),
        ] {
            let e = refused(&ipc(&batch));
            assert!(e.contains("foreign ID file"), "{what}: {e}");
        }
        // The right schema is read.
        IdFile::from_buffer(
            Path::new("ids.arrow"),
            Buffer::from(ipc(&one("id", DataType::UInt64, ids()))),
        )
        .unwrap();
    }

    #[test]
    fn a_batch_that_runs_past_the_end_is_refused_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ids.arrow");
        write_range(&path, 1, 1000).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // Take 2,000 bytes out of the batch's body: the footer still parses and
        // names a batch that ends past the shortened file.
        let mut cut = bytes[..1000].to_vec();
        cut.extend_from_slice(&bytes[3000..]);
        let e = refused(&cut);
        assert!(e.contains("runs past the end of the file"), "{e}");
    }

    #[test]
    fn ids_with_nulls_are_refused() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::UInt64, true)])),
            vec![Arc::new(UInt64Array::from(vec![Some(1u64), None, Some(3)]))],
        )
        .unwrap();
        let e = refused(&ipc(&batch));
        assert!(e.contains("contains null values"), "{e}");
    }
}
