//! AWS Backup's operations on the simulated account.

use aws_sdk_backup::Client;
use aws_sdk_backup::operation::{
    delete_recovery_point::DeleteRecoveryPointOutput, describe_backup_job::DescribeBackupJobOutput,
    describe_copy_job::DescribeCopyJobOutput, describe_restore_job::DescribeRestoreJobOutput,
    get_backup_plan::GetBackupPlanOutput,
    list_recovery_points_by_backup_vault::ListRecoveryPointsByBackupVaultOutput,
    start_backup_job::StartBackupJobOutput, start_copy_job::StartCopyJobOutput,
    start_restore_job::StartRestoreJobOutput,
};
use aws_sdk_backup::types::{
    BackupJobState, BackupPlan, BackupRule, CopyAction, CopyJob, CopyJobState, Lifecycle,
    RecoveryPointByBackupVault, RecoveryPointStatus, RestoreJobStatus,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};

use super::account::{ACCOUNT, Account, Job, MIN_US, RecoveryPoint, SEC_US, refuse};
use super::{FakeAws, Rules, date, rest_error, retries};

fn unknown_role(a: &Account, role: Option<&str>) -> bool {
    role != Some(a.names.role_arn.as_str())
}

impl FakeAws {
    /// An AWS Backup client of the account in `region`.
    pub(super) fn backup_client(&self, region: &str) -> Client {
        let mut rules = Rules::new(self, region, rest_error);
        rules.answer(mock!(Client::start_backup_job), |a, now, region, req| {
            if let Some(id) = a.started_before("StartBackupJob", region, req.idempotency_token()) {
                let point = a
                    .backup_jobs
                    .get(&id)
                    .map(|j| j.output.clone())
                    .unwrap_or_default();
                return Ok(StartBackupJobOutput::builder()
                    .backup_job_id(id)
                    .recovery_point_arn(point)
                    .build());
            }
            let vault = req.backup_vault_name().unwrap_or_default();
            let table_arn = req.resource_arn().unwrap_or_default().to_string();
            if vault != a.names.primary_vault || *region != a.names.primary {
                refuse(
                    "ResourceNotFoundException",
                    format!("Backup vault {vault} not found in {region}"),
                )
            } else if unknown_role(a, req.iam_role_arn()) {
                refuse("InvalidParameterValueException", "unknown role")
            } else if !a.tables.values().any(|t| t.arn == table_arn) {
                refuse(
                    "InvalidParameterValueException",
                    format!("no resource {table_arn}"),
                )
            } else {
                let id = a.next_id();
                let point = format!("arn:aws:backup:{region}:{ACCOUNT}:recovery-point:{id}");
                a.points.insert(
                    point.clone(),
                    RecoveryPoint {
                        region: region.clone(),
                        vault: vault.to_string(),
                        source_arn: table_arn.clone(),
                        as_of_us: now + 30 * SEC_US,
                        created_us: now,
                        completed_us: now + 5 * MIN_US,
                        by_plan: false,
                    },
                );
                let mut job = Job::new(region, now, 5 * MIN_US, table_arn, point.clone(), String::new());
                // Its point exists from the start (PARTIAL until the job ends).
                job.settled = true;
                a.backup_jobs.insert(id.clone(), job);
                a.started("StartBackupJob", region, req.idempotency_token(), &id);
                Ok(StartBackupJobOutput::builder()
                    .backup_job_id(id)
                    .recovery_point_arn(point)
                    .creation_date(date(now))
                    .build())
            }
        });
        rules.answer(mock!(Client::describe_backup_job), |a, now, _region, req| {
            let id = req.backup_job_id().unwrap_or_default();
            match a.backup_jobs.get(id) {
                None => refuse("ResourceNotFoundException", format!("no backup job {id}")),
                Some(j) => {
                    let state = if now < j.started_us + 30 * SEC_US {
                        BackupJobState::Created
                    } else if now < j.done_us {
                        BackupJobState::Running
                    } else {
                        BackupJobState::Completed
                    };
                    Ok(DescribeBackupJobOutput::builder()
                        .backup_job_id(id)
                        .state(state)
                        .recovery_point_arn(&j.output)
                        .build())
                }
            }
        });
        rules.answer(mock!(Client::start_copy_job), |a, now, region, req| {
            a.settle(now);
            if let Some(id) = a.started_before("StartCopyJob", region, req.idempotency_token()) {
                return Ok(StartCopyJobOutput::builder().copy_job_id(id).build());
            }
            let point = req.recovery_point_arn().unwrap_or_default().to_string();
            let dest = req.destination_backup_vault_arn().unwrap_or_default();
            let dest_region = dest.split(':').nth(3).unwrap_or_default().to_string();
            match a.points.get(&point) {
                Some(p) if p.region == *region && now < p.completed_us => {
                    refuse("InvalidRequestException", "the recovery point is not completed")
                }
                Some(p) if p.region == *region => {
                    if unknown_role(a, req.iam_role_arn()) {
                        return refuse("InvalidParameterValueException", "unknown role");
                    }
                    let id = a.next_id();
                    let output = format!("arn:aws:backup:{dest_region}:{ACCOUNT}:recovery-point:{id}");
                    a.copy_jobs.insert(
                        id.clone(),
                        Job::new(
                            region,
                            now,
                            a.faults.slow_jobs.map_or(10 * MIN_US, |d| d.as_micros() as u64),
                            point,
                            output,
                            dest_region,
                        ),
                    );
                    a.started("StartCopyJob", region, req.idempotency_token(), &id);
                    Ok(StartCopyJobOutput::builder()
                        .copy_job_id(id)
                        .creation_date(date(now))
                        .build())
                }
                _ => refuse(
                    "ResourceNotFoundException",
                    format!("no recovery point {point} in {region}"),
                ),
            }
        });
        rules.answer(mock!(Client::describe_copy_job), |a, now, _region, req| {
            a.settle(now);
            let id = req.copy_job_id().unwrap_or_default();
            match a.copy_jobs.get(id) {
                None => refuse("ResourceNotFoundException", format!("no copy job {id}")),
                Some(j) => {
                    let done = now >= j.done_us;
                    let mut job = CopyJob::builder()
                        .copy_job_id(id)
                        .source_recovery_point_arn(&j.source)
                        .state(if done {
                            CopyJobState::Completed
                        } else {
                            CopyJobState::Running
                        });
                    if done {
                        job = job.destination_recovery_point_arn(&j.output);
                    }
                    Ok(DescribeCopyJobOutput::builder().copy_job(job.build()).build())
                }
            }
        });
        rules.answer(mock!(Client::start_restore_job), |a, now, region, req| {
            a.settle(now);
            a.run_plan(now);
            if let Some(id) = a.started_before("StartRestoreJob", region, req.idempotency_token()) {
                return Ok(StartRestoreJobOutput::builder().restore_job_id(id).build());
            }
            let point = req.recovery_point_arn().unwrap_or_default().to_string();
            let target = req
                .metadata()
                .and_then(|m| m.get("targetTableName"))
                .cloned()
                .unwrap_or_default();
            if unknown_role(a, req.iam_role_arn()) {
                refuse("InvalidParameterValueException", "unknown role")
            } else if a
                .points
                .get(&point)
                .is_none_or(|p| p.region != *region || now < p.completed_us)
            {
                refuse(
                    "ResourceNotFoundException",
                    format!("no completed recovery point {point} in {region}"),
                )
            } else if target.is_empty() || a.table(region, &target).is_some() {
                refuse("InvalidRequestException", format!("bad target table {target:?}"))
            } else {
                let id = a.next_id();
                let failed = a.faults.fail_restore_jobs;
                let takes = match a.faults.slow_jobs {
                    Some(d) if !failed => d.as_micros() as u64,
                    _ => (if failed { 5 } else { 20 }) * MIN_US,
                };
                let mut job = Job::new(region, now, takes, point, String::new(), target);
                job.failed = failed;
                a.restore_jobs.insert(id.clone(), job);
                a.started("StartRestoreJob", region, req.idempotency_token(), &id);
                Ok(StartRestoreJobOutput::builder().restore_job_id(id).build())
            }
        });
        rules.answer(mock!(Client::describe_restore_job), |a, now, _region, req| {
            a.settle(now);
            let id = req.restore_job_id().unwrap_or_default();
            match a.restore_jobs.get(id) {
                None => refuse("ResourceNotFoundException", format!("no restore job {id}")),
                Some(j) => {
                    let (status, message) = if now < j.done_us {
                        (RestoreJobStatus::Running, None)
                    } else if j.failed {
                        (
                            RestoreJobStatus::Failed,
                            Some("Access denied to the KMS key of the vault"),
                        )
                    } else {
                        (RestoreJobStatus::Completed, None)
                    };
                    let pct =
                        (now.saturating_sub(j.started_us) * 100 / (j.done_us - j.started_us).max(1)).min(100);
                    Ok(DescribeRestoreJobOutput::builder()
                        .restore_job_id(id)
                        .status(status)
                        .set_status_message(message.map(str::to_string))
                        .percent_done(format!("{pct}%"))
                        .build())
                }
            }
        });
        rules.answer(mock!(Client::delete_recovery_point), |a, now, region, req| {
            a.settle(now);
            let point = req.recovery_point_arn().unwrap_or_default().to_string();
            let vault = req.backup_vault_name().unwrap_or_default();
            if !a
                .points
                .get(&point)
                .is_some_and(|p| p.region == *region && p.vault == vault)
            {
                refuse(
                    "ResourceNotFoundException",
                    format!("no recovery point {point} in vault {vault} in {region}"),
                )
            } else if a.point_busy(&point, now) {
                refuse(
                    "InvalidResourceStateException",
                    "the recovery point is in use by a job",
                )
            } else {
                a.points.remove(&point);
                Ok(DeleteRecoveryPointOutput::builder().build())
            }
        });
        rules.answer(mock!(Client::get_backup_plan), |a, _now, _region, req| {
            if req.backup_plan_id() != Some(a.names.plan.as_str()) {
                return refuse("ResourceNotFoundException", "no such plan");
            }
            let lifecycle = || Lifecycle::builder().delete_after_days(30).build();
            let rule = BackupRule::builder()
                .rule_name("daily")
                .target_backup_vault_name(&a.names.primary_vault)
                .schedule_expression("cron(10 9 * * ? *)")
                .lifecycle(lifecycle())
                .copy_actions(
                    CopyAction::builder()
                        .destination_backup_vault_arn(Account::vault_arn(
                            &a.names.recovery,
                            &a.names.recovery_vault,
                        ))
                        .lifecycle(lifecycle())
                        .build()
                        .unwrap_or_else(|_| unreachable!()),
                )
                .build()
                .unwrap_or_else(|_| unreachable!());
            Ok(GetBackupPlanOutput::builder()
                .backup_plan(
                    BackupPlan::builder()
                        .backup_plan_name("tandem-dr")
                        .rules(rule)
                        .build()
                        .unwrap_or_else(|_| unreachable!()),
                )
                .build())
        });
        rules.answer(
            mock!(Client::list_recovery_points_by_backup_vault),
            |a, now, region, req| {
                a.settle(now);
                a.run_plan(now);
                let vault = req.backup_vault_name().unwrap_or_default();
                let after = req
                    .by_created_after()
                    .map(|d| (d.as_secs_f64() * 1e6) as u64)
                    .unwrap_or(0);
                let by_plan = req.by_backup_plan_id();
                let by_resource = req.by_resource_arn();
                let plan = a.names.plan.clone();
                let points: Vec<RecoveryPointByBackupVault> = a
                    .points
                    .iter()
                    .filter(|(_, p)| p.region == *region && p.vault == vault && p.created_us >= after)
                    .filter(|(_, p)| by_plan.is_none_or(|id| p.by_plan && id == plan))
                    .filter(|(_, p)| by_resource.is_none_or(|arn| arn == p.source_arn))
                    .map(|(arn, p)| {
                        RecoveryPointByBackupVault::builder()
                            .recovery_point_arn(arn)
                            .backup_vault_name(&p.vault)
                            .resource_arn(&p.source_arn)
                            .creation_date(date(p.created_us))
                            .status(if now < p.completed_us {
                                RecoveryPointStatus::Partial
                            } else {
                                RecoveryPointStatus::Completed
                            })
                            .build()
                    })
                    .collect();
                Ok(ListRecoveryPointsByBackupVaultOutput::builder()
                    .set_recovery_points(Some(points))
                    .build())
            },
        );
        mock_client!(aws_sdk_backup, RuleMode::MatchAny, &rules.done(), |c| c
            .interceptor(self.recorder("tandem dr-drill", crate::calls::backup))
            .region(aws_sdk_backup::config::Region::new(region.to_string()))
            .retry_config(retries!(aws_sdk_backup)))
    }
}
