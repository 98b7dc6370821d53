//! The drill on DynamoDB and AWS Backup, as they behave on a real account: tables
//! take a while to become ACTIVE, PITR can be refused right after a table is made and
//! its latest restorable time trails now by about five minutes, backups are CREATING
//! before AVAILABLE, AWS Backup jobs (backup, copy, restore) take minutes, a replica is
//! CREATING for a while, and a table can only be deleted once it leaves CREATING or
//! UPDATING. Every wait goes through the drill's [`Waiter`] (a limit, progress).
//!
//! The scheduled and cross-region methods go through AWS Backup: a backup job into
//! the plan's vault with the plan's role (what the daily rule does), a copy job to the
//! recovery region's vault, and a restore job there. DynamoDB's own
//! RestoreTableFromBackup cannot cross regions, and this code does not pretend it can.
//!
//! The drill works only on scratch tables it creates (`Product-drill-*`); the
//! production table is never touched.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_backup::types::{BackupJobState, CopyJobState, Lifecycle, RestoreJobStatus};
use aws_sdk_dynamodb::types::{
    BackupStatus, CreateReplicationGroupMemberAction, DeleteReplicationGroupMemberAction,
    PointInTimeRecoverySpecification, PointInTimeRecoveryStatus, PutRequest, ReplicaStatus,
    ReplicationGroupUpdate, TableStatus, WriteRequest,
};
use aws_smithy_types::DateTime;

use super::{
    BackupMethod, BackupMethodTag, BackupRef, Check, DrillBackend, Guarantees, Loss, Poll, Resource,
    TableRef, Waiter,
};
use crate::dynamodb::{DynamoTable, message, to_item};
use crate::product::Product;
use crate::region::RegionName;
use crate::store::{Error, ProductStore, Result, scan_all};

/// What AWS Backup needs for the scheduled and cross-region methods: the DR stack's
/// outputs (`--stack`), or the same values from the environment.
#[derive(Debug, Clone, Default)]
pub struct BackupSetup {
    /// The plan's vault in the primary region.
    pub primary_vault: Option<String>,
    /// The recovery region's vault (ARN).
    pub recovery_vault_arn: Option<String>,
    /// The role AWS Backup assumes (backup, copy, restore).
    pub role_arn: Option<String>,
    /// The backup plan whose rule the scheduled method checks.
    pub plan_id: Option<String>,
}

/// DynamoDB and AWS Backup clients for the two regions, and the clock.
#[derive(Clone)]
pub struct AwsBackend {
    primary: RegionName,
    dynamodb: HashMap<RegionName, aws_sdk_dynamodb::Client>,
    backup: HashMap<RegionName, aws_sdk_backup::Client>,
    setup: BackupSetup,
    guarantees: Guarantees,
    clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// Restore jobs started, by the table they create (so removing a table that does
    /// not exist yet waits for its job).
    restore_jobs: Arc<Mutex<HashMap<TableRef, String>>>,
}

impl std::fmt::Debug for AwsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsBackend")
            .field("regions", &self.dynamodb.keys().collect::<Vec<_>>())
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

/// Microseconds since the epoch, from the system clock.
pub fn system_clock() -> Arc<dyn Fn() -> u64 + Send + Sync> {
    Arc::new(crate::embedded::now_us)
}

fn sdk(what: impl Into<String>, message: String) -> Error {
    Error::storage(what, message)
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
    /// A backend over these clients (one per region, `primary` and the recovery one).
    pub fn new(
        primary: RegionName,
        dynamodb: HashMap<RegionName, aws_sdk_dynamodb::Client>,
        backup: HashMap<RegionName, aws_sdk_backup::Client>,
        setup: BackupSetup,
        clock: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> Self {
        Self {
            primary,
            dynamodb,
            backup,
            setup,
            guarantees: AWS_GUARANTEES,
            clock,
            restore_jobs: Arc::default(),
        }
    }

    /// Clients for `primary` and `recovery` from one SDK configuration (credentials
    /// and endpoint from the standard AWS environment).
    pub fn from_config(
        config: &aws_config::SdkConfig,
        primary: &RegionName,
        recovery: &RegionName,
        setup: BackupSetup,
    ) -> Self {
        let regions = [primary, recovery];
        let mut dynamodb = HashMap::new();
        let mut backup = HashMap::new();
        for r in regions {
            dynamodb.insert(
                (*r).clone(),
                crate::calls::dynamodb_client(config, Some(r.as_str())),
            );
            backup.insert(
                (*r).clone(),
                crate::calls::backup_client(config, Some(r.as_str())),
            );
        }
        Self::new(primary.clone(), dynamodb, backup, setup, system_clock())
    }

    /// The same backend with other guarantees (the emulator answers at once and
    /// restores exactly; tests use small margins there).
    pub fn with_guarantees(mut self, g: Guarantees) -> Self {
        self.guarantees = g;
        self
    }

    fn ddb(&self, region: &RegionName) -> Result<&aws_sdk_dynamodb::Client> {
        self.dynamodb
            .get(region)
            .ok_or_else(|| Error::InvalidInput(format!("no DynamoDB client for region {region}")))
    }

    fn bk(&self, region: &RegionName) -> Result<&aws_sdk_backup::Client> {
        self.backup
            .get(region)
            .ok_or_else(|| Error::InvalidInput(format!("no AWS Backup client for region {region}")))
    }

    fn need<'a>(&self, v: &'a Option<String>, what: &str, flag: &str) -> Result<&'a str> {
        v.as_deref().ok_or_else(|| {
            Error::InvalidInput(format!(
                "the scheduled and cross-region methods need {what}: pass --stack NAME (the deployed \
                 DisasterRecoveryStack) or {flag} (docs/dr.md)"
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
            Err(e) => Err(sdk(format!("describe {t}"), message(&e))),
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

    /// Deletes `t`, retrying while it is CREATING or UPDATING; gone is fine.
    async fn delete_table(&self, t: &TableRef, wait: &Waiter<'_>) -> Result<()> {
        let client = self.ddb(&t.region)?;
        wait.until(&format!("{t} to be deleted"), || async {
            match client.delete_table().table_name(&t.name).send().await {
                Ok(_) => Ok(Poll::Ready(())),
                Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(Poll::Ready(())),
                Err(e) if code(&e) == Some("ResourceInUseException") => {
                    Ok(Poll::Pending(format!("busy ({})", message(&e))))
                }
                Err(e) => Err(sdk(format!("delete {t}"), message(&e))),
            }
        })
        .await
    }

    async fn replica_regions(&self, t: &TableRef) -> Result<Vec<(RegionName, Option<ReplicaStatus>)>> {
        Ok(match self.describe(t).await? {
            None => Vec::new(),
            Some(d) => d
                .replicas()
                .iter()
                .filter_map(|r| {
                    let name: RegionName = r.region_name()?.parse().ok()?;
                    (name != t.region).then(|| (name, r.replica_status().cloned()))
                })
                .collect(),
        })
    }

    async fn remove_replica(&self, t: &TableRef, region: &RegionName, wait: &Waiter<'_>) -> Result<()> {
        let client = self.ddb(&t.region)?;
        wait.until(
            &format!("the replica of {} in {region} to be removed", t.name),
            || async {
                let replicas = self.replica_regions(t).await?;
                let Some((_, status)) = replicas.iter().find(|(r, _)| r == region) else {
                    return Ok(Poll::Ready(()));
                };
                if status.as_ref() != Some(&ReplicaStatus::Deleting) {
                    let r = client
                        .update_table()
                        .table_name(&t.name)
                        .replica_updates(
                            ReplicationGroupUpdate::builder()
                                .delete(
                                    DeleteReplicationGroupMemberAction::builder()
                                        .region_name(region.as_str())
                                        .build()
                                        .map_err(|e| Error::storage("replica removal", e))?,
                                )
                                .build(),
                        )
                        .send()
                        .await;
                    match r {
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                code(&e),
                                Some("ResourceInUseException" | "LimitExceededException")
                            ) => {}
                        Err(e) if code(&e) == Some("ResourceNotFoundException") => {
                            return Ok(Poll::Ready(()));
                        }
                        Err(e) => {
                            return Err(sdk(
                                format!("remove the replica of {} in {region}", t.name),
                                message(&e),
                            ));
                        }
                    }
                }
                Ok(Poll::Pending(format!(
                    "replica {}",
                    status.as_ref().map(|s| s.as_str()).unwrap_or("present")
                )))
            },
        )
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
                .map_err(|e| sdk(format!("describe restore job {job}"), message(&e)))?;
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
                .map_err(|e| sdk(format!("describe copy job {job}"), message(&e)))?;
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
                    Err(e) if code(&e) == Some("ContinuousBackupsUnavailableException") => {
                        Ok(Poll::Pending(format!("refused for now ({})", message(&e))))
                    }
                    Err(e) => Err(sdk(format!("enable PITR on {t}"), message(&e))),
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
            let mut pause = Duration::from_millis(50);
            for attempt in 0.. {
                let out = client
                    .batch_write_item()
                    .request_items(&t.name, requests)
                    .send()
                    .await
                    .map_err(|e| sdk(format!("seed {t}"), message(&e)))?;
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
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
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
            .map_err(|e| sdk(format!("describe the continuous backups of {t}"), message(&e)))?;
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
            .map_err(|e| sdk(format!("restore {t} to a point in time"), message(&e)))?;
        self.wait_active(target, wait).await
    }

    async fn backup(&self, t: &TableRef, how: BackupMethod, wait: &Waiter<'_>) -> Result<BackupRef> {
        match how {
            BackupMethod::OnDemand => {
                let client = self.ddb(&t.region)?;
                let out = client
                    .create_backup()
                    .table_name(&t.name)
                    .backup_name(format!("{}-drill", t.name))
                    .send()
                    .await
                    .map_err(|e| sdk(format!("back up {t}"), message(&e)))?;
                let arn = out
                    .backup_details()
                    .map(|d| d.backup_arn().to_string())
                    .ok_or_else(|| sdk(format!("back up {t}"), "no backup details in the answer".into()))?;
                let b = BackupRef {
                    region: t.region.clone(),
                    id: arn.clone(),
                    method: BackupMethodTag::OnDemand,
                    vault: None,
                };
                wait.cleanup.add(Resource::Backup(b.clone()));
                wait.until(&format!("backup {arn} to become AVAILABLE"), || async {
                    let d = client
                        .describe_backup()
                        .backup_arn(&arn)
                        .send()
                        .await
                        .map_err(|e| sdk(format!("describe backup {arn}"), message(&e)))?;
                    let status = d
                        .backup_description()
                        .and_then(|d| d.backup_details())
                        .map(|d| d.backup_status().clone());
                    match status {
                        Some(BackupStatus::Available) => Ok(Poll::Ready(())),
                        Some(BackupStatus::Deleted) => {
                            Err(sdk(format!("backup {arn}"), "it was deleted".into()))
                        }
                        s => Ok(Poll::Pending(
                            s.map(|s| s.as_str().to_string())
                                .unwrap_or_else(|| "CREATING".into()),
                        )),
                    }
                })
                .await?;
                Ok(b)
            }
            BackupMethod::Plan => {
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
                            message(&e),
                        )
                    })?;
                let job = out.backup_job_id().unwrap_or_default().to_string();
                let point = out.recovery_point_arn().map(str::to_string);
                if let Some(p) = &point {
                    wait.cleanup.add(Resource::Backup(BackupRef {
                        region: t.region.clone(),
                        id: p.clone(),
                        method: BackupMethodTag::Plan,
                        vault: Some(vault.clone()),
                    }));
                }
                let point = wait
                    .until(&format!("backup job {job} of {t}"), || async {
                        let d = client
                            .describe_backup_job()
                            .backup_job_id(&job)
                            .send()
                            .await
                            .map_err(|e| sdk(format!("describe backup job {job}"), message(&e)))?;
                        match d.state() {
                            Some(BackupJobState::Completed) => Ok(Poll::Ready(
                                d.recovery_point_arn()
                                    .map(str::to_string)
                                    .or_else(|| point.clone()),
                            )),
                            Some(
                                s @ (BackupJobState::Failed
                                | BackupJobState::Aborted
                                | BackupJobState::Expired),
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
                    .ok_or_else(|| {
                        sdk(
                            format!("backup job {job}"),
                            "completed without a recovery point".into(),
                        )
                    })?;
                let b = BackupRef {
                    region: t.region.clone(),
                    id: point,
                    method: BackupMethodTag::Plan,
                    vault: Some(vault),
                };
                wait.cleanup.add(Resource::Backup(b.clone()));
                Ok(b)
            }
        }
    }

    async fn copy_backup(&self, b: &BackupRef, region: &RegionName, wait: &Waiter<'_>) -> Result<BackupRef> {
        if b.method != BackupMethodTag::Plan {
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
        let client = self.bk(&b.region)?;
        let out = client
            .start_copy_job()
            .recovery_point_arn(&b.id)
            .source_backup_vault_name(b.vault.as_deref().unwrap_or_default())
            .destination_backup_vault_arn(dest)
            .iam_role_arn(role)
            .lifecycle(Lifecycle::builder().delete_after_days(1).build())
            .send()
            .await
            .map_err(|e| sdk(format!("copy recovery point {} to {dest}", b.id), message(&e)))?;
        let job = out.copy_job_id().unwrap_or_default().to_string();
        let pending = Resource::CopyJob {
            region: b.region.clone(),
            job_id: job.clone(),
        };
        wait.cleanup.add(pending.clone());
        let point = self.wait_copy_job(&b.region, &job, wait).await?.ok_or_else(|| {
            sdk(
                format!("copy job {job}"),
                "completed without a recovery point".into(),
            )
        })?;
        let copy = BackupRef {
            region: region.clone(),
            id: point,
            method: BackupMethodTag::Plan,
            vault: Some(dest_vault),
        };
        wait.cleanup.add(Resource::Backup(copy.clone()));
        wait.cleanup.forget(&pending);
        Ok(copy)
    }

    async fn restore_backup(&self, b: &BackupRef, target: &TableRef, wait: &Waiter<'_>) -> Result<()> {
        match b.method {
            BackupMethodTag::OnDemand => {
                self.ddb(&b.region)?
                    .restore_table_from_backup()
                    .target_table_name(&target.name)
                    .backup_arn(&b.id)
                    .send()
                    .await
                    .map_err(|e| sdk(format!("restore backup {} into {target}", b.id), message(&e)))?;
            }
            BackupMethodTag::Plan => {
                let role = self.need(&self.setup.role_arn, "the backup role", "--backup-role-arn")?;
                let out = self
                    .bk(&b.region)?
                    .start_restore_job()
                    .recovery_point_arn(&b.id)
                    .iam_role_arn(role)
                    .resource_type("DynamoDB")
                    .metadata("targetTableName", &target.name)
                    .send()
                    .await
                    .map_err(|e| {
                        sdk(
                            format!("start a restore job of {} into {target}", b.id),
                            message(&e),
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

    async fn add_replica(&self, t: &TableRef, region: &RegionName, wait: &Waiter<'_>) -> Result<TableRef> {
        wait.cleanup.add(Resource::Replica {
            table: t.clone(),
            region: region.clone(),
        });
        self.ddb(&t.region)?
            .update_table()
            .table_name(&t.name)
            .replica_updates(
                ReplicationGroupUpdate::builder()
                    .create(
                        CreateReplicationGroupMemberAction::builder()
                            .region_name(region.as_str())
                            .build()
                            .map_err(|e| Error::storage("replica", e))?,
                    )
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk(format!("add a replica of {t} in {region}"), message(&e)))?;
        wait.until(
            &format!("the replica of {} in {region} to become ACTIVE", t.name),
            || async {
                let replicas = self.replica_regions(t).await?;
                Ok(match replicas.iter().find(|(r, _)| r == region) {
                    Some((_, Some(ReplicaStatus::Active))) => Poll::Ready(()),
                    Some((_, s)) => {
                        Poll::Pending(s.as_ref().map(|s| s.as_str()).unwrap_or("CREATING").to_string())
                    }
                    None => Poll::Pending("not listed yet".into()),
                })
            },
        )
        .await?;
        let replica = TableRef::new(region, &t.name);
        // Caught up: the seed has reached the replica.
        let primary_count = self.scan(t).await?.len();
        wait.until(&format!("the replica in {region} to catch up"), || async {
            let n = self.scan(&replica).await?.len();
            Ok(if n >= primary_count {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{n} of {primary_count} items"))
            })
        })
        .await?;
        Ok(replica)
    }

    async fn lose(&self, t: &TableRef, loss: Loss) -> Result<()> {
        match loss {
            Loss::Table => {
                match self
                    .ddb(&t.region)?
                    .delete_table()
                    .table_name(&t.name)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(()),
                    Err(e) => Err(sdk(format!("delete {t} (the disaster)"), message(&e))),
                }
            }
            // A drill cannot take a region down: the writer has stopped, and the
            // replica is judged by what it held at that instant.
            Loss::Region => Ok(()),
        }
    }

    async fn plan_checks(&self, _t: &TableRef, _wait: &Waiter<'_>) -> Result<Vec<Check>> {
        let Some(plan_id) = &self.setup.plan_id else {
            return Ok(vec![Check::new(
                "backup plan",
                false,
                "no backup plan to check: pass --stack NAME (the deployed DisasterRecoveryStack) or --backup-plan-id",
            )]);
        };
        let out = self
            .bk(&self.primary)?
            .get_backup_plan()
            .backup_plan_id(plan_id)
            .send()
            .await
            .map_err(|e| sdk(format!("read backup plan {plan_id}"), message(&e)))?;
        let rules = out.backup_plan().map(|p| p.rules()).unwrap_or_default();
        let mut checks = vec![Check::new(
            "one backup rule",
            rules.len() == 1,
            format!("plan {plan_id} has {} rules", rules.len()),
        )];
        if let Some(rule) = rules.first() {
            let schedule = rule.schedule_expression().unwrap_or_default();
            checks.push(Check::new(
                "daily at 09:10 UTC",
                schedule == "cron(10 9 * * ? *)",
                format!("schedule {schedule}"),
            ));
            let days = rule.lifecycle().and_then(|l| l.delete_after_days());
            checks.push(Check::new(
                "30-day retention",
                days == Some(30),
                format!("recovery points deleted after {days:?} days"),
            ));
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
            checks.push(Check::new(
                "copied to the recovery region",
                copies.len() == 1 && Some(copies[0]) == self.setup.recovery_vault_arn.as_deref(),
                format!("copy actions to {copies:?}, expected {want}"),
            ));
        }
        Ok(checks)
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
                if let Some(job) = job {
                    let region = t.region.clone();
                    // A failed job created nothing; that is fine here.
                    let _ = self.wait_restore_job(&region, &job, wait).await;
                }
                for (region, _) in self.replica_regions(t).await? {
                    self.remove_replica(t, &region, wait).await?;
                }
                self.delete_table(t, wait).await
            }
            Resource::Replica { table, region } => self.remove_replica(table, region, wait).await,
            Resource::Backup(b) => match b.method {
                BackupMethodTag::OnDemand => {
                    let client = self.ddb(&b.region)?;
                    wait.until(&format!("backup {} to be deleted", b.id), || async {
                        match client.delete_backup().backup_arn(&b.id).send().await {
                            Ok(_) => Ok(Poll::Ready(())),
                            Err(e) if code(&e) == Some("BackupNotFoundException") => Ok(Poll::Ready(())),
                            Err(e) if code(&e) == Some("BackupInUseException") => {
                                Ok(Poll::Pending(format!("in use ({})", message(&e))))
                            }
                            Err(e) => Err(sdk(format!("delete backup {}", b.id), message(&e))),
                        }
                    })
                    .await
                }
                BackupMethodTag::Plan => {
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
                                Ok(Poll::Pending(format!("busy ({})", message(&e))))
                            }
                            Err(e) => Err(sdk(format!("delete recovery point {}", b.id), message(&e))),
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
                                        method: BackupMethodTag::Plan,
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
                    Ok(None) | Err(_) => Ok(()),
                }
            }
        }
    }
}
