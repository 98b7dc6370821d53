//! The embedded backend: one redb database file per table, tables grouped in a
//! "region" directory.
//!
//! Why redb: pure Rust (no C toolchain), ACID and crash-safe, and its MVCC read
//! transactions give a consistent snapshot while writers go on, which is exactly what
//! an online backup and a replicator need.
//!
//! Each table file holds the items and a change log: every write appends
//! `(sequence, timestamp, item after the write)` in the same transaction as the item
//! itself, so the log is never behind the table. Point-in-time restore replays the log
//! up to the requested instant into a new table; the replicator ships the log to the
//! other region.
//!
//! Writes through the [`ProductStore`] API are group-committed: a committer thread per
//! table takes every write waiting, applies them in order in one transaction, makes
//! it durable with one fsync, and only then acknowledges each. Under load that turns
//! one fsync per write into one per batch; alone, a write waits for nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::product::Product;
use crate::store::{Error, Page, ProductStore, Result};

const ITEMS: TableDefinition<&str, &[u8]> = TableDefinition::new("items");
const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");

/// One entry of a table's change log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// When the write committed, µs since the Unix epoch (strictly increasing per table).
    pub ts_us: u64,
    /// The item's id.
    pub product_id: String,
    /// The item after the write; `None` for a delete.
    pub item: Option<Product>,
}

/// A number unique in this process (time-based, strictly increasing), for ids.
pub fn unique() -> u64 {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = now_us();
    let mut prev = LAST.load(std::sync::atomic::Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange(
            prev,
            next,
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        ) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A table in an embedded region.
#[derive(Debug)]
pub struct EmbeddedTable {
    inner: Arc<TableFile>,
    /// Started on the first write through the API.
    committer: OnceLock<Committer>,
}

/// The database file of a table, shared with its committer thread.
#[derive(Debug)]
pub struct TableFile {
    name: String,
    path: PathBuf,
    db: Database,
    /// Last change timestamp handed out (keeps the log strictly increasing).
    last_ts: Mutex<u64>,
    /// Tests hold a group here, applied but not yet committed.
    #[cfg(test)]
    commit_gate: Mutex<Option<tests::CommitGate>>,
}

impl TableFile {
    fn db_err(&self, what: &str, e: impl Into<redb::Error>) -> Error {
        db_err(&self.path, what, e)
    }

    /// The file behind the table.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn next_ts(&self, wanted: u64) -> u64 {
        let mut last = self.last_ts.lock().unwrap_or_else(|p| p.into_inner());
        *last = wanted.max(*last + 1);
        *last
    }

    /// Applies `ops` in order in one transaction and commits it durably. Each write
    /// gets its own answer (a refused create is that write's error only); when the
    /// transaction cannot commit, every write of the group gets the failure.
    fn commit_group(&self, ops: &[Op]) -> Vec<Result<Applied>> {
        // Every write of the group gets the one failure (shared, source kept).
        fn failed<E: std::error::Error + Send + Sync + 'static>(
            file: &TableFile,
            ops: &[Op],
            what: &str,
            e: E,
        ) -> Vec<Result<Applied>> {
            let e = Arc::new(e);
            ops.iter()
                .map(|_| {
                    Err(Error::storage(
                        format!("{what} {}", file.path.display()),
                        e.clone(),
                    ))
                })
                .collect()
        }
        let failed = |what: &str, e| failed::<redb::Error>(self, ops, what, e);
        let mut txn = match self.db.begin_write() {
            Ok(t) => t,
            Err(e) => return failed("write", e.into()),
        };
        // redb's default, stated: the answers below promise the group is on disk.
        if let Err(e) = txn.set_durability(redb::Durability::Immediate) {
            return failed("write", e.into());
        }
        let results = match self.apply_all(&txn, ops) {
            Ok(r) => r,
            // The store failed mid-transaction: nothing of the group commits.
            Err(e) => {
                let e = Arc::new(e);
                return ops
                    .iter()
                    .map(|_| Err(Error::storage("write", e.clone())))
                    .collect();
            }
        };
        #[cfg(test)]
        tests::CommitGate::pass(&self.commit_gate);
        match txn.commit() {
            Ok(()) => results,
            Err(e) => failed("commit", e.into()),
        }
    }

    /// Applies `ops` in order inside `txn`, each with its own answer; `Err` when the
    /// store itself failed (then the transaction must not commit).
    fn apply_all(&self, txn: &redb::WriteTransaction, ops: &[Op]) -> Result<Vec<Result<Applied>>> {
        let mut w = self.writer(txn)?;
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let r = match op {
                Op::Create(item) => {
                    let id = item.product_id.as_str();
                    w.write(id, |current| match current {
                        Some(_) => Err(Error::AlreadyExists(format!("product {id}"))),
                        None => Ok(Some(Some(item.clone()))),
                    })
                }
                Op::Update {
                    id,
                    category,
                    title,
                    now_us,
                } => w.write(id, |current| {
                    Ok(current.map(|mut p| {
                        p.product_category = category.clone();
                        p.product_title = title.clone();
                        p.updated_at_us = *now_us;
                        Some(p)
                    }))
                }),
                Op::Delete(id) => w.write(id, |current| Ok(current.map(|_| None))),
            };
            match r {
                Err(e @ Error::Storage { .. }) => return Err(e),
                other => results.push(other),
            }
        }
        Ok(results)
    }
}

/// The open tables of one write transaction and the next change sequence number.
struct Writer<'t> {
    file: &'t TableFile,
    items: redb::Table<'t, &'static str, &'static [u8]>,
    changes: redb::Table<'t, u64, &'static [u8]>,
    seq: u64,
}

impl TableFile {
    /// Opens the items and the change log inside `txn` for a run of writes.
    fn writer<'t>(&'t self, txn: &'t redb::WriteTransaction) -> Result<Writer<'t>> {
        let changes = txn
            .open_table(CHANGES)
            .map_err(|e| self.db_err("open changes", e))?;
        let seq = changes
            .last()
            .map_err(|e| self.db_err("read changes", e))?
            .map(|(k, _)| k.value() + 1)
            .unwrap_or(1);
        Ok(Writer {
            file: self,
            items: txn.open_table(ITEMS).map_err(|e| self.db_err("open items", e))?,
            changes,
            seq,
        })
    }
}

impl Writer<'_> {
    /// One write: `Ok(None)` when `check` declined it, else the item after the
    /// write (`Some(None)` for a delete), logged in the change table.
    fn write(
        &mut self,
        id: &str,
        check: impl FnOnce(Option<Product>) -> Result<Option<Option<Product>>>,
    ) -> Result<Option<Option<Product>>> {
        let file = self.file;
        let current: Option<Product> = match self.items.get(id).map_err(|e| file.db_err("read", e))? {
            Some(v) => Some(decode(v.value(), &file.path)?),
            None => None,
        };
        let Some(next) = check(current)? else {
            return Ok(None);
        };
        let ts = file.next_ts(next.as_ref().map(|p| p.updated_at_us).unwrap_or_else(now_us));
        match &next {
            Some(p) => {
                let bytes = serde_json::to_vec(p).map_err(|e| Error::storage("encode item", e))?;
                self.items
                    .insert(id, bytes.as_slice())
                    .map_err(|e| file.db_err("insert", e))?;
            }
            None => {
                self.items.remove(id).map_err(|e| file.db_err("remove", e))?;
            }
        }
        let change = Change {
            ts_us: ts,
            product_id: id.to_string(),
            item: next.clone(),
        };
        let bytes = serde_json::to_vec(&change).map_err(|e| Error::storage("encode change", e))?;
        self.changes
            .insert(self.seq, bytes.as_slice())
            .map_err(|e| file.db_err("log change", e))?;
        self.seq += 1;
        Ok(Some(next))
    }
}

impl std::ops::Deref for EmbeddedTable {
    type Target = TableFile;
    fn deref(&self) -> &TableFile {
        &self.inner
    }
}

/// A write through the API, applied by the committer.
#[derive(Debug)]
enum Op {
    Create(Product),
    Update {
        id: String,
        category: String,
        title: String,
        now_us: u64,
    },
    Delete(String),
}

/// The item after an applied write (`Some(None)` for a delete), or `None` when the
/// write did not apply (no such item).
type Applied = Option<Option<Product>>;

/// The most writes one commit holds.
const MAX_GROUP: usize = 512;

/// The committer thread of a table and the way to it.
#[derive(Debug)]
struct Committer {
    tx: Mutex<Option<std::sync::mpsc::Sender<(Op, Reply)>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Where a write's answer goes once its commit is on disk.
type Reply = tokio::sync::oneshot::Sender<Result<Applied>>;

impl Committer {
    fn start(file: Arc<TableFile>) -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<(Op, Reply)>();
        let name = format!("commit-{}", file.name);
        let path = file.path.clone();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                // No waiting for more: under load the writes that arrive while one
                // group commits form the next, so commits follow back to back.
                while let Ok(first) = rx.recv() {
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok(w) => group.push(w),
                            Err(_) => break,
                        }
                    }
                    let (ops, replies): (Vec<Op>, Vec<Reply>) = group.into_iter().unzip();
                    for (reply, result) in replies.into_iter().zip(file.commit_group(&ops)) {
                        // A caller that stopped waiting does not undo the write.
                        let _ = reply.send(result);
                    }
                }
            })
            .map_err(|e| Error::storage(format!("start the committer of {}", path.display()), e))?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Hands `op` to the committer; the answer comes once the commit holding it is
    /// durable.
    async fn submit(&self, op: Op) -> Result<Applied> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = match &*self.tx.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(tx) => tx.send((op, reply)).is_ok(),
            None => false,
        };
        if !sent {
            return Err(Error::storage("write", "the table is closing"));
        }
        answer
            .await
            .map_err(|_| Error::storage("write", "the committer stopped before answering"))?
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Closing the channel ends the thread after the writes already handed over.
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

fn db_err(path: &Path, what: &str, e: impl Into<redb::Error>) -> Error {
    Error::storage(format!("{what} {}", path.display()), e.into())
}

impl EmbeddedTable {
    fn open(name: &str, path: &Path, create: bool) -> Result<Self> {
        let db = if create {
            Database::create(path)
        } else {
            Database::open(path)
        }
        .map_err(|e| Error::storage(format!("open table {}", path.display()), e))?;
        Self::in_database(name, path, db)
    }

    /// The table `name` in `db`, the database of the file at `path`.
    fn in_database(name: &str, path: &Path, db: Database) -> Result<Self> {
        let t = TableFile {
            name: name.to_string(),
            path: path.to_path_buf(),
            db,
            last_ts: Mutex::new(0),
            #[cfg(test)]
            commit_gate: Mutex::new(None),
        };
        {
            let txn = t.db.begin_write().map_err(|e| db_err(path, "write", e))?;
            txn.open_table(ITEMS)
                .map_err(|e| db_err(path, "open items of", e))?;
            txn.open_table(CHANGES)
                .map_err(|e| db_err(path, "open changes of", e))?;
            txn.commit().map_err(|e| db_err(path, "commit", e))?;
        }
        let t = Self {
            inner: Arc::new(t),
            committer: OnceLock::new(),
        };
        let last = t.last_change_seq_and_ts()?.map(|(_, ts)| ts).unwrap_or(0);
        *t.last_ts.lock().unwrap_or_else(|p| p.into_inner()) = last;
        Ok(t)
    }

    /// Applies `op` through the table's committer (started on first use).
    async fn submit(&self, op: Op) -> Result<Applied> {
        let committer = match self.committer.get() {
            Some(c) => c,
            None => {
                let c = Committer::start(self.inner.clone())?;
                // Two first writes at once: one committer wins, the other is dropped.
                let _ = self.committer.set(c);
                self.committer.get().expect("just set")
            }
        };
        committer.submit(op).await
    }

    /// Opens (or creates) a table file outside any region: backups use it.
    pub fn open_file(name: &str, path: &Path) -> Result<Self> {
        Self::open(name, path, true)
    }

    /// The table's name.
    pub fn table_name_str(&self) -> &str {
        &self.name
    }

    /// Every item and the timestamp of the newest change they include, from one
    /// consistent read transaction.
    pub fn snapshot_with_ts(&self) -> Result<(Vec<Product>, u64)> {
        let txn = self.db.begin_read().map_err(|e| self.db_err("read", e))?;
        let items = txn.open_table(ITEMS).map_err(|e| self.db_err("open items", e))?;
        let changes = txn
            .open_table(CHANGES)
            .map_err(|e| self.db_err("open changes", e))?;
        let as_of = match changes.last().map_err(|e| self.db_err("read changes", e))? {
            Some((_, v)) => decode::<Change>(v.value(), &self.path)?.ts_us,
            None => 0,
        };
        let mut out = Vec::new();
        for entry in items.iter().map_err(|e| self.db_err("scan", e))? {
            let (_, v) = entry.map_err(|e| self.db_err("scan", e))?;
            out.push(decode(v.value(), &self.path)?);
        }
        Ok((out, as_of))
    }

    /// The last change's sequence number and timestamp.
    pub fn last_change_seq_and_ts(&self) -> Result<Option<(u64, u64)>> {
        let txn = self.db.begin_read().map_err(|e| self.db_err("read", e))?;
        let changes = txn
            .open_table(CHANGES)
            .map_err(|e| self.db_err("open changes", e))?;
        let last = changes.last().map_err(|e| self.db_err("read changes", e))?;
        match last {
            Some((k, v)) => Ok(Some((k.value(), decode::<Change>(v.value(), &self.path)?.ts_us))),
            None => Ok(None),
        }
    }

    /// Changes with sequence numbers after `after_seq`, in order, at most `limit`.
    pub fn changes_after(&self, after_seq: u64, limit: usize) -> Result<Vec<(u64, Change)>> {
        let txn = self.db.begin_read().map_err(|e| self.db_err("read", e))?;
        let changes = txn
            .open_table(CHANGES)
            .map_err(|e| self.db_err("open changes", e))?;
        let mut out = Vec::new();
        for entry in changes
            .range((after_seq + 1)..)
            .map_err(|e| self.db_err("read changes", e))?
            .take(limit)
        {
            let (k, v) = entry.map_err(|e| self.db_err("read changes", e))?;
            out.push((k.value(), decode(v.value(), &self.path)?));
        }
        Ok(out)
    }

    /// Every item, read in one consistent snapshot (writers go on meanwhile).
    pub fn snapshot(&self) -> Result<Vec<Product>> {
        let txn = self.db.begin_read().map_err(|e| self.db_err("read", e))?;
        let items = txn.open_table(ITEMS).map_err(|e| self.db_err("open items", e))?;
        let mut out = Vec::new();
        for entry in items.iter().map_err(|e| self.db_err("scan", e))? {
            let (_, v) = entry.map_err(|e| self.db_err("scan", e))?;
            out.push(decode(v.value(), &self.path)?);
        }
        Ok(out)
    }

    /// The items as they were at `at_us`, rebuilt from the change log.
    pub fn state_at(&self, at_us: u64) -> Result<Vec<Product>> {
        let mut state: std::collections::BTreeMap<String, Product> = Default::default();
        let mut after = 0;
        loop {
            let batch = self.changes_after(after, 10_000)?;
            let Some((last_seq, _)) = batch.last() else { break };
            after = *last_seq;
            for (_, c) in batch {
                if c.ts_us > at_us {
                    return Ok(state.into_values().collect());
                }
                match c.item {
                    Some(p) => state.insert(c.product_id, p),
                    None => state.remove(&c.product_id),
                };
            }
        }
        Ok(state.into_values().collect())
    }

    /// Loads `items` into this (new, empty) table in one transaction, logging them.
    pub fn load(&self, items: &[Product]) -> Result<()> {
        for chunk in items.chunks(5000) {
            let txn = self.db.begin_write().map_err(|e| self.db_err("write", e))?;
            {
                let mut t = txn.open_table(ITEMS).map_err(|e| self.db_err("open items", e))?;
                let mut changes = txn
                    .open_table(CHANGES)
                    .map_err(|e| self.db_err("open changes", e))?;
                let mut seq = changes
                    .last()
                    .map_err(|e| self.db_err("read changes", e))?
                    .map(|(k, _)| k.value())
                    .unwrap_or(0);
                for p in chunk {
                    let bytes = serde_json::to_vec(p).map_err(|e| Error::storage("encode item", e))?;
                    t.insert(p.product_id.as_str(), bytes.as_slice())
                        .map_err(|e| self.db_err("insert", e))?;
                    seq += 1;
                    let c = Change {
                        ts_us: self.next_ts(now_us()),
                        product_id: p.product_id.clone(),
                        item: Some(p.clone()),
                    };
                    let cb = serde_json::to_vec(&c).map_err(|e| Error::storage("encode change", e))?;
                    changes
                        .insert(seq, cb.as_slice())
                        .map_err(|e| self.db_err("log change", e))?;
                }
            }
            txn.commit().map_err(|e| self.db_err("commit", e))?;
        }
        Ok(())
    }

    /// Applies replicated changes in one transaction, each last-writer-wins on
    /// `updated_at_us` (a delete wins over an item last written before it); a change
    /// that leaves the item as it is is not applied (nor logged), so two tables
    /// replicating into each other settle. Returns how many changed the replica.
    pub fn apply_replicated(&self, batch: &[Change]) -> Result<usize> {
        let txn = self.db.begin_write().map_err(|e| self.db_err("write", e))?;
        let mut applied = 0;
        let mut w = self.writer(&txn)?;
        for change in batch {
            let done = w.write(&change.product_id, |current| {
                let current_ts = current.as_ref().map(|p| p.updated_at_us).unwrap_or(0);
                let incoming_ts = change
                    .item
                    .as_ref()
                    .map(|p| p.updated_at_us)
                    .unwrap_or(change.ts_us);
                if current.is_some() && incoming_ts < current_ts {
                    return Ok(None);
                }
                // The same write coming back (replication both ways): nothing to do,
                // and nothing to log, so it does not travel on.
                if current.is_some() && current == change.item {
                    return Ok(None);
                }
                if current.is_none() && change.item.is_none() {
                    return Ok(None);
                }
                Ok(Some(change.item.clone()))
            })?;
            applied += usize::from(done.is_some());
        }
        drop(w);
        txn.commit().map_err(|e| self.db_err("commit", e))?;
        Ok(applied)
    }
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], path: &Path) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::storage(format!("decode a record in {}", path.display()), e))
}

#[async_trait]
impl ProductStore for EmbeddedTable {
    async fn create(&self, item: &Product) -> Result<()> {
        self.submit(Op::Create(item.clone())).await.map(|_| ())
    }

    async fn get(&self, id: &str) -> Result<Option<Product>> {
        let txn = self.db.begin_read().map_err(|e| self.db_err("read", e))?;
        let items = txn.open_table(ITEMS).map_err(|e| self.db_err("open items", e))?;
        match items.get(id).map_err(|e| self.db_err("read", e))? {
            Some(v) => Ok(Some(decode(v.value(), &self.path)?)),
            None => Ok(None),
        }
    }

    async fn update(&self, id: &str, category: &str, title: &str, now_us: u64) -> Result<Option<Product>> {
        let applied = self
            .submit(Op::Update {
                id: id.to_string(),
                category: category.to_string(),
                title: title.to_string(),
                now_us,
            })
            .await?;
        Ok(applied.flatten())
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        Ok(self.submit(Op::Delete(id.to_string())).await?.is_some())
    }

    async fn scan(&self, limit: usize, after: Option<&str>) -> Result<Page> {
        if limit == 0 {
            return Err(Error::InvalidInput("limit must be at least 1".into()));
        }
        let txn = self.db.begin_read().map_err(|e| self.db_err("read", e))?;
        let items = txn.open_table(ITEMS).map_err(|e| self.db_err("open items", e))?;
        let range = match after {
            Some(a) => items.range::<&str>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => items.range::<&str>(..),
        }
        .map_err(|e| self.db_err("scan", e))?;
        let mut out = Vec::with_capacity(limit.min(1000));
        let mut more = false;
        for entry in range {
            let (_, v) = entry.map_err(|e| self.db_err("scan", e))?;
            if out.len() == limit {
                more = true;
                break;
            }
            out.push(decode::<Product>(v.value(), &self.path)?);
        }
        let last_evaluated_key = if more {
            out.last().map(|p| p.product_id.clone())
        } else {
            None
        };
        Ok(Page {
            items: out,
            last_evaluated_key,
        })
    }

    fn table_name(&self) -> String {
        self.name.clone()
    }
}

/// A "region": a directory of tables (`DIR/tables/NAME.redb`).
#[derive(Debug)]
pub struct Region {
    name: String,
    dir: PathBuf,
    open: Mutex<HashMap<String, Arc<EmbeddedTable>>>,
}

impl Region {
    /// The region `name` under `dir` (created if missing).
    pub fn new(dir: &Path, name: &str) -> Result<Self> {
        let dir = dir.join(name);
        std::fs::create_dir_all(dir.join("tables"))
            .map_err(|e| Error::storage(format!("create region directory {}", dir.display()), e))?;
        Ok(Self {
            name: name.to_string(),
            dir,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The region's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The region's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn table_path(&self, name: &str) -> Result<PathBuf> {
        let ok = (3..=255).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && !name.starts_with('.');
        if !ok {
            return Err(Error::InvalidInput(format!(
                "table name {name:?} is not valid: use 3 to 255 characters of A-Z a-z 0-9 _ - ."
            )));
        }
        Ok(self.dir.join("tables").join(format!("{name}.redb")))
    }

    /// Opens table `name`, creating it if `create` (an existing table is opened).
    pub fn table(&self, name: &str, create: bool) -> Result<Arc<EmbeddedTable>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = open.get(name) {
            return Ok(t.clone());
        }
        let path = self.table_path(name)?;
        if !create && !path.exists() {
            return Err(Error::NotFound(format!("table {name} in region {}", self.name)));
        }
        let t = Arc::new(EmbeddedTable::open(name, &path, true)?);
        open.insert(name.to_string(), t.clone());
        Ok(t)
    }

    /// Creates a new table; [`Error::AlreadyExists`] if there is one (restores always
    /// go to a new table, as in DynamoDB).
    pub fn create_table(&self, name: &str) -> Result<Arc<EmbeddedTable>> {
        let path = self.table_path(name)?;
        if path.exists() {
            return Err(Error::AlreadyExists(format!(
                "table {name} in region {}",
                self.name
            )));
        }
        self.table(name, true)
    }

    /// Deletes a table and its file.
    pub fn delete_table(&self, name: &str) -> Result<()> {
        let path = self.table_path(name)?;
        self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
        std::fs::remove_file(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound(format!("table {name} in region {}", self.name)),
            _ => Error::storage(format!("delete {}", path.display()), e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::suite;

    fn item(id: &str, ts: u64) -> Product {
        Product {
            product_id: id.into(),
            product_category: "Audio".into(),
            product_title: format!("t{ts}"),
            sum_rating: 0,
            count_rating: 0,
            updated_at_us: ts,
        }
    }

    #[test]
    fn change_timestamps_strictly_increase_even_when_the_clock_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let t = EmbeddedTable::open_file("Product", &dir.path().join("t.redb")).unwrap();
        // The same wanted instant twice, then an earlier one: each next one is later.
        assert_eq!(t.next_ts(5), 5);
        assert_eq!(t.next_ts(5), 6);
        assert_eq!(t.next_ts(3), 7);
        assert_eq!(t.next_ts(100), 100);
    }

    #[tokio::test]
    async fn embedded_table_behaves_like_a_product_store() {
        let dir = tempfile::tempdir().unwrap();
        let region = Region::new(dir.path(), "us-east-2").unwrap();
        let t = region.create_table("Product").unwrap();
        suite::crud_and_paging(t.as_ref()).await;
        assert!(matches!(
            region.create_table("Product"),
            Err(Error::AlreadyExists(_))
        ));
        assert!(matches!(region.table("Nope", false), Err(Error::NotFound(_))));
        assert!(region.table("../x", true).is_err());
    }

    #[test]
    fn a_group_commits_its_writes_in_order_each_with_its_own_answer() {
        let dir = tempfile::tempdir().unwrap();
        let region = Region::new(dir.path(), "r").unwrap();
        let t = region.create_table("Product").unwrap();
        let results = t.commit_group(&[
            Op::Create(item("a", 100)),
            Op::Create(item("a", 101)),
            Op::Update {
                id: "a".into(),
                category: "Books".into(),
                title: "a2".into(),
                now_us: 200,
            },
            Op::Delete("missing".into()),
            Op::Create(item("b", 300)),
            Op::Delete("b".into()),
        ]);
        assert!(matches!(results[0], Ok(Some(Some(_)))));
        // Only the duplicate fails; the writes after it still apply.
        assert!(
            matches!(results[1], Err(Error::AlreadyExists(_))),
            "{:?}",
            results[1]
        );
        assert!(matches!(&results[2], Ok(Some(Some(p))) if p.product_title == "a2"));
        assert!(matches!(results[3], Ok(None)));
        assert!(matches!(results[4], Ok(Some(Some(_)))));
        assert!(matches!(results[5], Ok(Some(None))));
        let snap = t.snapshot().unwrap();
        assert_eq!(snap.len(), 1);
        assert_eq!(
            (snap[0].product_id.as_str(), snap[0].product_title.as_str()),
            ("a", "a2")
        );
        // The log holds the four writes that applied, in order.
        let log: Vec<(String, bool)> = t
            .changes_after(0, 100)
            .unwrap()
            .into_iter()
            .map(|(_, c)| (c.product_id, c.item.is_some()))
            .collect();
        let want = [("a", true), ("a", true), ("b", true), ("b", false)];
        assert_eq!(log, want.map(|(i, p)| (i.to_string(), p)));
    }

    /// Holds the next group between its writes and its commit: `held` fires when
    /// the group is applied, the commit waits for `release`.
    #[derive(Debug)]
    pub(super) struct CommitGate {
        held: std::sync::mpsc::Sender<()>,
        release: std::sync::mpsc::Receiver<()>,
    }

    impl CommitGate {
        pub(super) fn pass(slot: &Mutex<Option<CommitGate>>) {
            let gate = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(gate) = gate {
                let _ = gate.held.send(());
                let _ = gate.release.recv();
            }
        }
    }

    /// A copy of the table's file taken while it is open, as a kill -9 or a lost
    /// machine would leave it (no clean shutdown), opened as a table.
    fn crash_image(t: &EmbeddedTable, dir: &Path) -> EmbeddedTable {
        let copy = dir.join(format!("crash-{}.redb", unique()));
        std::fs::copy(t.path(), &copy).unwrap();
        EmbeddedTable::open_file("Product", &copy).unwrap()
    }

    /// Waits for an event; the bound only turns a broken build's hang into a
    /// failure. The events take milliseconds; three tests wait on them, two at a
    /// time, and a broken commit path must fail them well within the mutation
    /// runs' four minutes (`scripts/mutants.sh`).
    const NEVER: std::time::Duration = std::time::Duration::from_secs(20);

    /// The table's file as redb reaches it, with a switch that makes every sync fail
    /// as a disk or an NFS server can (`EIO` from fsync): commits then fail.
    #[derive(Debug)]
    struct FailingSync {
        file: redb::backends::FileBackend,
        failing: Arc<std::sync::atomic::AtomicBool>,
    }

    impl redb::StorageBackend for FailingSync {
        fn len(&self) -> std::io::Result<u64> {
            self.file.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
            self.file.read(offset, out)
        }
        fn set_len(&self, len: u64) -> std::io::Result<()> {
            self.file.set_len(len)
        }
        fn sync_data(&self) -> std::io::Result<()> {
            if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                // EIO (5 on Linux, where the tests run).
                return Err(std::io::Error::from_raw_os_error(5));
            }
            self.file.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            self.file.write(offset, data)
        }
        fn close(&self) -> std::io::Result<()> {
            self.file.close()
        }
    }

    /// A new table whose file's syncs fail once the returned switch is on.
    fn table_with_failing_sync(dir: &Path) -> (EmbeddedTable, Arc<std::sync::atomic::AtomicBool>) {
        let path = dir.join("failing.redb");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap();
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let backend = FailingSync {
            file: redb::backends::FileBackend::new(file).unwrap(),
            failing: failing.clone(),
        };
        let db = redb::Builder::new().create_with_backend(backend).unwrap();
        (EmbeddedTable::in_database("Product", &path, db).unwrap(), failing)
    }

    /// A commit that cannot be made durable answers every write of its group with
    /// the failure, naming the table's file: none is told it is stored. The writes
    /// that queued behind it (the next group) are refused the same way.
    #[test]
    fn a_commit_that_fails_fails_every_write_of_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let (t, failing) = table_with_failing_sync(dir.path());
        let committer = Committer::start(t.inner.clone()).unwrap();
        let (held, release) = gate(&t);
        let sender = committer.tx.lock().unwrap().clone().unwrap();
        let mut answers = Vec::new();
        let mut send = |op: Op| {
            let (reply, answer) = tokio::sync::oneshot::channel();
            sender.send((op, reply)).unwrap();
            answers.push(answer);
        };
        send(Op::Create(item("a", 100)));
        held.recv_timeout(NEVER)
            .expect("the first group reached its commit");
        for id in ["b", "c", "d"] {
            send(Op::Create(item(id, 200)));
        }
        failing.store(true, std::sync::atomic::Ordering::SeqCst);
        release.send(()).unwrap();
        let file = t.path().display().to_string();
        for (i, answer) in answers.into_iter().enumerate() {
            let answered = answer.blocking_recv().expect("the committer answered");
            let e = answered.expect_err("a write was told it is stored by a failed commit");
            let text = e.to_string();
            assert!(text.contains(&file), "write {i}: {text}");
            if i == 0 {
                assert!(
                    text.starts_with("commit") && text.contains("Input/output error"),
                    "{text}"
                );
            }
        }
        drop(sender);
    }

    #[test]
    fn an_answer_leaves_only_after_its_commit_returns() {
        let dir = tempfile::tempdir().unwrap();
        let region = Region::new(dir.path(), "r").unwrap();
        let t = region.create_table("Product").unwrap();
        // Declared first, dropped last: a failing assertion releases the gate
        // before the committer is joined.
        let committer = Committer::start(t.inner.clone()).unwrap();
        let (held, release) = gate(&t);
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        let sender = committer.tx.lock().unwrap().clone().unwrap();
        sender.send((Op::Create(item("a", 100)), reply)).unwrap();

        // The group is applied and its commit held: no answer has left, and the
        // write is neither visible nor on disk.
        held.recv_timeout(NEVER).expect("the group reached its commit");
        assert!(
            matches!(
                answer.try_recv(),
                Err(tokio::sync::oneshot::error::TryRecvError::Empty)
            ),
            "an answer left before its commit"
        );
        assert!(t.snapshot().unwrap().is_empty());
        assert!(crash_image(&t, dir.path()).snapshot().unwrap().is_empty());

        release.send(()).unwrap();
        let answered = answer.blocking_recv().expect("the committer answered");
        assert!(matches!(answered, Ok(Some(Some(_)))), "{answered:?}");
        // Answered means on disk: a crash now keeps it.
        assert_eq!(crash_image(&t, dir.path()).snapshot().unwrap().len(), 1);
        drop(sender);
    }

    /// Installs a gate for the next group to reach its commit: `(held, release)`.
    fn gate(t: &EmbeddedTable) -> (std::sync::mpsc::Receiver<()>, std::sync::mpsc::Sender<()>) {
        let (held_tx, held) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        *t.commit_gate.lock().unwrap() = Some(CommitGate {
            held: held_tx,
            release: release_rx,
        });
        (held, release)
    }

    /// Writes that queue behind a commit form the next group, at most MAX_GROUP of
    /// them: the groups are counted by the answers that left when the next one is
    /// held, with every write queued before the first commit returns.
    #[test]
    fn writes_queued_behind_a_commit_form_groups_of_at_most_max_group() {
        let dir = tempfile::tempdir().unwrap();
        let region = Region::new(dir.path(), "r").unwrap();
        let t = region.create_table("Product").unwrap();
        let committer = Committer::start(t.inner.clone()).unwrap();
        let sender = committer.tx.lock().unwrap().clone().unwrap();
        let mut answers = Vec::new();
        let mut send = |i: usize| {
            let (reply, answer) = tokio::sync::oneshot::channel();
            sender
                .send((Op::Create(item(&format!("w{i:04}"), 1)), reply))
                .unwrap();
            answers.push(answer);
        };
        let (held, release) = gate(&t);
        send(0);
        held.recv_timeout(NEVER)
            .expect("the first group reached its commit");
        // The first commit is held: the rest queue behind it.
        for i in 1..=MAX_GROUP + 3 {
            send(i);
        }
        let (held, release_second) = {
            let next = gate(&t);
            release.send(()).unwrap();
            next
        };
        held.recv_timeout(NEVER)
            .expect("the second group reached its commit");
        let (held, release_third) = {
            let next = gate(&t);
            release_second.send(()).unwrap();
            next
        };
        held.recv_timeout(NEVER)
            .expect("the third group reached its commit");
        // Answered so far: the first group (one write) and the second (a full group).
        let answered = answers
            .iter_mut()
            .map(|a| a.try_recv().is_ok())
            .filter(|ok| *ok)
            .count();
        assert_eq!(
            answered,
            1 + MAX_GROUP,
            "the second group held {} writes",
            answered - 1
        );
        release_third.send(()).unwrap();
        drop(sender);
        drop(committer);
        assert_eq!(t.snapshot().unwrap().len(), MAX_GROUP + 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_are_all_acknowledged_and_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path;
        {
            let region = Region::new(dir.path(), "r").unwrap();
            let t = region.create_table("Product").unwrap();
            path = t.path().to_path_buf();
            let mut tasks = Vec::new();
            for w in 0..32 {
                let t = t.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..20 {
                        t.create(&item(&format!("w{w:02}-{i:02}"), 1)).await.unwrap();
                    }
                    t.update(&format!("w{w:02}-00"), "Books", "u", 2)
                        .await
                        .unwrap()
                        .unwrap();
                    assert!(t.delete(&format!("w{w:02}-01")).await.unwrap());
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            // Without a clean shutdown (the table is still open), every acknowledged
            // write is in the file.
            let crashed = crash_image(&t, dir.path());
            let snap = crashed.snapshot().unwrap();
            assert_eq!(snap.len(), 32 * 19);
            assert_eq!(snap.iter().filter(|p| p.product_title == "u").count(), 32);
        }
        // And after a clean one.
        let t = EmbeddedTable::open_file("Product", &path).unwrap();
        let snap = t.snapshot().unwrap();
        assert_eq!(snap.len(), 32 * 19);
        assert_eq!(snap.iter().filter(|p| p.product_title == "u").count(), 32);
    }

    #[tokio::test]
    async fn the_change_log_rebuilds_any_past_state_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let region = Region::new(dir.path(), "r").unwrap();
        let t = region.create_table("Product").unwrap();
        t.create(&item("a", 100)).await.unwrap();
        t.create(&item("b", 200)).await.unwrap();
        t.update("a", "Audio", "a2", 300).await.unwrap();
        t.delete("b").await.unwrap(); // ts 301
        let at = |us| {
            t.state_at(us)
                .unwrap()
                .into_iter()
                .map(|p| (p.product_id, p.product_title))
                .collect::<Vec<_>>()
        };
        assert_eq!(at(150), vec![("a".into(), "t100".into())]);
        assert_eq!(
            at(250),
            vec![("a".into(), "t100".into()), ("b".into(), "t200".into())]
        );
        assert_eq!(
            at(300),
            vec![("a".into(), "a2".into()), ("b".into(), "t200".into())]
        );
        assert_eq!(at(u64::MAX), vec![("a".into(), "a2".into())]);
        assert_eq!(t.state_at(u64::MAX).unwrap(), t.snapshot().unwrap());
        // Reopening keeps the log and its clock.
        drop(t);
        region.open.lock().unwrap().clear();
        let t = region.table("Product", false).unwrap();
        assert_eq!(t.last_change_seq_and_ts().unwrap().unwrap().0, 4);
    }

    #[tokio::test]
    async fn replication_is_last_writer_wins() {
        let dir = tempfile::tempdir().unwrap();
        let replica = Region::new(dir.path(), "r2")
            .unwrap()
            .create_table("Product")
            .unwrap();
        let newer = Change {
            ts_us: 10,
            product_id: "a".into(),
            item: Some(item("a", 10)),
        };
        let older = Change {
            ts_us: 5,
            product_id: "a".into(),
            item: Some(item("a", 5)),
        };
        assert_eq!(replica.apply_replicated(std::slice::from_ref(&newer)).unwrap(), 1);
        assert_eq!(replica.apply_replicated(std::slice::from_ref(&older)).unwrap(), 0);
        assert_eq!(replica.get("a").await.unwrap().unwrap().updated_at_us, 10);
        let delete = Change {
            ts_us: 11,
            product_id: "a".into(),
            item: None,
        };
        assert_eq!(replica.apply_replicated(&[delete]).unwrap(), 1);
        assert!(replica.get("a").await.unwrap().is_none());
    }
}
