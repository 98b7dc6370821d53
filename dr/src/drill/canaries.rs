//! The canary writer: while a method runs towards its disaster, a task keeps writing
//! timestamped canaries and records the ones acknowledged. What a recovery lost of
//! them is its measured RPO.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::cleanup::{Cleanup, Resource};
use super::client::{ApiClient, ApiEndpoint};
use super::verdict::Acked;
use crate::product::Product;
use crate::store::{ProductStore, Result};

/// A clock, µs since the epoch.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The category canaries are written with (so nobody mistakes one for a product).
pub const CANARY_CATEGORY: &str = "tandem-drill-canary";

/// Where canaries go.
#[async_trait]
pub trait CanarySink: Send + Sync {
    /// Writes canary number `n`; `Ok` once acknowledged.
    async fn write(&self, n: u64) -> Result<Acked>;
}

/// Canaries straight into a table (the restore methods' scratch tables).
pub struct StoreSink {
    /// The table.
    pub store: Arc<dyn ProductStore>,
    /// The backend's clock (stamps each canary).
    pub clock: Clock,
}

#[async_trait]
impl CanarySink for StoreSink {
    async fn write(&self, n: u64) -> Result<Acked> {
        let p = Product {
            product_id: format!("canary-{n:08}"),
            product_category: CANARY_CATEGORY.into(),
            product_title: format!("canary {n}"),
            sum_rating: 0,
            count_rating: 0,
            updated_at_us: (self.clock)(),
        };
        self.store.create(&p).await?;
        Ok(Acked {
            id: p.product_id,
            at_us: p.updated_at_us,
        })
    }
}

/// Canaries through the product API, as a client writes (the failover methods):
/// each acknowledged one is registered for removal.
pub struct ApiSink {
    /// The client.
    pub client: ApiClient,
    /// Where clients write.
    pub endpoint: ApiEndpoint,
    /// The backend's clock (when each acknowledgement arrived).
    pub clock: Clock,
    /// Where the written items are registered.
    pub cleanup: Cleanup,
    /// Names this drill's canaries (`pilot-light 18c2...`).
    pub tag: String,
}

#[async_trait]
impl CanarySink for ApiSink {
    async fn write(&self, n: u64) -> Result<Acked> {
        let w = self
            .client
            .add(
                &self.endpoint,
                CANARY_CATEGORY,
                &format!("{} canary {n}", self.tag),
            )
            .await?;
        self.cleanup.add(Resource::ApiItem { id: w.id.clone() });
        Ok(Acked {
            id: w.id,
            at_us: (self.clock)(),
        })
    }
}

/// A writer that keeps adding canaries and records the acknowledged ones.
pub struct Canaries {
    stop: Arc<AtomicBool>,
    gate: Arc<tokio::sync::Mutex<()>>,
    acked: Arc<Mutex<Vec<Acked>>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl Canaries {
    /// Starts writing into `sink`, one canary every `interval`.
    pub fn start(sink: Arc<dyn CanarySink>, interval: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (s, g, a) = (stop.clone(), gate.clone(), acked.clone());
        let handle = tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                {
                    // Held for the whole write: pause() waits for an in-flight write.
                    let _write = g.lock().await;
                    if s.load(Ordering::Relaxed) {
                        break;
                    }
                    n += 1;
                    // A write that was not acknowledged is not a write the recovery owes.
                    if let Ok(ack) = sink.write(n).await {
                        a.lock().unwrap_or_else(|e| e.into_inner()).push(ack);
                    }
                }
                tokio::time::sleep(interval).await;
            }
        });
        Self {
            stop,
            gate,
            acked,
            handle: Some(handle),
        }
    }

    /// Holds the writer: no canary is written (none is in flight) until the guard
    /// is dropped.
    pub async fn pause(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.gate.clone().lock_owned().await
    }

    /// Stops the writer and returns the acknowledged canaries, oldest first.
    pub async fn stop(mut self) -> Vec<Acked> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        std::mem::take(&mut *self.acked.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for Canaries {
    fn drop(&mut self) {
        // An interrupted method: stop writing into a table that is being removed.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.abort();
        }
    }
}
