//! The drill on the embedded store: regions are directories under the drill's
//! working directory, tables redb files, backups snapshot files, a replica a
//! replicator thread shipping the change log. Exact and fast: backups and restores
//! are instantaneous snapshots, so the margins are a few milliseconds.
//!
//! The failover methods run on a deployment the backend sets up as the stacks set
//! one up on AWS: a table in each region replicating into the other (last writer
//! wins), the product API served in each region on a loopback port, and a switch in
//! front of each (the standby's is off for a pilot light).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::backend::{BackupKind, BackupRef, DrillBackend, Guarantees, PlanSource, RecoveryPoint, TableRef};
use super::check::{Check, CheckKind};
use super::cleanup::Resource;
use super::client::{ApiClient, ApiEndpoint};
use super::failover::{Deployment, StandbyMode};
use super::wait::{Poll, Waiter, human};
use crate::api::{ApiState, router};
use crate::backup::{Backups, Pitr, last_scheduled_slot, run_schedule};
use crate::embedded::{EmbeddedTable, Region, now_us, unique};
use crate::product::Product;
use crate::region::RegionName;
use crate::replica::{ReplicaPosition, Replicator};
use crate::store::{Error, ProductStore, Result};

/// Runs file work (loads, scans, snapshots, restores of up to millions of items) off
/// the runtime's threads, so that the drill stays responsive to a signal meanwhile.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::storage("the drill's file work", e))?
}

/// Items loaded per transaction.
const LOAD_SLICE: usize = 10_000;

/// How often a replicator ships changes.
const REPLICATION_INTERVAL: Duration = Duration::from_millis(20);

/// The embedded backend of the drill, working in `dir`.
#[derive(Debug)]
pub struct EmbeddedBackend {
    dir: PathBuf,
    pitr_window_days: u32,
    regions: Mutex<HashMap<RegionName, Arc<Region>>>,
    pitr: Mutex<HashMap<TableRef, Pitr>>,
    deployment: Mutex<Option<Arc<LocalDeployment>>>,
    primary: RegionName,
    recovery: RegionName,
}

impl EmbeddedBackend {
    /// A backend whose regions (`primary` and `recovery`) live under `dir`, with a
    /// PITR window of `pitr_window_days`.
    pub fn new(dir: &Path, pitr_window_days: u32, primary: &RegionName, recovery: &RegionName) -> Self {
        Self {
            dir: dir.to_path_buf(),
            pitr_window_days,
            regions: Mutex::new(HashMap::new()),
            pitr: Mutex::new(HashMap::new()),
            deployment: Mutex::new(None),
            primary: primary.clone(),
            recovery: recovery.clone(),
        }
    }

    fn region(&self, name: &RegionName) -> Result<Arc<Region>> {
        let mut regions = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = regions.get(name) {
            return Ok(r.clone());
        }
        let r = Arc::new(Region::new(&self.dir, name.as_str())?);
        regions.insert(name.clone(), r.clone());
        Ok(r)
    }

    fn table(&self, t: &TableRef) -> Result<Arc<EmbeddedTable>> {
        self.region(&t.region)?.table(&t.name, false)
    }

    fn pitr_of(&self, t: &TableRef) -> Result<Pitr> {
        let pitr = self
            .pitr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(t)
            .cloned();
        pitr.ok_or_else(|| Error::InvalidInput(format!("{t} has no point-in-time recovery")))
    }

    fn backups(&self, region: &RegionName) -> Result<Backups> {
        Backups::new(self.region(region)?)
    }

    fn current(&self) -> Option<Arc<LocalDeployment>> {
        self.deployment.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn enable_pitr(&self, t: &TableRef) -> Result<()> {
        self.pitr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(t.clone(), Pitr::new(self.pitr_window_days, now_us())?);
        Ok(())
    }
}

/// The plan's vault, as the embedded store has one: the region's backups directory.
fn vault_of(backups: &Backups) -> String {
    backups.dir().display().to_string()
}

#[async_trait]
impl DrillBackend for EmbeddedBackend {
    fn name(&self) -> &'static str {
        "embedded"
    }

    fn guarantees(&self) -> Guarantees {
        Guarantees {
            // Snapshots are exact: a few milliseconds keep the clocks honest.
            backup_fuzz: Duration::from_millis(5),
            pitr_margin: Duration::from_millis(5),
            canary_interval: Duration::from_millis(1),
            canary_run: Duration::from_millis(100),
            poll: Duration::from_millis(5),
            max_poll: Duration::from_millis(50),
        }
    }

    fn now_us(&self) -> u64 {
        now_us()
    }

    async fn create_table(&self, t: &TableRef, pitr: bool, _wait: &Waiter<'_>) -> Result<()> {
        self.region(&t.region)?.create_table(&t.name)?;
        if pitr {
            self.enable_pitr(t)?;
        }
        Ok(())
    }

    fn store(&self, t: &TableRef) -> Result<Arc<dyn ProductStore>> {
        Ok(self.table(t)?)
    }

    async fn load(&self, t: &TableRef, items: &[Product]) -> Result<()> {
        // In slices: a drill that is stopped stops loading after the current one.
        for slice in items.chunks(LOAD_SLICE) {
            let table = self.table(t)?;
            let slice = slice.to_vec();
            blocking(move || table.load(&slice)).await?;
        }
        Ok(())
    }

    async fn scan(&self, t: &TableRef) -> Result<Vec<Product>> {
        let table = self.table(t)?;
        blocking(move || table.snapshot()).await
    }

    async fn latest_restorable_us(&self, t: &TableRef) -> Result<u64> {
        let pitr = self.pitr_of(t)?;
        Ok(pitr.latest_restorable(now_us()))
    }

    async fn restore_to_time(
        &self,
        t: &TableRef,
        at_us: u64,
        target: &TableRef,
        _wait: &Waiter<'_>,
    ) -> Result<()> {
        let pitr = self.pitr_of(t)?;
        let region = self.region(&target.region)?;
        let table = self.table(t)?;
        let name = target.name.clone();
        blocking(move || pitr.restore(&region, &table, at_us, &name, now_us()).map(|_| ())).await
    }

    async fn backup(&self, t: &TableRef, kind: BackupKind, wait: &Waiter<'_>) -> Result<BackupRef> {
        let table = self.table(t)?;
        let backups = self.backups(&t.region)?;
        let vault = vault_of(&backups);
        let info = blocking(move || backups.create(&table, kind, now_us(), 30)).await?;
        let b = BackupRef {
            region: t.region.clone(),
            id: info.backup_id,
            kind,
            vault: Some(vault),
        };
        wait.cleanup.add(Resource::Backup(b.clone()));
        Ok(b)
    }

    async fn copy_backup(&self, b: &BackupRef, region: &RegionName, wait: &Waiter<'_>) -> Result<BackupRef> {
        let (from, to, id) = (self.backups(&b.region)?, self.backups(region)?, b.id.clone());
        let copy = BackupRef {
            region: region.clone(),
            id: b.id.clone(),
            kind: b.kind,
            vault: Some(vault_of(&to)),
        };
        wait.cleanup.add(Resource::Backup(copy.clone()));
        blocking(move || from.copy_to(&id, &to).map(|_| ())).await?;
        Ok(copy)
    }

    async fn restore_backup(&self, b: &BackupRef, target: &TableRef, _wait: &Waiter<'_>) -> Result<()> {
        let (backups, id, name) = (self.backups(&b.region)?, b.id.clone(), target.name.clone());
        blocking(move || backups.restore(&id, &name).map(|_| ())).await
    }

    async fn delete_table(&self, t: &TableRef) -> Result<()> {
        self.region(&t.region)?.delete_table(&t.name)
    }

    async fn plan_source(&self, seed: &[Product], wait: &Waiter<'_>) -> Result<PlanSource> {
        // The table the plan protects, with its history: seeded, its plan's backup
        // taken, then written on (so the recovery point, not the table as it is
        // now, is what a restore must bring back).
        let t = TableRef::new(&self.primary, &format!("Product-drill-plan-{:x}", unique()));
        wait.cleanup.add(Resource::Table(t.clone()));
        self.create_table(&t, true, wait).await?;
        self.load(&t, seed).await?;
        let table = self.table(&t)?;
        let backups = self.backups(&t.region)?;
        let vault = vault_of(&backups);
        // A backup the plan took 31 days ago: its retention must expire it.
        let old = backups.create(&table, BackupKind::Scheduled, now_us() - 31 * 86_400_000_000, 30)?;
        let point = |id: String| {
            Resource::Backup(BackupRef {
                region: t.region.clone(),
                id,
                kind: BackupKind::Scheduled,
                vault: Some(vault.clone()),
            })
        };
        wait.cleanup.add(point(old.backup_id.clone()));
        let (taken, _) = {
            let (backups, table) = (backups.clone(), table.clone());
            blocking(move || run_schedule(&backups, &table, now_us(), 30)).await?
        };
        if let Some(b) = &taken {
            wait.cleanup.add(point(b.backup_id.clone()));
        }
        tokio::time::sleep(self.guarantees().backup_fuzz * 2).await;
        for p in seed.iter().step_by(10) {
            table
                .update(&p.product_id, "after the backup", "after the backup", now_us())
                .await?;
        }
        Ok(PlanSource {
            table: t,
            plan: "the embedded schedule".into(),
            vault,
            schedule: "cron(10 9 * * ? *), kept 30 days".into(),
        })
    }

    async fn plan_recovery_points(&self, source: &PlanSource, since_us: u64) -> Result<Vec<RecoveryPoint>> {
        let backups = self.backups(&source.table.region)?;
        let mut points: Vec<RecoveryPoint> = backups
            .list(Some(&source.table.name))?
            .into_iter()
            .filter(|b| b.backup_type == BackupKind::Scheduled && b.created_at_us >= since_us)
            .map(|b| RecoveryPoint {
                backup: BackupRef {
                    region: source.table.region.clone(),
                    id: b.backup_id,
                    kind: BackupKind::Scheduled,
                    vault: Some(source.vault.clone()),
                },
                created_us: b.created_at_us,
            })
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.created_us));
        Ok(points)
    }

    async fn plan_checks(&self, source: &PlanSource, _wait: &Waiter<'_>) -> Result<Vec<Check>> {
        let backups = self.backups(&source.table.region)?;
        let now = now_us();
        let all = backups.list(Some(&source.table.name))?;
        let slot = last_scheduled_slot(now);
        let in_slot = all.iter().any(|b| {
            b.backup_type == BackupKind::Scheduled && b.created_at_us >= slot && b.created_at_us <= now
        });
        let expired_old = !all.iter().any(|b| {
            b.backup_type == BackupKind::Scheduled
                && now.saturating_sub(b.created_at_us) > 30 * 86_400_000_000
        });
        Ok(vec![
            Check::new(
                CheckKind::PlanSchedule,
                in_slot,
                "cron(10 9 * * ? *): the newest scheduled backup is from the latest 09:10 UTC slot",
            ),
            Check::new(
                CheckKind::PlanRetention,
                expired_old,
                if expired_old {
                    "a 31-day-old scheduled backup was expired (30-day retention)"
                } else {
                    "a 31-day-old scheduled backup was not expired"
                },
            ),
        ])
    }

    async fn deployment(&self, mode: StandbyMode, wait: &Waiter<'_>) -> Result<Arc<dyn Deployment>> {
        let name = format!("Product-drill-{}-{:x}", mode.name(), unique());
        wait.cleanup.add(Resource::Deployment { name: name.clone() });
        let d = LocalDeployment::start(
            &name,
            mode,
            [
                (self.primary.clone(), self.region(&self.primary)?),
                (self.recovery.clone(), self.region(&self.recovery)?),
            ],
        )
        .await?;
        let d = Arc::new(d);
        *self.deployment.lock().unwrap_or_else(|e| e.into_inner()) = Some(d.clone());
        Ok(d)
    }

    async fn remove(&self, r: &Resource, wait: &Waiter<'_>) -> Result<()> {
        let gone = |e: Error| match e {
            Error::NotFound(_) => Ok(()),
            other => Err(other),
        };
        match r {
            Resource::Table(t) => {
                self.pitr.lock().unwrap_or_else(|e| e.into_inner()).remove(t);
                self.region(&t.region)?.delete_table(&t.name).or_else(gone)
            }
            Resource::Backup(b) => self.backups(&b.region)?.delete(&b.id).map(|_| ()).or_else(gone),
            // Copies are instantaneous here: there is never a job left running.
            Resource::CopyJob { .. } => Ok(()),
            Resource::Deployment { name } => {
                let d = self.deployment.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(d) = d {
                    d.stop().await;
                }
                for region in [&self.primary, &self.recovery] {
                    self.region(region)?.delete_table(name).or_else(gone)?;
                }
                Ok(())
            }
            Resource::ApiItem { .. } | Resource::Failover { .. } => {
                let d = self.current();
                super::failover::undo(d.as_deref().map(|d| d as &dyn Deployment), r, wait).await
            }
        }
    }
}

/// One region's server: the product API on a loopback port, behind a switch.
#[derive(Debug)]
struct Site {
    region: RegionName,
    table: Arc<EmbeddedTable>,
    endpoint: ApiEndpoint,
    on: Arc<AtomicBool>,
    stop: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    done: Mutex<Option<tokio::task::JoinHandle<std::io::Result<()>>>>,
}

/// The switch in front of a site: off, it answers 503 as a throttled function does.
async fn switch(State(on): State<Arc<AtomicBool>>, req: Request, next: Next) -> Response {
    if on.load(Ordering::SeqCst) {
        next.run(req).await
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"message": "this region's API is switched off"})),
        )
            .into_response()
    }
}

impl Site {
    async fn start(
        region: RegionName,
        table: Arc<EmbeddedTable>,
        key: &str,
        on: bool,
        role: &str,
    ) -> Result<Self> {
        let on = Arc::new(AtomicBool::new(on));
        let state = ApiState {
            store: table.clone(),
            backups: None,
            api_key: Some(key.to_string()),
            region: Some(region.to_string()),
        };
        let app = router(state).layer(axum::middleware::from_fn_with_state(on.clone(), switch));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::storage("listen on a loopback port", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::storage("the loopback port", e))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = crate::serve::Limits {
            grace: Duration::from_secs(1),
            ..crate::serve::Limits::default()
        };
        let done = tokio::spawn(crate::serve::serve(listener, app, limits, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            endpoint: ApiEndpoint::new(
                format!("the {role}'s API in {region}"),
                &format!("http://{addr}"),
                Some(key.to_string()),
            ),
            region,
            table,
            on,
            stop: Mutex::new(Some(stop)),
            done: Mutex::new(Some(done)),
        })
    }

    fn set(&self, on: bool) {
        self.on.store(on, Ordering::SeqCst);
    }

    async fn stop(&self) {
        if let Some(s) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = s.send(());
        }
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(d) = done {
            let _ = d.await;
        }
    }
}

/// A deployment in two regions on this machine (see the module's documentation).
#[derive(Debug)]
pub struct LocalDeployment {
    name: String,
    mode: StandbyMode,
    primary: Site,
    standby: Site,
    client: ApiClient,
    /// Primary to standby, and back.
    replicators: Mutex<Vec<Replicator>>,
    /// Where they had got to when the primary region was lost.
    positions: Mutex<Option<[ReplicaPosition; 2]>>,
    failed_over: AtomicBool,
}

impl LocalDeployment {
    async fn start(name: &str, mode: StandbyMode, regions: [(RegionName, Arc<Region>); 2]) -> Result<Self> {
        let [(p_name, p_region), (s_name, s_region)] = regions;
        let p_table = p_region.create_table(name)?;
        let s_table = s_region.create_table(name)?;
        let key = format!("drill-{:x}", unique());
        let primary = Site::start(p_name, p_table, &key, true, "primary").await?;
        let standby = Site::start(s_name, s_table, &key, mode == StandbyMode::WarmStandby, "standby").await?;
        let d = Self {
            name: name.to_string(),
            mode,
            primary,
            standby,
            client: ApiClient::http(Duration::from_secs(10))?,
            replicators: Mutex::new(Vec::new()),
            positions: Mutex::new(None),
            failed_over: AtomicBool::new(false),
        };
        d.replicate([ReplicaPosition::default(); 2]);
        Ok(d)
    }

    fn replicate(&self, from: [ReplicaPosition; 2]) {
        let (p, s) = (&self.primary.table, &self.standby.table);
        *self.replicators.lock().unwrap_or_else(|e| e.into_inner()) = vec![
            Replicator::start_from(p.clone(), s.clone(), REPLICATION_INTERVAL, from[0]),
            Replicator::start_from(s.clone(), p.clone(), REPLICATION_INTERVAL, from[1]),
        ];
    }

    /// Stops replication both ways; returns where it had got to.
    fn stop_replication(&self) -> Option<[ReplicaPosition; 2]> {
        let reps = std::mem::take(&mut *self.replicators.lock().unwrap_or_else(|e| e.into_inner()));
        let mut it = reps.into_iter().map(Replicator::stop);
        Some([it.next()?, it.next()?])
    }

    async fn stop(&self) {
        self.stop_replication();
        self.primary.stop().await;
        self.standby.stop().await;
    }

    fn site(&self, region: &RegionName) -> Result<&Site> {
        [&self.primary, &self.standby]
            .into_iter()
            .find(|s| &s.region == region)
            .ok_or_else(|| Error::NotFound(format!("region {region} in the deployment {}", self.name)))
    }
}

#[async_trait]
impl Deployment for LocalDeployment {
    fn primary_region(&self) -> &RegionName {
        &self.primary.region
    }

    fn recovery_region(&self) -> &RegionName {
        &self.standby.region
    }

    fn client(&self) -> &ApiClient {
        &self.client
    }

    fn primary_endpoint(&self) -> ApiEndpoint {
        self.primary.endpoint.clone()
    }

    fn standby_endpoint(&self) -> ApiEndpoint {
        self.standby.endpoint.clone()
    }

    fn client_endpoint(&self) -> ApiEndpoint {
        if self.failed_over.load(Ordering::SeqCst) {
            self.standby.endpoint.clone()
        } else {
            self.primary.endpoint.clone()
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} on this machine: {} in {} and {}, replicating both ways, the API on {} and {} ({})",
            self.name,
            self.name,
            self.primary.region,
            self.standby.region,
            self.primary.endpoint.base,
            self.standby.endpoint.base,
            self.mode.name()
        )
    }

    async fn read(&self, region: &RegionName, ids: &[String]) -> Result<Vec<Product>> {
        let table = &self.site(region)?.table;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(p) = table.get(id).await? {
                out.push(p);
            }
        }
        Ok(out)
    }

    async fn lose_primary(&self) -> Result<()> {
        self.primary.set(false);
        let positions = self.stop_replication();
        *self.positions.lock().unwrap_or_else(|e| e.into_inner()) = positions;
        Ok(())
    }

    async fn failover(&self, _wait: &Waiter<'_>) -> Result<()> {
        self.standby.set(true);
        self.failed_over.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn failback(&self, wait: &Waiter<'_>) -> Result<()> {
        // The primary region is back: replication resumes where it stopped, both ways.
        let from = self.positions.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(from) = from {
            self.replicate(from);
        }
        self.primary.set(true);
        self.failed_over.store(false, Ordering::SeqCst);
        if self.mode == StandbyMode::PilotLight {
            self.standby.set(false);
        }
        // Caught up before clients write there again.
        wait.until(
            &format!("{} to catch up with {}", self.primary.region, self.standby.region),
            || async {
                let lag = {
                    let reps = self.replicators.lock().unwrap_or_else(|e| e.into_inner());
                    match reps.get(1) {
                        Some(r) => r.lag_us(&self.standby.table)?,
                        None => 0,
                    }
                };
                Ok(if lag == 0 {
                    Poll::Ready(())
                } else {
                    Poll::Pending(format!("{} behind", human(Duration::from_micros(lag))))
                })
            },
        )
        .await
    }
}
