//! What the drill made, registered before it exists and removed on every exit path:
//! success, an error, or (through the caller's signal handling) an interruption.

use std::sync::{Arc, Mutex};

use super::backend::{BackupRef, DrillBackend, TableRef};
use super::wait::Waiter;
use crate::region::RegionName;

/// Something the drill made and must remove (or undo).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    /// A table (with its replicas, which go first).
    Table(TableRef),
    /// A backup or recovery point.
    Backup(BackupRef),
    /// A copy job still running (started in `region`): removing it waits for the job
    /// and deletes the recovery point it made.
    CopyJob {
        /// The region the job runs in (the source's).
        region: RegionName,
        /// The job.
        job_id: String,
    },
    /// A two-region deployment the drill set up itself (the embedded backend's two
    /// servers, their tables and replication): removing it stops and deletes it.
    Deployment {
        /// Its name (the tables').
        name: String,
    },
    /// An item the drill wrote through a deployed API into the served table:
    /// removing it deletes it through the primary's API.
    ApiItem {
        /// The item.
        id: String,
    },
    /// A failover the drill made: removing it fails back (the primary serves again,
    /// a pilot light is switched off again, clients' DNS points at the primary).
    Failover {
        /// The region failed over to.
        to: RegionName,
    },
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::Table(t) => write!(f, "{t}"),
            Resource::Backup(b) => write!(f, "backup {} in {}", b.id, b.region),
            Resource::CopyJob { region, job_id } => write!(f, "copy job {job_id} in {region}"),
            Resource::Deployment { name } => write!(f, "the drill's deployment {name}"),
            Resource::ApiItem { id } => write!(f, "item {id} written through the API"),
            Resource::Failover { to } => write!(f, "the failover to {to}"),
        }
    }
}

/// Everything the drill made that still exists, in the order it was made. Shared
/// with the caller, so that when a drill is interrupted (its future dropped) the
/// caller can still remove what it made.
#[derive(Debug, Clone, Default)]
pub struct Cleanup {
    made: Arc<Mutex<Vec<Resource>>>,
}

impl Cleanup {
    /// A new, empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Resource>> {
        self.made.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `r` (before it is created, so an interruption mid-creation still
    /// removes it; removing something that never came to be is not an error).
    pub fn add(&self, r: Resource) {
        let mut made = self.lock();
        if !made.contains(&r) {
            made.push(r);
        }
    }

    /// Drops `r` from the registry (it is gone, or has become something else that is
    /// registered, such as a finished copy job's recovery point).
    pub fn forget(&self, r: &Resource) {
        self.lock().retain(|x| x != r);
    }

    /// What is registered.
    pub fn pending(&self) -> Vec<Resource> {
        self.lock().clone()
    }

    /// Removes everything registered, newest first (restored tables before the
    /// backups they came from, a failback before the items it wrote are deleted).
    /// Returns what could not be removed, with the reason; what was removed leaves
    /// the registry.
    pub async fn release(&self, backend: &dyn DrillBackend, wait: &Waiter<'_>) -> Vec<String> {
        let mut failed: Vec<(Resource, String)> = Vec::new();
        loop {
            let next = {
                let made = self.lock();
                made.iter()
                    .rev()
                    .find(|r| !failed.iter().any(|(f, _)| f == *r))
                    .cloned()
            };
            let Some(r) = next else { break };
            (wait.say)(format!("cleaning up: {r}"));
            match backend.remove(&r, wait).await {
                Ok(()) => self.forget(&r),
                Err(e) => failed.push((r, e.to_string())),
            }
        }
        failed.into_iter().map(|(r, e)| format!("{r}: {e}")).collect()
    }
}
