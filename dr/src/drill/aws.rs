//! The drill on DynamoDB and AWS Backup, as they behave on a real account: tables
//! take a while to become ACTIVE, PITR can be refused right after a table is made and
//! its latest restorable time trails now by about five minutes, backups are CREATING
//! before AVAILABLE, AWS Backup jobs (backup, copy, restore) take minutes, and a table
//! can only be deleted once it leaves CREATING or UPDATING. Every wait goes through
//! the drill's [`Waiter`] (a limit, progress).
//!
//! The restore methods work on scratch tables they create (`Product-drill-*`), except
//! `scheduled`, which restores the plan's own newest recovery point of the served
//! table and a point-in-time copy of it (both into scratch tables: the served table
//! is only read from). The failover methods drill the deployed stacks: the primary's
//! API and the standby's, over the served table and its replica, through the switch
//! of [`crate::standby`] (`tandem dr failover`); the items they write through the API
//! are deleted through it afterwards.
//!
//! DynamoDB's own RestoreTableFromBackup cannot cross regions, and this code does not
//! pretend it can: the cross-region method copies a recovery point with AWS Backup.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_backup::types::{BackupJobState, CopyJobState, Lifecycle, RecoveryPointStatus, RestoreJobStatus};
use aws_sdk_dynamodb::types::{
    AttributeValue, BackupStatus, KeysAndAttributes, PointInTimeRecoverySpecification,
    PointInTimeRecoveryStatus, PutRequest, TableStatus, WriteRequest,
};
use aws_smithy_types::DateTime;
use tandem_sdk::ServiceError;

use super::backend::{BackupKind, BackupRef, DrillBackend, Guarantees, PlanSource, RecoveryPoint, TableRef};
use super::check::{Check, CheckKind};
use super::cleanup::Resource;
use super::client::{ApiClient, ApiEndpoint, HttpTransport, Transport};
use super::failover::{Deployment, StandbyMode};
use super::wait::{Poll, Waiter};
use crate::dynamodb::{DynamoTable, from_item, to_item};
use crate::product::Product;
use crate::region::RegionName;
use crate::standby::{Standby, SwitchClients};
use crate::store::{BoxError, Error, ProductStore, Result, scan_all};

/// The deployed standby region, as the standby stack's outputs name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedStandby {
    /// The switch's side: region, mode, function, health check.
    pub standby: Standby,
    /// The primary's API (its stage URL).
    pub primary_api: String,
    /// The standby's API (its stage URL).
    pub standby_api: String,
    /// The name clients use, when the deployment has a hosted zone: it follows the
    /// failover.
    pub client_url: Option<String>,
    /// The secret holding the API key (the same value in both regions).
    pub api_key_secret: String,
}

/// What the deployed stacks provide: the DR stack's outputs (`--stack`), or the
/// restore methods' part of them from flags.
#[derive(Debug, Clone, Default)]
pub struct AwsSetup {
    /// The stack's own table, global, backed up by the plan (the scheduled method
    /// restores its plan's backups, the failover methods read its replica).
    pub table: Option<String>,
    /// The table the primary's API serves when it is not `table` (a restored one
    /// named by `tandem:servedTable`): the failover methods refuse, since it has no
    /// replica.
    pub served_table: Option<String>,
    /// The usage plan's requests a second per key (the stack's `ApiRatePerSecond`),
    /// which paces the failover methods' requests ([`api_pace`]).
    pub api_rate: Option<u32>,
    /// The plan's vault in the primary region.
    pub primary_vault: Option<String>,
    /// The recovery region's vault (ARN).
    pub recovery_vault_arn: Option<String>,
    /// The role AWS Backup assumes (backup, copy, restore).
    pub role_arn: Option<String>,
    /// The backup plan.
    pub plan_id: Option<String>,
    /// The standby region's stack (the failover methods).
    pub standby: Option<DeployedStandby>,
}

/// The SDK clients the drill uses.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// DynamoDB per region (primary and recovery).
    pub dynamodb: HashMap<RegionName, aws_sdk_dynamodb::Client>,
    /// AWS Backup per region.
    pub backup: HashMap<RegionName, aws_sdk_backup::Client>,
    /// The standby's switch (Lambda in the recovery region, Route 53).
    pub switch: SwitchClients,
    /// Secrets Manager in the recovery region (the API key's replica).
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl AwsClients {
    /// Clients for `primary` and `recovery` from one SDK configuration (credentials
    /// and endpoint from the standard AWS environment).
    pub fn from_config(config: &aws_config::SdkConfig, primary: &RegionName, recovery: &RegionName) -> Self {
        let mut dynamodb = HashMap::new();
        let mut backup = HashMap::new();
        for r in [primary, recovery] {
            dynamodb.insert(r.clone(), crate::calls::dynamodb_client(config, Some(r.as_str())));
            backup.insert(r.clone(), crate::calls::backup_client(config, Some(r.as_str())));
        }
        Self {
            dynamodb,
            backup,
            switch: SwitchClients::new(config, recovery),
            secrets: crate::calls::secrets_client(config, Some(recovery.as_str())),
        }
    }
}

/// DynamoDB, AWS Backup and the deployed stacks, and the clock.
#[derive(Clone)]
pub struct AwsBackend {
    primary: RegionName,
    clients: AwsClients,
    setup: AwsSetup,
    guarantees: Guarantees,
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    transport: Arc<dyn Transport>,
    /// Restore jobs started, by the table they create (so removing a table that does
    /// not exist yet waits for its job).
    restore_jobs: Arc<Mutex<HashMap<TableRef, String>>>,
    deployment: Arc<Mutex<Option<Arc<AwsDeployment>>>>,
    /// The point-in-time recovery window the scratch tables get, in days.
    pitr_window_days: u32,
}

impl std::fmt::Debug for AwsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsBackend")
            .field("regions", &self.clients.dynamodb.keys().collect::<Vec<_>>())
            .field("setup", &self.setup)
            .finish()
    }
}

/// What a real account promises: a backup holds writes from up to about a minute
/// around its request; PITR is judged with a few seconds of margin for clock skew;
/// canaries every 200 ms; polls from 5 s up to a minute.
pub const AWS_GUARANTEES: Guarantees = Guarantees {
    backup_fuzz: Duration::from_secs(60),
    pitr_margin: Duration::from_secs(5),
    canary_interval: Duration::from_millis(200),
    canary_run: Duration::from_secs(10),
    poll: Duration::from_secs(5),
    max_poll: Duration::from_secs(60),
};

/// The API's rate per key when the stack does not say (`tandem:apiRatePerSecond`'s
/// default).
pub const DEFAULT_API_RATE: u32 = 50;

/// The drill's pace against the deployed APIs, whose usage plan allows `rate`
/// requests a second per key. It calls with the clients' own key, so it shares that
/// key's plan with every client: it takes an eighth of it (one request every 160 ms
/// at the default 50) and leaves the rest to them, and so stays far under the web
/// ACL's per-address rule (five minutes of the plan's rate; AWS WAF's "Rate-based
/// rule statement"). A 429 that still comes (the clients took the rest) is sent
/// again.
pub fn api_pace(rate: u32) -> Duration {
    Duration::from_secs_f64(8.0 / f64::from(rate.max(1)))
}

/// The id part of a recovery point ARN (`…:recovery-point:ID`), or the whole
/// string when it has no colon: what an idempotency token can be built from.
fn point_id(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

/// Microseconds since the epoch, from the system clock.
pub fn system_clock() -> Arc<dyn Fn() -> u64 + Send + Sync> {
    Arc::new(crate::embedded::now_us)
}

fn sdk(what: impl Into<String>, e: impl Into<BoxError>) -> Error {
    Error::storage(what, e)
}

fn to_us(d: &DateTime) -> u64 {
    (d.as_secs_f64() * 1e6).max(0.0) as u64
}

fn from_us(us: u64) -> DateTime {
    DateTime::from(UNIX_EPOCH + Duration::from_micros(us))
}

fn code<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    e: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> Option<&str> {
    e.as_service_error().and_then(|s| s.code())
}

impl AwsBackend {
    /// A backend over `clients` with the deployment `setup`, over HTTPS.
    pub fn new(
        primary: RegionName,
        clients: AwsClients,
        setup: AwsSetup,
        clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> Result<Self> {
        Ok(Self::with_transport(
            primary,
            clients,
            setup,
            clock,
            Arc::new(HttpTransport::new()?),
        ))
    }

    /// [`AwsBackend::new`] reaching the APIs through `transport`.
    pub fn with_transport(
        primary: RegionName,
        clients: AwsClients,
        setup: AwsSetup,
        clock: Arc<dyn Fn() -> u64 + Send + Sync>,
        transport: Arc<dyn Transport>,
    ) -> Self {
        Self {
            primary,
            clients,
            setup,
            guarantees: AWS_GUARANTEES,
            clock,
            transport,
            restore_jobs: Arc::default(),
            deployment: Arc::default(),
            pitr_window_days: 35,
        }
    }

    /// The same backend giving its scratch tables a point-in-time recovery window
    /// of `days` (DynamoDB's RecoveryPeriodInDays, 1 to 35; 35 when not set).
    pub fn with_pitr_window(mut self, days: u32) -> Self {
        self.pitr_window_days = days;
        self
    }

    /// The same backend with other guarantees (the emulator answers at once and
    /// restores exactly; tests use small margins there).
    pub fn with_guarantees(mut self, g: Guarantees) -> Self {
        self.guarantees = g;
        self
    }

    fn ddb(&self, region: &RegionName) -> Result<&aws_sdk_dynamodb::Client> {
        self.clients
            .dynamodb
            .get(region)
            .ok_or_else(|| Error::InvalidInput(format!("no DynamoDB client for region {region}")))
    }

    fn bk(&self, region: &RegionName) -> Result<&aws_sdk_backup::Client> {
        self.clients
            .backup
            .get(region)
            .ok_or_else(|| Error::InvalidInput(format!("no AWS Backup client for region {region}")))
    }

    fn need<'a>(&self, v: &'a Option<String>, what: &str, flag: &str) -> Result<&'a str> {
        v.as_deref().ok_or_else(|| {
            Error::InvalidInput(format!(
                "this method needs {what}: pass --stack NAME (the deployed DisasterRecoveryStack) or {flag} (docs/dr.md)"
            ))
        })
    }

    async fn describe(&self, t: &TableRef) -> Result<Option<aws_sdk_dynamodb::types::TableDescription>> {
        match self
            .ddb(&t.region)?
            .describe_table()
            .table_name(&t.name)
            .send()
            .await
        {
            Ok(d) => Ok(d.table().cloned()),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(sdk(format!("describe {t}"), ServiceError::from(e))),
        }
    }

    async fn wait_active(&self, t: &TableRef, wait: &Waiter<'_>) -> Result<()> {
        wait.until(&format!("{t} to become ACTIVE"), || async {
            Ok(match self.describe(t).await? {
                Some(d) if d.table_status() == Some(&TableStatus::Active) => Poll::Ready(()),
                Some(d) => Poll::Pending(
                    d.table_status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                ),
                None => Poll::Pending("not created yet".into()),
            })
        })
        .await
    }

    async fn table_arn(&self, t: &TableRef) -> Result<String> {
        self.describe(t)
            .await?
            .and_then(|d| d.table_arn().map(str::to_string))
            .ok_or_else(|| Error::NotFound(format!("{t}")))
    }

    /// Switches point-in-time recovery off on `t` before it is deleted: DynamoDB
    /// keeps a SYSTEM backup for 35 days of a table deleted with it on, which the
    /// drill would leave behind. `Ok(false)`: not now (PITR is still being enabled);
    /// a table that is gone is fine.
    async fn pitr_off(&self, t: &TableRef) -> Result<bool> {
        let spec = PointInTimeRecoverySpecification::builder()
            .point_in_time_recovery_enabled(false)
            .build()
            .map_err(|e| Error::storage("PITR specification", e))?;
        match self
            .ddb(&t.region)?
            .update_continuous_backups()
            .table_name(&t.name)
            .point_in_time_recovery_specification(spec)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    code(&e),
                    Some("TableNotFoundException" | "ResourceNotFoundException")
                ) =>
            {
                Ok(true)
            }
            Err(e)
                if matches!(
                    code(&e),
                    Some("ContinuousBackupsUnavailableException" | "ResourceInUseException")
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk(
                format!("switch point-in-time recovery off on {t}"),
                ServiceError::from(e),
            )),
        }
    }

    /// Deletes `t` (point-in-time recovery off first, so no SYSTEM backup is kept),
    /// retrying while it is CREATING or UPDATING; gone is fine.
    async fn drop_table(&self, t: &TableRef, wait: &Waiter<'_>) -> Result<()> {
        let client = self.ddb(&t.region)?;
        wait.until(&format!("{t} to be deleted"), || async {
            if !self.pitr_off(t).await? {
                return Ok(Poll::Pending(
                    "point-in-time recovery still being switched".into(),
                ));
            }
            match client.delete_table().table_name(&t.name).send().await {
                Ok(_) => Ok(Poll::Ready(())),
                Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(Poll::Ready(())),
                Err(e) if code(&e) == Some("ResourceInUseException") => {
                    Ok(Poll::Pending(format!("busy ({})", tandem_sdk::sdk_message(&e))))
                }
                Err(e) => Err(sdk(format!("delete {t}"), ServiceError::from(e))),
            }
        })
        .await
    }

    async fn wait_restore_job(&self, region: &RegionName, job: &str, wait: &Waiter<'_>) -> Result<()> {
        let client = self.bk(region)?;
        wait.until(&format!("restore job {job} in {region}"), || async {
            let d = client
                .describe_restore_job()
                .restore_job_id(job)
                .send()
                .await
                .map_err(|e| sdk(format!("describe restore job {job}"), ServiceError::from(e)))?;
            match d.status() {
                Some(RestoreJobStatus::Completed) => Ok(Poll::Ready(())),
                Some(s @ (RestoreJobStatus::Failed | RestoreJobStatus::Aborted)) => Err(sdk(
                    format!("restore job {job}"),
                    format!("{}: {}", s.as_str(), d.status_message().unwrap_or("no message")),
                )),
                s => Ok(Poll::Pending(format!(
                    "{}{}",
                    s.map(|s| s.as_str()).unwrap_or("PENDING"),
                    d.percent_done()
                        .map(|p| format!(", {p} done"))
                        .unwrap_or_default()
                ))),
            }
        })
        .await
    }

    async fn wait_copy_job(
        &self,
        region: &RegionName,
        job: &str,
        wait: &Waiter<'_>,
    ) -> Result<Option<String>> {
        let client = self.bk(region)?;
        wait.until(&format!("copy job {job} in {region}"), || async {
            let d = client
                .describe_copy_job()
                .copy_job_id(job)
                .send()
                .await
                .map_err(|e| sdk(format!("describe copy job {job}"), ServiceError::from(e)))?;
            let j = d.copy_job();
            match j.and_then(|j| j.state()) {
                Some(CopyJobState::Completed) => Ok(Poll::Ready(
                    j.and_then(|j| j.destination_recovery_point_arn())
                        .map(str::to_string),
                )),
                Some(CopyJobState::Failed) => Err(sdk(
                    format!("copy job {job}"),
                    format!(
                        "FAILED: {}",
                        j.and_then(|j| j.status_message()).unwrap_or("no message")
                    ),
                )),
                s => Ok(Poll::Pending(
                    s.map(|s| s.as_str()).unwrap_or("CREATED").to_string(),
                )),
            }
        })
        .await
    }

    /// A copy job's state now.
    async fn copy_job_state(&self, region: &RegionName, job: &str) -> Result<Option<CopyJobState>> {
        let d = self
            .bk(region)?
            .describe_copy_job()
            .copy_job_id(job)
            .send()
            .await
            .map_err(|e| sdk(format!("describe copy job {job}"), ServiceError::from(e)))?;
        Ok(d.copy_job().and_then(|j| j.state()).cloned())
    }

    /// A restore job's status now.
    async fn restore_job_status(&self, region: &RegionName, job: &str) -> Result<Option<RestoreJobStatus>> {
        let d = self
            .bk(region)?
            .describe_restore_job()
            .restore_job_id(job)
            .send()
            .await
            .map_err(|e| sdk(format!("describe restore job {job}"), ServiceError::from(e)))?;
        Ok(d.status().cloned())
    }

    fn vault_region_of(arn: &str) -> Option<(RegionName, String)> {
        // arn:aws:backup:REGION:ACCOUNT:backup-vault:NAME
        let parts: Vec<&str> = arn.split(':').collect();
        match parts.as_slice() {
            [_, _, "backup", region, _, "backup-vault", name] => {
                Some((region.parse().ok()?, name.to_string()))
            }
            _ => None,
        }
    }

    async fn on_demand_backup(&self, t: &TableRef, wait: &Waiter<'_>) -> Result<BackupRef> {
        let client = self.ddb(&t.region)?;
        let out = client
            .create_backup()
            .table_name(&t.name)
            .backup_name(format!("{}-drill", t.name))
            .send()
            .await
            .map_err(|e| sdk(format!("back up {t}"), ServiceError::from(e)))?;
        let arn = out
            .backup_details()
            .map(|d| d.backup_arn().to_string())
            .ok_or_else(|| sdk(format!("back up {t}"), "no backup details in the answer"))?;
        let b = BackupRef {
            region: t.region.clone(),
            id: arn.clone(),
            kind: BackupKind::OnDemand,
            vault: None,
        };
        wait.cleanup.add(Resource::Backup(b.clone()));
        wait.until(&format!("backup {arn} to become AVAILABLE"), || async {
            let d = client
                .describe_backup()
                .backup_arn(&arn)
                .send()
                .await
                .map_err(|e| sdk(format!("describe backup {arn}"), ServiceError::from(e)))?;
            let status = d
                .backup_description()
                .and_then(|d| d.backup_details())
                .map(|d| d.backup_status().clone());
            match status {
                Some(BackupStatus::Available) => Ok(Poll::Ready(())),
                Some(BackupStatus::Deleted) => Err(sdk(format!("backup {arn}"), "it was deleted")),
                s => Ok(Poll::Pending(
                    s.map(|s| s.as_str().to_string())
                        .unwrap_or_else(|| "CREATING".into()),
                )),
            }
        })
        .await?;
        Ok(b)
    }

    async fn backup_job(&self, t: &TableRef, wait: &Waiter<'_>) -> Result<BackupRef> {
        let vault = self
            .need(
                &self.setup.primary_vault,
                "the plan's backup vault",
                "--backup-vault",
            )?
            .to_string();
        let role = self.need(&self.setup.role_arn, "the backup role", "--backup-role-arn")?;
        let client = self.bk(&t.region)?;
        let arn = self.table_arn(t).await?;
        let out = client
            .start_backup_job()
            .backup_vault_name(&vault)
            .resource_arn(&arn)
            .iam_role_arn(role)
            .idempotency_token(format!("{}-drill", t.name))
            .lifecycle(Lifecycle::builder().delete_after_days(1).build())
            .send()
            .await
            .map_err(|e| {
                sdk(
                    format!("start a backup job of {t} into vault {vault}"),
                    ServiceError::from(e),
                )
            })?;
        let job = out.backup_job_id().unwrap_or_default().to_string();
        let point = out.recovery_point_arn().map(str::to_string);
        let registered = |id: String| BackupRef {
            region: t.region.clone(),
            id,
            kind: BackupKind::Scheduled,
            vault: Some(vault.clone()),
        };
        if let Some(p) = &point {
            wait.cleanup.add(Resource::Backup(registered(p.clone())));
        }
        let point = wait
            .until(&format!("backup job {job} of {t}"), || async {
                let d = client
                    .describe_backup_job()
                    .backup_job_id(&job)
                    .send()
                    .await
                    .map_err(|e| sdk(format!("describe backup job {job}"), ServiceError::from(e)))?;
                match d.state() {
                    Some(BackupJobState::Completed) => Ok(Poll::Ready(
                        d.recovery_point_arn()
                            .map(str::to_string)
                            .or_else(|| point.clone()),
                    )),
                    Some(
                        s @ (BackupJobState::Failed | BackupJobState::Aborted | BackupJobState::Expired),
                    ) => Err(sdk(
                        format!("backup job {job}"),
                        format!("{}: {}", s.as_str(), d.status_message().unwrap_or("no message")),
                    )),
                    s => Ok(Poll::Pending(
                        s.map(|s| s.as_str()).unwrap_or("CREATED").to_string(),
                    )),
                }
            })
            .await?
            .ok_or_else(|| sdk(format!("backup job {job}"), "completed without a recovery point"))?;
        let b = registered(point);
        wait.cleanup.add(Resource::Backup(b.clone()));
        Ok(b)
    }

    fn current(&self) -> Option<Arc<AwsDeployment>> {
        self.deployment.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The API key, from its secret's replica in the recovery region.
    async fn api_key(&self, secret: &str) -> Result<String> {
        let out = self
            .clients
            .secrets
            .get_secret_value()
            .secret_id(secret)
            .send()
            .await
            .map_err(|e| {
                sdk(
                    format!("read the API key from secret {secret}"),
                    ServiceError::from(e),
                )
            })?;
        out.secret_string()
            .map(str::to_string)
            .ok_or_else(|| Error::InvalidInput(format!("secret {secret} holds no string")))
    }
}

#[async_trait]
impl DrillBackend for AwsBackend {
    fn name(&self) -> &'static str {
        "dynamodb"
    }

    fn guarantees(&self) -> Guarantees {
        self.guarantees
    }

    fn now_us(&self) -> u64 {
        (self.clock)()
    }

    async fn create_table(&self, t: &TableRef, pitr: bool, wait: &Waiter<'_>) -> Result<()> {
        let client = self.ddb(&t.region)?;
        DynamoTable::create(client.clone(), &t.name).await?;
        self.wait_active(t, wait).await?;
        if pitr {
            // Enabling PITR right after CreateTable can be refused for a while.
            wait.until(&format!("point-in-time recovery on {t}"), || async {
                let r = client
                    .update_continuous_backups()
                    .table_name(&t.name)
                    .point_in_time_recovery_specification(
                        PointInTimeRecoverySpecification::builder()
                            .point_in_time_recovery_enabled(true)
                            .recovery_period_in_days(i32::try_from(self.pitr_window_days).unwrap_or(35))
                            .build()
                            .map_err(|e| Error::storage("PITR specification", e))?,
                    )
                    .send()
                    .await;
                match r {
                    Ok(out) => {
                        let status = out
                            .continuous_backups_description()
                            .and_then(|d| d.point_in_time_recovery_description())
                            .and_then(|d| d.point_in_time_recovery_status());
                        Ok(if status == Some(&PointInTimeRecoveryStatus::Enabled) {
                            Poll::Ready(())
                        } else {
                            Poll::Pending(
                                status
                                    .map(|s| s.as_str().to_string())
                                    .unwrap_or_else(|| "ENABLING".into()),
                            )
                        })
                    }
                    Err(e) if code(&e) == Some("ContinuousBackupsUnavailableException") => Ok(Poll::Pending(
                        format!("refused for now ({})", tandem_sdk::sdk_message(&e)),
                    )),
                    Err(e) => Err(sdk(format!("enable PITR on {t}"), ServiceError::from(e))),
                }
            })
            .await?;
        }
        Ok(())
    }

    fn store(&self, t: &TableRef) -> Result<Arc<dyn ProductStore>> {
        Ok(Arc::new(DynamoTable::new(self.ddb(&t.region)?.clone(), &t.name)))
    }

    async fn load(&self, t: &TableRef, items: &[Product]) -> Result<()> {
        let client = self.ddb(&t.region)?;
        for chunk in items.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|p| {
                    PutRequest::builder()
                        .set_item(Some(to_item(p)))
                        .build()
                        .map(|put| WriteRequest::builder().put_request(put).build())
                        .map_err(|e| Error::storage("build put", e))
                })
                .collect::<Result<_>>()?;
            // Unprocessed items (throttling inside a batch) are sent again, backing off.
            let mut backoff = super::wait::Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
            for attempt in 0.. {
                let out = client
                    .batch_write_item()
                    .request_items(&t.name, requests)
                    .send()
                    .await
                    .map_err(|e| sdk(format!("seed {t}"), ServiceError::from(e)))?;
                requests = out
                    .unprocessed_items()
                    .and_then(|m| m.get(&t.name))
                    .cloned()
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                if attempt == 20 {
                    return Err(sdk(
                        format!("seed {t}"),
                        format!("{} items stayed unprocessed", requests.len()),
                    ));
                }
                backoff.sleep().await;
            }
        }
        Ok(())
    }

    async fn scan(&self, t: &TableRef) -> Result<Vec<Product>> {
        scan_all(&DynamoTable::new(self.ddb(&t.region)?.clone(), &t.name)).await
    }

    async fn latest_restorable_us(&self, t: &TableRef) -> Result<u64> {
        let out = self
            .ddb(&t.region)?
            .describe_continuous_backups()
            .table_name(&t.name)
            .send()
            .await
            .map_err(|e| {
                sdk(
                    format!("describe the continuous backups of {t}"),
                    ServiceError::from(e),
                )
            })?;
        out.continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|d| d.latest_restorable_date_time())
            .map(to_us)
            .ok_or_else(|| Error::InvalidInput(format!("{t} reports no latest restorable time: is PITR on?")))
    }

    async fn restore_to_time(
        &self,
        t: &TableRef,
        at_us: u64,
        target: &TableRef,
        wait: &Waiter<'_>,
    ) -> Result<()> {
        self.ddb(&t.region)?
            .restore_table_to_point_in_time()
            .source_table_name(&t.name)
            .target_table_name(&target.name)
            .restore_date_time(from_us(at_us))
            .send()
            .await
            .map_err(|e| sdk(format!("restore {t} to a point in time"), ServiceError::from(e)))?;
        self.wait_active(target, wait).await
    }

    async fn backup(&self, t: &TableRef, kind: BackupKind, wait: &Waiter<'_>) -> Result<BackupRef> {
        match kind {
            BackupKind::OnDemand => self.on_demand_backup(t, wait).await,
            BackupKind::Scheduled => self.backup_job(t, wait).await,
        }
    }

    async fn copy_backup(&self, b: &BackupRef, region: &RegionName, wait: &Waiter<'_>) -> Result<BackupRef> {
        if b.kind != BackupKind::Scheduled {
            return Err(Error::InvalidInput(
                "only AWS Backup recovery points can be copied to another region".into(),
            ));
        }
        let dest = self.need(
            &self.setup.recovery_vault_arn,
            "the recovery region's vault",
            "--recovery-vault-arn",
        )?;
        let (dest_region, dest_vault) = Self::vault_region_of(dest)
            .ok_or_else(|| Error::InvalidInput(format!("{dest:?} is not a backup vault ARN")))?;
        if &dest_region != region {
            return Err(Error::InvalidInput(format!(
                "the recovery vault {dest} is in {dest_region}, not in the recovery region {region}"
            )));
        }
        let role = self.need(&self.setup.role_arn, "the backup role", "--backup-role-arn")?;
        let out = self
            .bk(&b.region)?
            .start_copy_job()
            .recovery_point_arn(&b.id)
            .source_backup_vault_name(b.vault.as_deref().unwrap_or_default())
            .destination_backup_vault_arn(dest)
            .iam_role_arn(role)
            .lifecycle(Lifecycle::builder().delete_after_days(1).build())
            // A call the SDK sends again (a lost answer) starts one job, not two.
            .idempotency_token(format!("tandem-drill-copy-{}", point_id(&b.id)))
            .send()
            .await
            .map_err(|e| {
                sdk(
                    format!("copy recovery point {} to {dest}", b.id),
                    ServiceError::from(e),
                )
            })?;
        let job = out.copy_job_id().unwrap_or_default().to_string();
        let pending = Resource::CopyJob {
            region: b.region.clone(),
            job_id: job.clone(),
        };
        wait.cleanup.add(pending.clone());
        let point = self
            .wait_copy_job(&b.region, &job, wait)
            .await?
            .ok_or_else(|| sdk(format!("copy job {job}"), "completed without a recovery point"))?;
        let copy = BackupRef {
            region: region.clone(),
            id: point,
            kind: BackupKind::Scheduled,
            vault: Some(dest_vault),
        };
        wait.cleanup.add(Resource::Backup(copy.clone()));
        wait.cleanup.forget(&pending);
        Ok(copy)
    }

    async fn restore_backup(&self, b: &BackupRef, target: &TableRef, wait: &Waiter<'_>) -> Result<()> {
        match b.kind {
            BackupKind::OnDemand => {
                self.ddb(&b.region)?
                    .restore_table_from_backup()
                    .target_table_name(&target.name)
                    .backup_arn(&b.id)
                    .send()
                    .await
                    .map_err(|e| {
                        sdk(
                            format!("restore backup {} into {target}", b.id),
                            ServiceError::from(e),
                        )
                    })?;
            }
            BackupKind::Scheduled => {
                let role = self.need(&self.setup.role_arn, "the backup role", "--backup-role-arn")?;
                let out = self
                    .bk(&b.region)?
                    .start_restore_job()
                    .recovery_point_arn(&b.id)
                    .iam_role_arn(role)
                    .resource_type("DynamoDB")
                    .metadata("targetTableName", &target.name)
                    .idempotency_token(format!("tandem-drill-restore-{}", target.name))
                    .send()
                    .await
                    .map_err(|e| {
                        sdk(
                            format!("start a restore job of {} into {target}", b.id),
                            ServiceError::from(e),
                        )
                    })?;
                let job = out.restore_job_id().unwrap_or_default().to_string();
                self.restore_jobs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(target.clone(), job.clone());
                self.wait_restore_job(&b.region, &job, wait).await?;
            }
        }
        self.wait_active(target, wait).await
    }

    async fn delete_table(&self, t: &TableRef) -> Result<()> {
        // The disaster loses the table; DynamoDB would keep a SYSTEM backup of it for
        // 35 days were PITR on (the backup methods restore from their own backup).
        if !self.pitr_off(t).await? {
            return Err(Error::storage(
                format!("delete {t} (the disaster)"),
                "point-in-time recovery is still being switched on it; try the drill again",
            ));
        }
        match self
            .ddb(&t.region)?
            .delete_table()
            .table_name(&t.name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(()),
            Err(e) => Err(sdk(format!("delete {t} (the disaster)"), ServiceError::from(e))),
        }
    }

    async fn plan_source(&self, _seed: &[Product], _wait: &Waiter<'_>) -> Result<PlanSource> {
        let table = self.need(&self.setup.table, "the served table", "--stack")?;
        let plan = self.need(&self.setup.plan_id, "the backup plan", "--backup-plan-id")?;
        let vault = self.need(
            &self.setup.primary_vault,
            "the plan's backup vault",
            "--backup-vault",
        )?;
        Ok(PlanSource {
            table: TableRef::new(&self.primary, table),
            plan: plan.to_string(),
            vault: vault.to_string(),
            schedule: "cron(10 9 * * ? *), kept 30 days".into(),
        })
    }

    async fn plan_recovery_points(&self, source: &PlanSource, since_us: u64) -> Result<Vec<RecoveryPoint>> {
        let arn = self.table_arn(&source.table).await?;
        let client = self.bk(&source.table.region)?;
        let mut points = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = client
                .list_recovery_points_by_backup_vault()
                .backup_vault_name(&source.vault)
                .by_backup_plan_id(&source.plan)
                .by_resource_arn(&arn)
                .by_created_after(from_us(since_us))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    sdk(
                        format!(
                            "list the recovery points of plan {} in vault {}",
                            source.plan, source.vault
                        ),
                        ServiceError::from(e),
                    )
                })?;
            for p in out.recovery_points() {
                let (Some(id), Some(created)) = (p.recovery_point_arn(), p.creation_date()) else {
                    continue;
                };
                // A finished recovery point is COMPLETED, or AVAILABLE in AWS Backup's
                // newer status vocabulary (the RecoveryPointByBackupVault reference);
                // PARTIAL, EXPIRED, STOPPED and the rest cannot be restored whole.
                if !matches!(
                    p.status(),
                    Some(RecoveryPointStatus::Completed | RecoveryPointStatus::Available)
                ) {
                    continue;
                }
                points.push(RecoveryPoint {
                    backup: BackupRef {
                        region: source.table.region.clone(),
                        id: id.to_string(),
                        kind: BackupKind::Scheduled,
                        vault: Some(source.vault.clone()),
                    },
                    created_us: to_us(created),
                });
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        points.sort_by_key(|p| std::cmp::Reverse(p.created_us));
        Ok(points)
    }

    async fn plan_checks(&self, source: &PlanSource, _wait: &Waiter<'_>) -> Result<Vec<Check>> {
        let out = self
            .bk(&self.primary)?
            .get_backup_plan()
            .backup_plan_id(&source.plan)
            .send()
            .await
            .map_err(|e| sdk(format!("read backup plan {}", source.plan), ServiceError::from(e)))?;
        let rules = out.backup_plan().map(|p| p.rules()).unwrap_or_default();
        let Some(rule) = rules.first() else {
            return Ok(vec![Check::new(
                CheckKind::PlanSchedule,
                false,
                format!("plan {} has no rule", source.plan),
            )]);
        };
        let schedule = rule.schedule_expression().unwrap_or_default();
        let days = rule.lifecycle().and_then(|l| l.delete_after_days());
        let copies: Vec<&str> = rule
            .copy_actions()
            .iter()
            .map(|c| c.destination_backup_vault_arn())
            .collect();
        let want = self
            .setup
            .recovery_vault_arn
            .as_deref()
            .unwrap_or("the recovery vault");
        Ok(vec![
            Check::new(
                CheckKind::PlanSchedule,
                rules.len() == 1 && schedule == "cron(10 9 * * ? *)",
                format!(
                    "{} rule(s); schedule {schedule} (daily at 09:10 UTC expected)",
                    rules.len()
                ),
            ),
            Check::new(
                CheckKind::PlanRetention,
                days == Some(30),
                format!("recovery points deleted after {days:?} days (30 expected)"),
            ),
            Check::new(
                CheckKind::PlanCopy,
                copies.len() == 1 && Some(copies[0]) == self.setup.recovery_vault_arn.as_deref(),
                format!("copy actions to {copies:?}, expected {want}"),
            ),
        ])
    }

    async fn deployment(&self, mode: StandbyMode, _wait: &Waiter<'_>) -> Result<Arc<dyn Deployment>> {
        let s = self.setup.standby.as_ref().ok_or_else(|| {
            Error::InvalidInput(
                "the failover methods drill the deployed standby: pass --stack NAME (the DisasterRecoveryStack whose standby stack is deployed)".into(),
            )
        })?;
        if s.standby.mode != mode {
            return Err(Error::InvalidInput(format!(
                "the deployed standby in {} is a {}, not a {}: drill {}, or deploy with -c tandem:standby={}",
                s.standby.region,
                s.standby.mode.name(),
                mode.name(),
                s.standby.mode.name(),
                mode.name()
            )));
        }
        let table = self.need(&self.setup.table, "the served table", "--stack")?;
        if let Some(served) = &self.setup.served_table {
            return Err(Error::InvalidInput(format!(
                "the primary's API serves {served} (tandem:servedTable), not the global table {table}: {served} has no replica in {}, so there is nothing to fail over to; copy its items back into {table} and redeploy without tandem:servedTable (docs/dr.md)",
                s.standby.region
            )));
        }
        let key = self.api_key(&s.api_key_secret).await?;
        let primary = self.primary.clone();
        let d = Arc::new(AwsDeployment {
            primary_region: primary.clone(),
            standby: s.clone(),
            table: table.to_string(),
            key,
            client: ApiClient::new(self.transport.clone(), Duration::from_secs(30))
                .paced(api_pace(self.setup.api_rate.unwrap_or(DEFAULT_API_RATE))),
            tables: [
                (primary.clone(), self.ddb(&primary)?.clone()),
                (s.standby.region.clone(), self.ddb(&s.standby.region)?.clone()),
            ],
            switch: self.clients.switch.clone(),
            failed_over: AtomicBool::new(false),
        });
        *self.deployment.lock().unwrap_or_else(|e| e.into_inner()) = Some(d.clone());
        Ok(d)
    }

    async fn remove(&self, r: &Resource, wait: &Waiter<'_>) -> Result<()> {
        match r {
            Resource::Table(t) => {
                // A restore job still running will create the table: let it finish.
                let job = self
                    .restore_jobs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(t)
                    .cloned();
                if let Some(job) = job
                    && let Err(e) = self.wait_restore_job(&t.region, &job, wait).await
                {
                    // A failed job created nothing; one still running will create the
                    // table after the drill is gone: say so instead of calling it removed.
                    let status = self.restore_job_status(&t.region, &job).await?;
                    if !matches!(status, Some(RestoreJobStatus::Failed | RestoreJobStatus::Aborted)) {
                        return Err(Error::storage(
                            format!("restore job {job} into {t}"),
                            format!(
                                "still {} ({e}): it will create {t}; delete the table once the job ends",
                                status.as_ref().map_or("running", |s| s.as_str())
                            ),
                        ));
                    }
                }
                self.drop_table(t, wait).await
            }
            Resource::Backup(b) => match b.kind {
                BackupKind::OnDemand => {
                    let client = self.ddb(&b.region)?;
                    wait.until(&format!("backup {} to be deleted", b.id), || async {
                        match client.delete_backup().backup_arn(&b.id).send().await {
                            Ok(_) => Ok(Poll::Ready(())),
                            Err(e) if code(&e) == Some("BackupNotFoundException") => Ok(Poll::Ready(())),
                            Err(e) if code(&e) == Some("BackupInUseException") => {
                                Ok(Poll::Pending(format!("in use ({})", tandem_sdk::sdk_message(&e))))
                            }
                            Err(e) => Err(sdk(format!("delete backup {}", b.id), ServiceError::from(e))),
                        }
                    })
                    .await
                }
                BackupKind::Scheduled => {
                    let client = self.bk(&b.region)?;
                    let vault = b.vault.clone().unwrap_or_default();
                    wait.until(&format!("recovery point {} to be deleted", b.id), || async {
                        match client
                            .delete_recovery_point()
                            .backup_vault_name(&vault)
                            .recovery_point_arn(&b.id)
                            .send()
                            .await
                        {
                            Ok(_) => Ok(Poll::Ready(())),
                            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(Poll::Ready(())),
                            Err(e) if code(&e) == Some("InvalidResourceStateException") => {
                                Ok(Poll::Pending(format!("busy ({})", tandem_sdk::sdk_message(&e))))
                            }
                            Err(e) => Err(sdk(
                                format!("delete recovery point {}", b.id),
                                ServiceError::from(e),
                            )),
                        }
                    })
                    .await
                }
            },
            Resource::CopyJob { region, job_id } => {
                // Let the copy finish (a copy cannot be stopped), then delete what it made.
                match self.wait_copy_job(region, job_id, wait).await {
                    Ok(Some(point)) => {
                        let dest = self
                            .setup
                            .recovery_vault_arn
                            .as_deref()
                            .and_then(Self::vault_region_of);
                        match dest {
                            Some((dest_region, vault)) => {
                                self.remove(
                                    &Resource::Backup(BackupRef {
                                        region: dest_region,
                                        id: point,
                                        kind: BackupKind::Scheduled,
                                        vault: Some(vault),
                                    }),
                                    wait,
                                )
                                .await
                            }
                            None => Err(Error::InvalidInput(format!(
                                "copy job {job_id} made {point}, but the recovery vault is unknown"
                            ))),
                        }
                    }
                    Ok(None) => Ok(()),
                    // A failed copy made nothing; one still running makes its point after
                    // the drill is gone: say so instead of calling it removed.
                    Err(e) => {
                        let state = self.copy_job_state(region, job_id).await?;
                        if matches!(state, Some(CopyJobState::Failed)) {
                            Ok(())
                        } else {
                            Err(Error::storage(
                                format!("copy job {job_id} in {region}"),
                                format!(
                                    "still {} ({e}): the recovery point it makes in the recovery vault expires a day after it is made (its lifecycle), or delete it once the job completes",
                                    state.as_ref().map_or("running", |s| s.as_str())
                                ),
                            ))
                        }
                    }
                }
            }
            // The deployed stacks are not the drill's to remove.
            Resource::Deployment { .. } => Ok(()),
            Resource::ApiItem { .. } | Resource::Failover { .. } => {
                let d = self.current();
                super::failover::undo(d.as_deref().map(|d| d as &dyn Deployment), r, wait).await
            }
        }
    }
}

/// The deployed stacks as the failover methods drill them.
#[derive(Debug)]
pub struct AwsDeployment {
    primary_region: RegionName,
    standby: DeployedStandby,
    table: String,
    key: String,
    client: ApiClient,
    /// DynamoDB in the primary and the recovery region.
    tables: [(RegionName, aws_sdk_dynamodb::Client); 2],
    switch: SwitchClients,
    failed_over: AtomicBool,
}

impl AwsDeployment {
    fn endpoint(&self, label: String, url: &str) -> ApiEndpoint {
        ApiEndpoint::new(label, url, Some(self.key.clone()))
    }
}

#[async_trait]
impl Deployment for AwsDeployment {
    fn primary_region(&self) -> &RegionName {
        &self.primary_region
    }

    fn recovery_region(&self) -> &RegionName {
        &self.standby.standby.region
    }

    fn client(&self) -> &ApiClient {
        &self.client
    }

    fn primary_endpoint(&self) -> ApiEndpoint {
        self.endpoint(
            format!("the primary's API in {}", self.primary_region),
            &self.standby.primary_api,
        )
    }

    fn standby_endpoint(&self) -> ApiEndpoint {
        self.endpoint(
            format!("the standby's API in {}", self.standby.standby.region),
            &self.standby.standby_api,
        )
    }

    fn client_endpoint(&self) -> ApiEndpoint {
        match &self.standby.client_url {
            Some(url) => self.endpoint(format!("the clients' name {url}"), url),
            None if self.failed_over.load(Ordering::SeqCst) => self.standby_endpoint(),
            None => self.primary_endpoint(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "the deployed stacks: {} served in {} and, as a {}, in {}{}",
            self.table,
            self.primary_region,
            self.standby.standby.mode.name(),
            self.standby.standby.region,
            match &self.standby.client_url {
                Some(u) => format!("; clients use {u} (Route 53 failover)"),
                None => "; clients switch URLs (no hosted zone)".into(),
            }
        )
    }

    async fn read(&self, region: &RegionName, ids: &[String]) -> Result<Vec<Product>> {
        let client = &self
            .tables
            .iter()
            .find(|(r, _)| r == region)
            .ok_or_else(|| Error::NotFound(format!("region {region} in the deployment")))?
            .1;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(100) {
            let keys: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|id| HashMap::from([("product_id".to_string(), AttributeValue::S(id.clone()))]))
                .collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| Error::storage("build a batch read", e))?,
            );
            let mut backoff = super::wait::Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
            while let Some(req) = request.take() {
                let got = client
                    .batch_get_item()
                    .request_items(&self.table, req)
                    .send()
                    .await
                    .map_err(|e| sdk(format!("read {} in {region}", self.table), ServiceError::from(e)))?;
                if let Some(items) = got.responses().and_then(|r| r.get(&self.table)) {
                    for i in items {
                        out.push(from_item(&self.table, i)?);
                    }
                }
                // Keys DynamoDB did not get to (throttling): asked again.
                request = got
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .filter(|k| !k.keys().is_empty())
                    .cloned();
                if request.is_some() {
                    backoff.sleep().await;
                }
            }
        }
        Ok(out)
    }

    async fn lose_primary(&self) -> Result<()> {
        // A drill cannot take a region down: the disaster is declared, the writer has
        // stopped, and the replica is judged by what it held at that instant.
        Ok(())
    }

    async fn failover(&self, wait: &Waiter<'_>) -> Result<()> {
        for line in crate::standby::failover(&self.switch, &self.standby.standby, wait).await? {
            (wait.say)(line);
        }
        self.failed_over.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn failback(&self, wait: &Waiter<'_>) -> Result<()> {
        for line in crate::standby::failback(&self.switch, &self.standby.standby, wait).await? {
            (wait.say)(line);
        }
        self.failed_over.store(false, Ordering::SeqCst);
        Ok(())
    }
}
