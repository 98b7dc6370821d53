//! Object stores: where egress puts each child's result.
//!
//! A small trait in the spirit of the `object_store` crate (few required methods,
//! synchronous because tandem-core has no async runtime). `file://DIR` is
//! [`LocalStore`], a real object store on a directory: a put is atomic (the object
//! appears whole or not at all) and an overwrite replaces the object in one step.

use std::ffi::CString;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;

use crate::{Error, Result};

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A flat key space of immutable-once-written objects.
pub trait ObjectStore: Send + Sync + Debug {
    /// Stores `data` under `key`, replacing any object there, atomically.
    fn put(&self, key: &str, data: Bytes) -> Result<()>;
    /// The object under `key`; [`Error::NotFound`] when there is none.
    fn get(&self, key: &str) -> Result<Bytes>;
    /// Every object whose key starts with `prefix`, sorted by key.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;
    /// Removes the object under `key`; removing a missing object is not an error.
    fn delete(&self, key: &str) -> Result<()>;
    /// The store's URL (`file:///abs/dir`, `s3://bucket/prefix`).
    fn url(&self) -> String;
}

/// Conveniences over any [`ObjectStore`].
pub trait ObjectStoreExt: ObjectStore {
    /// Removes every object under `prefix`; returns how many were removed.
    fn delete_prefix(&self, prefix: &str) -> Result<usize> {
        let objects = self.list(prefix)?;
        for o in &objects {
            self.delete(&o.key)?;
        }
        Ok(objects.len())
    }
}

impl<T: ObjectStore + ?Sized> ObjectStoreExt for T {}

/// Opens the store a bucket URL names: `file://DIR` (or a plain directory path).
pub fn open(url: &str) -> Result<Arc<dyn ObjectStore>> {
    if let Some(path) = url.strip_prefix("file://") {
        if path.is_empty() {
            return Err(Error::InvalidInput(format!(
                "bucket URL {url:?} names no directory: use file:///abs/dir or file://relative/dir"
            )));
        }
        return Ok(Arc::new(LocalStore::new(Path::new(path))?));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Err(Error::InvalidInput(format!(
            "bucket URL {url:?} has scheme {scheme}://, which this build cannot write to; \
             expected file://DIR"
        )));
    }
    if let Some(scheme) = scheme_like(url) {
        return Err(Error::InvalidInput(format!(
            "bucket {url:?} starts like a URL ({scheme}:) but is not one: use file://DIR, \
             s3://BUCKET[/PREFIX], or a plain directory path"
        )));
    }
    if url.is_empty() {
        return Err(Error::InvalidInput(
            "bucket is empty: use file://DIR, s3://BUCKET[/PREFIX], or a directory path".into(),
        ));
    }
    Ok(Arc::new(LocalStore::new(Path::new(url))?))
}

/// `file` for `file:relative`: a scheme (RFC 3986 letters, digits, `+ - .`) and a
/// colon at the start. A plain path such as `data/bucket` has none.
fn scheme_like(s: &str) -> Option<&str> {
    let (scheme, _) = s.split_once(':')?;
    let mut b = scheme.bytes();
    let ok = b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
    ok.then_some(scheme)
}

/// Checks an object key: non-empty `/`-separated segments, none empty, `.` or `..`,
/// none starting with `.` (those names are the store's temporary files).
/// Closes `file`, returning the error the close reports. On NFS (EFS) a write can
/// fail only when the file is closed, where the client sends what it buffered; `File`'s
/// drop ignores that error, and the next stage would then be blamed for a file this
/// one never finished writing.
pub fn close_file(file: File, path: &Path) -> Result<()> {
    use std::os::fd::IntoRawFd;
    let fd = file.into_raw_fd();
    // SAFETY: `fd` was just taken from the `File`, which no longer owns it; it is
    // closed exactly once, here.
    let rc = unsafe { libc::close(fd) };
    #[cfg(test)]
    if let Some(errno) = FAIL_NEXT_CLOSE.with(|f| f.take()) {
        return Err(Error::io("close", path, std::io::Error::from_raw_os_error(errno)));
    }
    if rc != 0 {
        return Err(Error::io("close", path, std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
thread_local! {
    /// Makes this thread's next [`close_file`] fail with this errno (tests: the error
    /// NFS reports at close cannot be had on a local file system).
    pub(crate) static FAIL_NEXT_CLOSE: std::cell::Cell<Option<i32>> = const { std::cell::Cell::new(None) };
}

/// Writes `bytes` to `path` (created or truncated) and closes it, with the errors of
/// the write and of the close.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| Error::io("create", path, e))?;
    f.write_all(bytes).map_err(|e| Error::io("write", path, e))?;
    close_file(f, path)
}

/// Reads a whole file without asking its size first (`std::fs::read` does): into a
/// buffer larger than a child's file, until end of file: two reads and no `statx`.
/// Larger files grow the buffer as they are read.
pub(crate) fn read_whole(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    const FIRST_READ: usize = 64 * 1024;
    let mut buf = Vec::with_capacity(FIRST_READ);
    File::open(path)?.take(u64::MAX).read_to_end(&mut buf)?;
    Ok(buf)
}

pub fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 1024
        && key
            .split('/')
            .all(|s| !s.is_empty() && !s.starts_with('.') && !s.contains('\0'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "object key {key:?} is not valid: use /-separated names, none empty or starting with '.'"
        )))
    }
}

/// An object store on a local directory (`file://DIR`).
///
/// A key maps to the path `DIR/KEY`. A put writes an unnamed file (`O_TMPFILE`) and
/// links it into place, so readers never see a partial object and a put costs one
/// directory entry; where the file system cannot do that (NFS/EFS) or an object is
/// being replaced, it writes a hidden temporary file and renames it over the key.
#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
    tmpfile: AtomicBool,
    counter: AtomicU64,
}

impl LocalStore {
    /// A store rooted at `dir` (created if missing).
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create bucket directory", dir, e))?;
        let root = dir
            .canonicalize()
            .map_err(|e| Error::io("resolve bucket directory", dir, e))?;
        Ok(Self {
            root,
            tmpfile: AtomicBool::new(true),
            counter: AtomicU64::new(0),
        })
    }

    /// The directory behind the store.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    /// Writes through an unnamed file linked into place. `Ok(false)` means "use the
    /// rename path instead" (unsupported here, or the key already exists).
    fn put_linked(&self, dir: &Path, path: &Path, data: &[u8]) -> Result<bool> {
        let mut file = match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .mode(0o644)
            .open(dir)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::io("open", dir, e));
            }
            Err(_) => {
                self.tmpfile.store(false, Ordering::Relaxed);
                return Ok(false);
            }
        };
        file.write_all(data).map_err(|e| Error::io("write", path, e))?;
        let proc_path = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())).unwrap_or_default();
        let target = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| Error::InvalidInput(format!("path {} contains a NUL byte", path.display())))?;
        // SAFETY: both pointers are valid NUL-terminated strings for the call's duration.
        let rc = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                proc_path.as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if rc == 0 {
            // Published; a write the file system reports only at close still fails
            // the put (a retry replaces the object).
            close_file(file, path)?;
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EEXIST) {
            // No /proc, or a file system that cannot link an unnamed file.
            self.tmpfile.store(false, Ordering::Relaxed);
        }
        Ok(false)
    }

    fn put_renamed(&self, dir: &Path, path: &Path, data: &[u8]) -> Result<()> {
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let tmp = dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            self.counter.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            write_file(&tmp, data)?;
            std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", &tmp, e))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn put_once(&self, dir: &Path, path: &Path, data: &[u8]) -> Result<()> {
        if self.tmpfile.load(Ordering::Relaxed) && self.put_linked(dir, path, data)? {
            return Ok(());
        }
        self.put_renamed(dir, path, data)
    }
}

impl ObjectStore for LocalStore {
    fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let path = self.path_of(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        match self.put_once(&dir, &path, &data) {
            Err(e) if e.is_not_found() => {
                std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
                self.put_once(&dir, &path, &data)
            }
            other => other,
        }
    }

    fn get(&self, key: &str) -> Result<Bytes> {
        let path = self.path_of(key)?;
        match read_whole(&path) {
            Ok(b) => Ok(Bytes::from(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NotFound {
                what: "object".into(),
                location: format!("{}/{key}", self.url()),
            }),
            Err(e) => Err(Error::io("read", &path, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        // Walk only the directory the prefix is in, then filter by the full prefix.
        let dir_part = prefix.rfind('/').map(|i| &prefix[..i]).unwrap_or("");
        let start = if dir_part.is_empty() {
            self.root.clone()
        } else {
            self.root.join(dir_part)
        };
        let mut out = Vec::new();
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("list", &dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
                let name = entry.file_name();
                if name.as_bytes().first() == Some(&b'.') {
                    continue;
                }
                let ft = entry
                    .file_type()
                    .map_err(|e| Error::io("stat", entry.path(), e))?;
                let path = entry.path();
                if ft.is_dir() {
                    stack.push(path);
                } else if ft.is_file() {
                    let Ok(rel) = path.strip_prefix(&self.root) else {
                        continue;
                    };
                    let key = rel.to_string_lossy().into_owned();
                    if key.starts_with(prefix) {
                        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                        out.push(ObjectMeta { key, size });
                    }
                }
            }
        }
        out.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("delete", &path, e)),
        }
    }

    fn url(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

/// The behaviour every [`ObjectStore`] must show, as functions that panic on a
/// violation: run against each backend (the local directory here, S3 on the
/// emulator in tandem-aws). Compiled with the `test-suite` feature.
#[cfg(any(test, feature = "test-suite"))]
pub mod suite {
    use super::*;

    /// Put, get, list, overwrite, missing key and delete, under `run/` and `other/`.
    pub fn put_get_list_overwrite_delete(store: &dyn ObjectStore) {
        let err = store.get("run/results/00001.parquet").unwrap_err();
        assert!(err.is_not_found(), "{err}");
        store
            .put("run/results/00001.parquet", Bytes::from_static(b"one"))
            .unwrap();
        store
            .put("run/results/00000.parquet", Bytes::from_static(b"zero"))
            .unwrap();
        store.put("other/x", Bytes::from_static(b"x")).unwrap();
        assert_eq!(&store.get("run/results/00001.parquet").unwrap()[..], b"one");
        // Overwrite replaces the object.
        store
            .put("run/results/00001.parquet", Bytes::from_static(b"uno!"))
            .unwrap();
        assert_eq!(&store.get("run/results/00001.parquet").unwrap()[..], b"uno!");
        let keys: Vec<(String, u64)> = store
            .list("run/")
            .unwrap()
            .into_iter()
            .map(|o| (o.key, o.size))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("run/results/00000.parquet".into(), 4),
                ("run/results/00001.parquet".into(), 4)
            ]
        );
        assert!(store.list("nothing/").unwrap().is_empty());
        store.delete("run/results/00000.parquet").unwrap();
        store.delete("run/results/00000.parquet").unwrap();
        assert_eq!(store.list("run/").unwrap().len(), 1);
        assert_eq!(store.delete_prefix("run/").unwrap(), 1);
        assert!(store.list("run/").unwrap().is_empty());
        assert!(store.put("../escape", Bytes::new()).is_err());
        assert!(store.put("/abs", Bytes::new()).is_err());
    }

    /// More objects than one listing page holds (S3 pages at 1,000), and a large object.
    pub fn many_and_large_objects(store: &dyn ObjectStore, many: usize, large: usize) {
        for i in 0..many {
            store
                .put(&format!("many/{i:05}"), Bytes::from(i.to_string()))
                .unwrap();
        }
        let listed = store.list("many/").unwrap();
        assert_eq!(listed.len(), many);
        assert!(
            listed.windows(2).all(|w| w[0].key < w[1].key),
            "listing is not sorted"
        );
        let body: Vec<u8> = (0..large).map(|i| (i % 251) as u8).collect();
        store.put("large/object", Bytes::from(body.clone())).unwrap();
        assert_eq!(&store.get("large/object").unwrap()[..], &body[..]);
        assert_eq!(store.list("large/").unwrap()[0].size, large as u64);
        assert_eq!(store.delete_prefix("many/").unwrap(), many);
        store.delete("large/object").unwrap();
    }

    /// Four threads writing the same 50 keys: every object ends up whole, from one writer.
    pub fn concurrent_writers_each_land_whole(store: &dyn ObjectStore) {
        std::thread::scope(|s| {
            for t in 0..4u8 {
                s.spawn(move || {
                    for i in 0..50u32 {
                        let body = vec![t; 1000 + i as usize];
                        store.put(&format!("c/{i:03}"), Bytes::from(body)).unwrap();
                    }
                });
            }
        });
        for i in 0..50u32 {
            let b = store.get(&format!("c/{i:03}")).unwrap();
            assert_eq!(b.len(), 1000 + i as usize);
            assert!(b.iter().all(|x| *x == b[0]), "object c/{i:03} mixes writers");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_store_behaves_like_an_object_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        suite::put_get_list_overwrite_delete(&store);
        suite::concurrent_writers_each_land_whole(&store);
        suite::many_and_large_objects(&store, 1100, 20 << 20);
    }

    #[test]
    fn local_store_without_tmpfile_still_behaves() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        store.tmpfile.store(false, Ordering::Relaxed);
        suite::put_get_list_overwrite_delete(&store);
        // No temporary files are left behind.
        let left: Vec<_> = walk(dir.path());
        assert!(left.iter().all(|p| !p.ends_with(".tmp")), "{left:?}");
    }

    fn walk(p: &Path) -> Vec<String> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(p).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                v.extend(walk(&e.path()));
            } else {
                v.push(e.path().display().to_string());
            }
        }
        v
    }

    #[test]
    fn unknown_schemes_are_refused_by_name() {
        let err = open("gs://b/p").unwrap_err().to_string();
        assert!(err.contains("gs://"), "{err}");
        assert!(open("file://").is_err());
        let err = open("file:relative").unwrap_err().to_string();
        assert!(
            err.contains("file://DIR") && err.contains("\"file:relative\""),
            "{err}"
        );
        assert!(open("s3:bucket").is_err());
        assert!(open("").is_err());
    }
}
