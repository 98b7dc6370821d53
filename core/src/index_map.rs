//! Index maps: how a compact rerun array finds the children it stands for.
//!
//! Rerunning 37 failed children of a 10,000-child run on AWS Batch submits an array
//! of 37; child `j` of that array reads entry `j` of the index map written next to the
//! manifest and runs original child `map[j]`. One small file per rerun, written
//! atomically before the jobs are submitted.

use serde::{Deserialize, Serialize};

use crate::layout::RunLayout;
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
    crate::layout::check_run_id(&file)?;
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

/// The original index that array child `array_index` of the rerun stands for. `None`
/// (no `AWS_BATCH_JOB_ARRAY_INDEX`: a plain job) is accepted for a one-entry map only.
pub fn resolve(layout: &RunLayout, file: &str, array_index: Option<u32>, array_size: u32) -> Result<u32> {
    crate::layout::check_run_id(file).map_err(|_| {
        Error::InvalidInput(format!(
            "index map name {file:?} is not a file name in the run directory"
        ))
    })?;
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
    let map: IndexMap = serde_json::from_slice(&bytes)
        .map_err(|e| Error::corrupt(path.display(), format!("not an index map: {e}")))?;
    if map.run_id != layout.run_id() {
        return Err(Error::corrupt(
            path.display(),
            format!("belongs to run {}, not {}", map.run_id, layout.run_id()),
        ));
    }
    let array_index = match array_index {
        Some(j) => j,
        None if map.indices.len() == 1 => 0,
        None => {
            return Err(Error::InvalidInput(format!(
                "no array index, but {} maps {} children: pass --index or set AWS_BATCH_JOB_ARRAY_INDEX",
                path.display(),
                map.indices.len()
            )));
        }
    };
    let original = *map.indices.get(array_index as usize).ok_or_else(|| {
        Error::InvalidInput(format!(
            "array index {array_index} is past the end of {} ({} entries)",
            path.display(),
            map.indices.len()
        ))
    })?;
    if original >= array_size {
        return Err(Error::corrupt(
            path.display(),
            format!("entry {original} is not a child of this run"),
        ));
    }
    Ok(original)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_compact_indices_back_to_the_original_children() {
        let dir = tempfile::tempdir().unwrap();
        let layout = RunLayout::new(dir.path(), "r1").unwrap();
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
        let other = RunLayout::new(dir.path(), "r2").unwrap();
        std::fs::create_dir_all(other.dir()).unwrap();
        std::fs::copy(layout.dir().join(&file), other.dir().join(&file)).unwrap();
        assert!(
            resolve(&other, &file, Some(0), 10_000)
                .unwrap_err()
                .to_string()
                .contains("belongs to run r1")
        );
    }
}
