//! Index maps: how a compact rerun array finds the children it stands for.
//!
//! Rerunning 37 failed children of a 10,000-child run on AWS Batch submits an array
//! of 37; child `j` of that array reads entry `j` of the index map written next to the
//! manifest and runs original child `map[j]`. One small file per rerun, written
//! atomically before the jobs are submitted.

use serde::{Deserialize, Serialize};

use crate::layout::RunLayout;
use crate::names::index_map_key;
use crate::store::ObjectStore;
use crate::{Error, Result};

#[derive(Debug, Serialize, Deserialize)]
struct IndexMap {
    run_id: String,
    indices: Vec<u32>,
}

/// Writes `indices` as `index-map-NAME.json` in the run directory and returns the
/// file name (what `TANDEM_INDEX_MAP` carries).
pub fn write(layout: &RunLayout, name: &str, indices: &[u32]) -> Result<String> {
    let file = format!("index-map-{name}.json");
    check_file_name(&file)?;
    let path = layout.dir().join(&file);
    let tmp = layout.dir().join(format!(".{file}.tmp"));
    let body = serde_json::to_vec(&IndexMap {
        run_id: layout.run_id().to_string(),
        indices: indices.to_vec(),
    })
    .map_err(|e| Error::corrupt(path.display(), e.to_string()))?;
    crate::store::write_file(&tmp, &body)?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &tmp, e))?;
    Ok(file)
}

/// The map `file` of `layout`'s run, from the volume, checked: a file name in the run
/// directory, the run's, and every entry a child of the run (`array_size`).
pub fn load(layout: &RunLayout, file: &str, array_size: u32) -> Result<Vec<u32>> {
    check_file_name(file)?;
    let path = layout.dir().join(file);
    let bytes = std::fs::read(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound {
                what: "index map".into(),
                location: path.display().to_string(),
            }
        } else {
            Error::io("read", &path, e)
        }
    })?;
    parse(&bytes, &path.display().to_string(), layout.run_id(), array_size)
}

/// Publishes a map in the run's bucket, next to its results: watch names the
/// original children of a rerun through it without the volume.
pub fn publish(store: &dyn ObjectStore, run_id: &str, file: &str, indices: &[u32]) -> Result<()> {
    check_file_name(file)?;
    let body = serde_json::to_vec(&IndexMap {
        run_id: run_id.to_string(),
        indices: indices.to_vec(),
    })
    .map_err(|e| Error::corrupt(file, e.to_string()))?;
    store.put(&index_map_key(run_id, file), body.into())
}

/// The map `file` of run `run_id`, from its bucket (see [`load`]).
pub fn fetch(store: &dyn ObjectStore, run_id: &str, file: &str, array_size: u32) -> Result<Vec<u32>> {
    check_file_name(file)?;
    let key = index_map_key(run_id, file);
    let bytes = store.get(&key)?;
    parse(&bytes, &format!("{}/{key}", store.url()), run_id, array_size)
}

fn check_file_name(file: &str) -> Result<()> {
    let ok = file.starts_with("index-map-")
        && file.ends_with(".json")
        && file.len() <= 160
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "index map name {file:?} is not an index map file name (index-map-NAME.json)"
        )))
    }
}

fn parse(bytes: &[u8], location: &str, run_id: &str, array_size: u32) -> Result<Vec<u32>> {
    let map: IndexMap = serde_json::from_slice(bytes)
        .map_err(|e| Error::corrupt(location, format!("not an index map: {e}")))?;
    if map.run_id != run_id {
        return Err(Error::corrupt(
            location,
            format!("belongs to run {}, not {run_id}", map.run_id),
        ));
    }
    if let Some(bad) = map.indices.iter().find(|&&i| i >= array_size) {
        return Err(Error::corrupt(
            location,
            format!("entry {bad} is not a child of this run"),
        ));
    }
    Ok(map.indices)
}

/// The original index that array child `array_index` of the rerun stands for. `None`
/// (no `AWS_BATCH_JOB_ARRAY_INDEX`: a plain job) is accepted for a one-entry map only.
pub fn resolve(layout: &RunLayout, file: &str, array_index: Option<u32>, array_size: u32) -> Result<u32> {
    let indices = load(layout, file, array_size)?;
    let path = layout.dir().join(file);
    let array_index = match array_index {
        Some(j) => j,
        None if indices.len() == 1 => 0,
        None => {
            return Err(Error::InvalidInput(format!(
                "no array index, but {} maps {} children: pass --index or set AWS_BATCH_JOB_ARRAY_INDEX",
                path.display(),
                indices.len()
            )));
        }
    };
    indices.get(array_index as usize).copied().ok_or_else(|| {
        Error::InvalidInput(format!(
            "array index {array_index} is past the end of {} ({} entries)",
            path.display(),
            indices.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_compact_indices_back_to_the_original_children() {
        let dir = tempfile::tempdir().unwrap();
        let layout = RunLayout::new(dir.path(), &"r1".parse().unwrap());
        std::fs::create_dir_all(layout.dir()).unwrap();
        let file = write(&layout, "20261128T000000Z", &[3, 17, 9999]).unwrap();
        assert_eq!(resolve(&layout, &file, Some(1), 10_000).unwrap(), 17);
        assert_eq!(resolve(&layout, &file, Some(2), 10_000).unwrap(), 9999);
        assert!(
            resolve(&layout, &file, Some(3), 10_000)
                .unwrap_err()
                .to_string()
                .contains("past the end")
        );
        assert!(resolve(&layout, &file, Some(2), 100).is_err());
        assert!(
            resolve(&layout, &file, None, 10_000)
                .unwrap_err()
                .to_string()
                .contains("3 children")
        );
        let one = write(&layout, "one", &[42]).unwrap();
        assert_eq!(resolve(&layout, &one, None, 10_000).unwrap(), 42);
        assert!(resolve(&layout, "../x", Some(0), 10).is_err());
        let other = RunLayout::new(dir.path(), &"r2".parse().unwrap());
        std::fs::create_dir_all(other.dir()).unwrap();
        std::fs::copy(layout.dir().join(&file), other.dir().join(&file)).unwrap();
        assert!(
            resolve(&other, &file, Some(0), 10_000)
                .unwrap_err()
                .to_string()
                .contains("belongs to run r1")
        );
    }

    #[test]
    fn a_published_map_reads_back_from_the_bucket_as_from_the_volume() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::LocalStore::new(&dir.path().join("bucket")).unwrap();
        publish(&store, "r1", "index-map-x.json", &[4, 8]).unwrap();
        assert_eq!(fetch(&store, "r1", "index-map-x.json", 10).unwrap(), vec![4, 8]);
        assert!(
            fetch(&store, "r2", "index-map-x.json", 10)
                .unwrap_err()
                .is_not_found()
        );
        let err = fetch(&store, "r1", "index-map-x.json", 5)
            .unwrap_err()
            .to_string();
        assert!(err.contains("entry 8 is not a child"), "{err}");
        assert!(publish(&store, "r1", "../x", &[1]).is_err());
    }
}
