//! The asynchronous replica: a replicator ships a table's change log to a table in
//! another region, applying each change last-writer-wins, as DynamoDB global tables
//! do. Replication lag is the age of the newest change not yet applied.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::embedded::EmbeddedTable;
use crate::store::Result;

/// Where a replicator has got to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicaPosition {
    /// Last change sequence applied.
    pub seq: u64,
    /// Timestamp of that change, µs since the epoch.
    pub ts_us: u64,
}

/// Applies the next changes after `from` (at most 1,000, in one transaction) to
/// `replica`; returns the new position (unchanged when there was nothing to ship).
pub fn replicate_once(
    primary: &EmbeddedTable,
    replica: &EmbeddedTable,
    from: ReplicaPosition,
) -> Result<ReplicaPosition> {
    let batch = primary.changes_after(from.seq, 1000)?;
    let Some((seq, last)) = batch.last() else {
        return Ok(from);
    };
    let pos = ReplicaPosition {
        seq: *seq,
        ts_us: last.ts_us,
    };
    let changes: Vec<_> = batch.into_iter().map(|(_, c)| c).collect();
    replica.apply_replicated(&changes)?;
    Ok(pos)
}

/// A background replicator thread.
#[derive(Debug)]
pub struct Replicator {
    stop: Arc<AtomicBool>,
    position: Arc<Mutex<ReplicaPosition>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Replicator {
    /// Starts replicating `primary` into `replica` every `interval`.
    pub fn start(primary: Arc<EmbeddedTable>, replica: Arc<EmbeddedTable>, interval: Duration) -> Self {
        Self::start_from(primary, replica, interval, ReplicaPosition::default())
    }

    /// Starts replicating the changes of `primary` after `from` (where a stopped
    /// replicator got to: the region is back, replication resumes).
    pub fn start_from(
        primary: Arc<EmbeddedTable>,
        replica: Arc<EmbeddedTable>,
        interval: Duration,
        from: ReplicaPosition,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let position = Arc::new(Mutex::new(from));
        let (s, p) = (stop.clone(), position.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let from = *p.lock().unwrap_or_else(|e| e.into_inner());
                match replicate_once(&primary, &replica, from) {
                    // More to ship: go on at once (checking the stop flag between batches).
                    Ok(next) if next != from => *p.lock().unwrap_or_else(|e| e.into_inner()) = next,
                    Ok(_) => std::thread::sleep(interval),
                    Err(e) => {
                        tracing::warn!(error = %e, "replication failed; retrying");
                        std::thread::sleep(interval);
                    }
                }
            }
        });
        Self {
            stop,
            position,
            handle: Some(handle),
        }
    }

    /// Where the replica has got to.
    pub fn position(&self) -> ReplicaPosition {
        *self.position.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replication lag against the primary's newest change, in µs.
    pub fn lag_us(&self, primary: &EmbeddedTable) -> Result<u64> {
        let newest = primary.last_change_seq_and_ts()?.map(|(_, ts)| ts).unwrap_or(0);
        Ok(newest.saturating_sub(self.position().ts_us))
    }

    /// Stops shipping changes, as when the primary region is lost: no final sync.
    pub fn stop(mut self) -> ReplicaPosition {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.position()
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::Region;
    use crate::product::Product;
    use crate::store::ProductStore;

    #[tokio::test]
    async fn the_replica_converges_to_the_primary() {
        let dir = tempfile::tempdir().unwrap();
        let primary = Region::new(dir.path(), "us-east-2")
            .unwrap()
            .create_table("Product")
            .unwrap();
        let replica = Region::new(dir.path(), "us-east-1")
            .unwrap()
            .create_table("Product")
            .unwrap();
        let rep = Replicator::start(primary.clone(), replica.clone(), Duration::from_millis(5));
        for i in 0..100u64 {
            let p = Product {
                product_id: format!("p{i:03}"),
                product_category: "c".into(),
                product_title: "t".into(),
                sum_rating: 0,
                count_rating: 0,
                updated_at_us: crate::embedded::now_us(),
            };
            primary.create(&p).await.unwrap();
        }
        primary.delete("p007").await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while rep.lag_us(&primary).unwrap() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let pos = rep.stop();
        assert_eq!(pos.seq, 101);
        assert_eq!(replica.snapshot().unwrap(), primary.snapshot().unwrap());
    }
}
