//! The post-backup handler: what runs after the scheduled backup of the product
//! table (the original just took another backup). It checks that today's backup by
//! the tandem plan exists and is complete, and that its copy to the recovery region's
//! vault exists, expires the plan's recovery points past retention, and reports.
//!
//! The copy has one maker: the plan's copy action. This function never starts one
//! (two makers would race and copy twice); a backup that completed more than
//! [`COPY_GRACE`] ago without a copy job is a failure. When a check fails the
//! invocation fails ([`outcome`]): Lambda counts an error, which the stack alarms on,
//! and sends the event to the failure destination (the stack's alert topic).
//!
//! Only recovery points the plan made, in the plan's vault, are looked at: a backup
//! someone took by hand is never deleted by this function.

use aws_sdk_backup::Client;
use aws_sdk_backup::primitives::DateTime;
use aws_sdk_backup::types::{CopyJobState, RecoveryPointByBackupVault, RecoveryPointStatus};
use serde::Serialize;
use tandem_dr::backup::last_scheduled_slot;

/// The handler's configuration, read once from the environment.
///
/// - `TABLE_ARN`: the DynamoDB table whose recovery points are checked (required);
/// - `BACKUP_PLAN_ID`: the plan whose recovery points are considered (required);
/// - `SOURCE_VAULT_NAME`: the plan's vault (required);
/// - `DESTINATION_VAULT_ARN`: the backup vault in the second region (required);
/// - `RETENTION_DAYS`: recovery points older than this are deleted (default 30).
#[derive(Debug, Clone)]
pub struct Config {
    /// Table ARN.
    pub table_arn: String,
    /// The tandem backup plan.
    pub backup_plan_id: String,
    /// The plan's vault.
    pub source_vault_name: String,
    /// Vault in the second region.
    pub destination_vault_arn: String,
    /// Retention in days.
    pub retention_days: u32,
}

impl Config {
    /// Reads the variables above, naming the one that is missing or bad.
    pub fn from_env() -> Result<Self, String> {
        let get = |k: &str| match std::env::var(k) {
            Ok(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(format!("{k} is not set: the function needs it")),
        };
        let retention_days = match std::env::var("RETENTION_DAYS") {
            Err(_) => 30,
            Ok(v) => v
                .parse()
                .ok()
                .filter(|d| (1..=36_500).contains(d))
                .ok_or_else(|| format!("RETENTION_DAYS {v:?} is not a number of days from 1 to 36500"))?,
        };
        Ok(Self {
            table_arn: get("TABLE_ARN")?,
            backup_plan_id: get("BACKUP_PLAN_ID")?,
            source_vault_name: get("SOURCE_VAULT_NAME")?,
            destination_vault_arn: get("DESTINATION_VAULT_ARN")?,
            retention_days,
        })
    }
}

/// How long after today's backup completed its copy job may still be missing: the
/// plan's copy action starts it when the backup completes, and AWS Backup lists it
/// within minutes.
pub const COPY_GRACE_US: u64 = 3_600_000_000;

/// What the handler found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostBackupReport {
    /// True when today's backup exists and is complete, its copy exists (or may
    /// still be on its way, within [`COPY_GRACE_US`] of the backup's completion),
    /// and every expired point was deleted.
    pub ok: bool,
    /// Today's recovery point, if there is one.
    pub todays_backup: Option<String>,
    /// Its status.
    pub status: Option<String>,
    /// The copy job of today's backup to the recovery vault (the plan's).
    pub copy_job_id: Option<String>,
    /// No copy job yet, but the backup completed less than [`COPY_GRACE_US`] ago:
    /// the next run (the daily one) looks again.
    pub copy_pending: bool,
    /// Recovery points deleted for being past retention.
    pub expired: Vec<String>,
    /// What is wrong, for the alarm.
    pub problems: Vec<String>,
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

fn to_us(d: Option<&DateTime>) -> u64 {
    d.map(|d| d.as_secs_f64() * 1e6).unwrap_or(0.0).max(0.0) as u64
}

fn from_us(us: u64) -> DateTime {
    DateTime::from_secs((us / 1_000_000) as i64)
}

/// The plan's recovery points of the table in its vault, all pages.
async fn plan_points(client: &Client, config: &Config) -> Result<Vec<RecoveryPointByBackupVault>, String> {
    let mut points = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_recovery_points_by_backup_vault()
            .backup_vault_name(&config.source_vault_name)
            .by_resource_arn(&config.table_arn)
            .by_backup_plan_id(&config.backup_plan_id)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| {
                err(
                    &format!(
                        "listing the recovery points in vault {}",
                        config.source_vault_name
                    ),
                    aws_sdk_backup::error::DisplayErrorContext(e),
                )
            })?;
        points.extend(page.recovery_points().iter().cloned());
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    // The filters are the service's; this keeps the promise whatever it returns.
    points.retain(|p| {
        p.resource_arn().is_none_or(|r| r == config.table_arn)
            && p.created_by()
                .and_then(|c| c.backup_plan_id())
                .is_some_and(|id| id == config.backup_plan_id)
    });
    Ok(points)
}

/// A copy job of `point` to the destination vault that is under way or done.
async fn existing_copy(
    client: &Client,
    config: &Config,
    point: &str,
    since_us: u64,
) -> Result<Option<String>, String> {
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_copy_jobs()
            .by_resource_arn(&config.table_arn)
            .by_destination_vault_arn(&config.destination_vault_arn)
            .by_created_after(from_us(since_us))
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| err("listing copy jobs", aws_sdk_backup::error::DisplayErrorContext(e)))?;
        let found = page.copy_jobs().iter().find(|j| {
            j.source_recovery_point_arn() == Some(point)
                && j.destination_backup_vault_arn() == Some(config.destination_vault_arn.as_str())
                && matches!(
                    j.state(),
                    Some(CopyJobState::Created | CopyJobState::Running | CopyJobState::Completed)
                )
        });
        if let Some(j) = found {
            return Ok(Some(j.copy_job_id().unwrap_or_default().to_string()));
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(None),
        }
    }
}

/// Runs the checks at `now_us` (µs since the epoch).
pub async fn handle(client: &Client, config: &Config, now_us: u64) -> Result<PostBackupReport, String> {
    let points = plan_points(client, config).await?;
    let created_us = |p: &RecoveryPointByBackupVault| to_us(p.creation_date());
    let slot = last_scheduled_slot(now_us);
    let mut problems = Vec::new();
    let today = points
        .iter()
        .filter(|p| created_us(p) >= slot)
        .max_by_key(|p| created_us(p));
    let mut report = PostBackupReport {
        ok: false,
        todays_backup: today.and_then(|p| p.recovery_point_arn().map(String::from)),
        status: today.and_then(|p| p.status().map(|s| s.as_str().to_string())),
        copy_job_id: None,
        copy_pending: false,
        expired: Vec::new(),
        problems: Vec::new(),
    };
    match today {
        None => problems.push(format!(
            "no backup of {} by plan {} since today's scheduled time ({} µs, cron(10 9 * * ? *))",
            config.table_arn, config.backup_plan_id, slot
        )),
        // A finished point is COMPLETED, or AVAILABLE in AWS Backup's newer status
        // vocabulary ("the backup was successfully created", DescribeRecoveryPoint).
        Some(p)
            if !matches!(
                p.status(),
                Some(RecoveryPointStatus::Completed | RecoveryPointStatus::Available)
            ) =>
        {
            problems.push(format!(
                "today's backup {} is not complete (status {}{})",
                p.recovery_point_arn().unwrap_or("?"),
                p.status().map(|s| s.as_str()).unwrap_or("unknown"),
                p.status_message().map(|m| format!(": {m}")).unwrap_or_default()
            ))
        }
        Some(p) => {
            let arn = p.recovery_point_arn().unwrap_or_default();
            match existing_copy(client, config, arn, slot).await {
                Err(e) => problems.push(e),
                Ok(Some(job)) => report.copy_job_id = Some(job),
                Ok(None) => {
                    // Completed when AWS Backup says; a point without the date is
                    // judged from its creation.
                    let done_us = to_us(p.completion_date().or(p.creation_date()));
                    if now_us.saturating_sub(done_us) < COPY_GRACE_US {
                        report.copy_pending = true;
                    } else {
                        problems.push(format!(
                            "today's backup {arn} completed {} min ago and has no copy job to {}: the plan's copy action did not run (its copy job failed or was never created)",
                            now_us.saturating_sub(done_us) / 60_000_000,
                            config.destination_vault_arn
                        ));
                    }
                }
            }
        }
    }
    let cutoff = now_us.saturating_sub(u64::from(config.retention_days) * 86_400_000_000);
    let expiring = points.iter().filter(|p| {
        created_us(p) < cutoff
            && !matches!(
                p.status(),
                Some(RecoveryPointStatus::Deleting | RecoveryPointStatus::Expired)
            )
    });
    for p in expiring {
        let Some(arn) = p.recovery_point_arn() else {
            continue;
        };
        match client
            .delete_recovery_point()
            .backup_vault_name(&config.source_vault_name)
            .recovery_point_arn(arn)
            .send()
            .await
        {
            Ok(_) => report.expired.push(arn.to_string()),
            Err(e) => problems.push(err(
                &format!("expiring {arn}"),
                aws_sdk_backup::error::DisplayErrorContext(e),
            )),
        }
    }
    report.ok = problems.is_empty() && (report.copy_job_id.is_some() || report.copy_pending);
    report.problems = problems;
    Ok(report)
}

/// The invocation's result: the report when every check passed, else an error
/// that names every problem and carries the report, so that the invocation fails
/// (Lambda counts an error and sends the event to the failure destination).
pub fn outcome(report: PostBackupReport) -> Result<PostBackupReport, String> {
    if report.ok {
        return Ok(report);
    }
    let problems = if report.problems.is_empty() {
        "no copy job of today's backup".to_string()
    } else {
        report.problems.join("; ")
    };
    Err(format!(
        "post-backup checks failed: {problems} (report: {})",
        serde_json::to_string(&report).unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_backup::operation::delete_recovery_point::DeleteRecoveryPointOutput;
    use aws_sdk_backup::operation::list_copy_jobs::ListCopyJobsOutput;
    use aws_sdk_backup::operation::list_recovery_points_by_backup_vault::ListRecoveryPointsByBackupVaultOutput;
    use aws_sdk_backup::types::{CopyJob, RecoveryPointCreator};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    const DAY: u64 = 86_400_000_000;
    const MIN: u64 = 60_000_000;
    /// 2026-11-28 09:30 UTC.
    const NOW: u64 = 20_420 * DAY + (9 * 3600 + 30 * 60) * 1_000_000;
    const TABLE: &str = "arn:aws:dynamodb:us-east-2:1:table/Product";
    const DEST: &str = "arn:aws:backup:us-east-1:1:backup-vault:dr";
    const TODAY: &str = "arn:aws:backup:us-east-2:1:recovery-point:today";

    fn point_of(
        plan: &str,
        arn: &str,
        created_us: u64,
        status: RecoveryPointStatus,
    ) -> RecoveryPointByBackupVault {
        RecoveryPointByBackupVault::builder()
            .recovery_point_arn(arn)
            .resource_arn(TABLE)
            .creation_date(DateTime::from_secs((created_us / 1_000_000) as i64))
            .completion_date(DateTime::from_secs((created_us / 1_000_000 + 300) as i64))
            .status(status)
            .backup_vault_name("tandem-dr-primary")
            .created_by(RecoveryPointCreator::builder().backup_plan_id(plan).build())
            .build()
    }

    fn point(arn: &str, created_us: u64, status: RecoveryPointStatus) -> RecoveryPointByBackupVault {
        point_of("plan-1", arn, created_us, status)
    }

    fn config() -> Config {
        Config {
            table_arn: TABLE.into(),
            backup_plan_id: "plan-1".into(),
            source_vault_name: "tandem-dr-primary".into(),
            destination_vault_arn: DEST.into(),
            retention_days: 30,
        }
    }

    /// A copy job of today's backup to the destination vault.
    fn copy_of_today(id: &str, state: CopyJobState) -> CopyJob {
        CopyJob::builder()
            .copy_job_id(id)
            .source_recovery_point_arn(TODAY)
            .destination_backup_vault_arn(DEST)
            .state(state)
            .build()
    }

    fn no_copies() -> aws_smithy_mocks::Rule {
        mock!(Client::list_copy_jobs).then_output(|| ListCopyJobsOutput::builder().build())
    }

    /// Today's backup, made at 09:15 and completed at 09:20.
    fn todays() -> aws_smithy_mocks::Rule {
        mock!(Client::list_recovery_points_by_backup_vault).then_output(|| {
            ListRecoveryPointsByBackupVaultOutput::builder()
                .recovery_points(point(TODAY, NOW - 15 * MIN, RecoveryPointStatus::Completed))
                .build()
        })
    }

    /// Runs the handler at `now` on a client with `rules` (and nothing else: a call
    /// no rule answers fails the run), within the function's IAM contract.
    async fn run(rules: &[&aws_smithy_mocks::Rule], now: u64) -> PostBackupReport {
        let calls = tandem_aws::calls::contract::Calls::new("post-backup function");
        let client = mock_client!(aws_sdk_backup, RuleMode::MatchAny, rules, |c| c
            .interceptor(calls.recorder(tandem_dr::calls::backup)));
        handle(&client, &config(), now).await.unwrap()
    }

    #[tokio::test]
    async fn todays_backup_with_the_plans_copy_passes_and_old_ones_expire() {
        let list = mock!(Client::list_recovery_points_by_backup_vault)
            .match_requests(|r| {
                r.backup_vault_name() == Some("tandem-dr-primary")
                    && r.by_resource_arn() == Some(TABLE)
                    && r.by_backup_plan_id() == Some("plan-1")
            })
            .then_output(|| {
                ListRecoveryPointsByBackupVaultOutput::builder()
                    .recovery_points(point(TODAY, NOW - 15 * MIN, RecoveryPointStatus::Completed))
                    .recovery_points(point(
                        "arn:aws:backup:us-east-2:1:recovery-point:yesterday",
                        NOW - DAY,
                        RecoveryPointStatus::Completed,
                    ))
                    // Days, not weeks, old: kept (retention is 30 days).
                    .recovery_points(point(
                        "arn:aws:backup:us-east-2:1:recovery-point:last-week",
                        NOW - 7 * DAY,
                        RecoveryPointStatus::Completed,
                    ))
                    .recovery_points(point(
                        "arn:aws:backup:us-east-2:1:recovery-point:old",
                        NOW - 31 * DAY,
                        RecoveryPointStatus::Completed,
                    ))
                    .recovery_points(point(
                        "arn:aws:backup:us-east-2:1:recovery-point:going",
                        NOW - 32 * DAY,
                        RecoveryPointStatus::Deleting,
                    ))
                    .build()
            });
        let copies = mock!(Client::list_copy_jobs).then_output(|| {
            ListCopyJobsOutput::builder()
                // A failed attempt does not count; the running one does.
                .copy_jobs(copy_of_today("failed-1", CopyJobState::Failed))
                .copy_jobs(copy_of_today("plan-copy", CopyJobState::Running))
                .build()
        });
        let delete = mock!(Client::delete_recovery_point)
            .match_requests(|r| {
                r.recovery_point_arn() == Some("arn:aws:backup:us-east-2:1:recovery-point:old")
            })
            .then_output(|| DeleteRecoveryPointOutput::builder().build());
        let r = run(&[&list, &copies, &delete], NOW).await;
        assert!(r.ok, "{r:?}");
        assert_eq!(r.todays_backup.as_deref(), Some(TODAY));
        assert_eq!(
            (r.copy_job_id.as_deref(), r.copy_pending),
            (Some("plan-copy"), false)
        );
        assert_eq!(
            r.expired,
            vec!["arn:aws:backup:us-east-2:1:recovery-point:old".to_string()]
        );
        assert_eq!(delete.num_calls(), 1);
        assert!(outcome(r).is_ok());
    }

    /// Both listings follow every page: today's backup is on the second page of the
    /// recovery points and its copy on the second page of the copy jobs; an empty
    /// token (which AWS may send on the last page) ends a listing like none.
    #[tokio::test]
    async fn every_page_of_both_listings_is_read_and_an_empty_token_ends_one() {
        let first_points = mock!(Client::list_recovery_points_by_backup_vault)
            .match_requests(|r| r.next_token().is_none())
            .then_output(|| {
                ListRecoveryPointsByBackupVaultOutput::builder()
                    .recovery_points(point(
                        "arn:aws:backup:us-east-2:1:recovery-point:yesterday",
                        NOW - DAY,
                        RecoveryPointStatus::Completed,
                    ))
                    .next_token("points-2")
                    .build()
            });
        let second_points = mock!(Client::list_recovery_points_by_backup_vault)
            .match_requests(|r| r.next_token() == Some("points-2"))
            .then_output(|| {
                ListRecoveryPointsByBackupVaultOutput::builder()
                    .recovery_points(point(TODAY, NOW - 15 * MIN, RecoveryPointStatus::Completed))
                    .next_token("")
                    .build()
            });
        let first_copies = mock!(Client::list_copy_jobs)
            .match_requests(|r| r.next_token().is_none())
            .then_output(|| ListCopyJobsOutput::builder().next_token("copies-2").build());
        let second_copies = mock!(Client::list_copy_jobs)
            .match_requests(|r| r.next_token() == Some("copies-2"))
            .then_output(|| {
                ListCopyJobsOutput::builder()
                    .copy_jobs(copy_of_today("plan-copy", CopyJobState::Completed))
                    .next_token("")
                    .build()
            });
        let r = run(
            &[&first_points, &second_points, &first_copies, &second_copies],
            NOW,
        )
        .await;
        assert!(r.ok, "{r:?}");
        assert_eq!(r.todays_backup.as_deref(), Some(TODAY));
        assert_eq!(r.copy_job_id.as_deref(), Some("plan-copy"));
        // One call per page: an empty token asked for nothing more.
        assert_eq!((first_points.num_calls(), second_points.num_calls()), (1, 1));
        assert_eq!((first_copies.num_calls(), second_copies.num_calls()), (1, 1));

        // No copy on any page: the last page's empty token ends the search (the copy
        // is pending within its hour), it does not ask again.
        let first = mock!(Client::list_copy_jobs)
            .match_requests(|r| r.next_token().is_none())
            .then_output(|| ListCopyJobsOutput::builder().next_token("copies-2").build());
        let last = mock!(Client::list_copy_jobs)
            .match_requests(|r| r.next_token() == Some("copies-2"))
            .then_output(|| ListCopyJobsOutput::builder().next_token("").build());
        let r = run(&[&todays(), &first, &last], NOW).await;
        assert!(r.ok && r.copy_pending && r.copy_job_id.is_none(), "{r:?}");
        assert_eq!((first.num_calls(), last.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn a_copy_not_listed_yet_is_pending_within_the_grace_and_a_failure_after_it() {
        // 10 minutes after the backup completed: the plan's copy may not be listed yet.
        let r = run(&[&todays(), &no_copies()], NOW).await;
        assert!(r.ok && r.copy_pending, "{r:?}");
        // The daily run, hours later: no copy is a failure, and the invocation fails.
        let r = run(&[&todays(), &no_copies()], NOW + 3 * 60 * MIN).await;
        assert!(!r.ok && !r.copy_pending, "{r:?}");
        assert!(r.problems[0].contains("has no copy job"), "{r:?}");
        let e = outcome(r).unwrap_err();
        assert!(
            e.contains("post-backup checks failed") && e.contains("has no copy job"),
            "{e}"
        );
        assert!(
            e.contains("\"todays_backup\":\"arn:aws:backup:us-east-2:1:recovery-point:today\""),
            "{e}"
        );
        // Exactly at the grace's end it is already late.
        let done = NOW - 15 * MIN + 5 * MIN;
        let r = run(&[&todays(), &no_copies()], done + COPY_GRACE_US).await;
        assert!(!r.ok, "{r:?}");
        let r = run(&[&todays(), &no_copies()], done + COPY_GRACE_US - 1).await;
        assert!(r.ok, "{r:?}");
    }

    #[tokio::test]
    async fn backups_the_plan_did_not_make_are_not_expired_and_do_not_count() {
        // Whatever the service returns, a hand-made backup is not the plan's.
        let list = mock!(Client::list_recovery_points_by_backup_vault).then_output(|| {
            ListRecoveryPointsByBackupVaultOutput::builder()
                .recovery_points(point_of(
                    "other-plan",
                    "manual-today",
                    NOW - MIN,
                    RecoveryPointStatus::Completed,
                ))
                .recovery_points(point_of(
                    "other-plan",
                    "manual-old",
                    NOW - 90 * DAY,
                    RecoveryPointStatus::Completed,
                ))
                .build()
        });
        let delete =
            mock!(Client::delete_recovery_point).then_output(|| DeleteRecoveryPointOutput::builder().build());
        let r = run(&[&list, &no_copies(), &delete], NOW).await;
        assert!(!r.ok);
        assert!(r.problems[0].contains("by plan plan-1"), "{r:?}");
        assert_eq!(delete.num_calls(), 0);
        assert!(outcome(r).unwrap_err().contains("by plan plan-1"));
    }

    #[tokio::test]
    async fn a_missing_backup_fails() {
        let list = mock!(Client::list_recovery_points_by_backup_vault).then_output(|| {
            ListRecoveryPointsByBackupVaultOutput::builder()
                .recovery_points(point(
                    "arn:aws:backup:us-east-2:1:recovery-point:yesterday",
                    NOW - DAY,
                    RecoveryPointStatus::Completed,
                ))
                .build()
        });
        let copies = no_copies();
        let r = run(&[&list, &copies], NOW).await;
        assert!(!r.ok);
        assert!(r.problems[0].contains("no backup"), "{r:?}");
        // Nothing to look for a copy of.
        assert_eq!(copies.num_calls(), 0);
        assert!(outcome(r).is_err());
    }

    #[tokio::test]
    async fn an_available_backup_counts_as_complete() {
        let list = mock!(Client::list_recovery_points_by_backup_vault).then_output(|| {
            ListRecoveryPointsByBackupVaultOutput::builder()
                .recovery_points(point(TODAY, NOW - 15 * MIN, RecoveryPointStatus::Available))
                .build()
        });
        let r = run(&[&list, &no_copies()], NOW).await;
        assert!(r.ok && r.copy_pending, "{r:?}");
    }

    /// A check that fails fails the run even when today's backup and its copy are
    /// there: here an expiry the service refused.
    #[tokio::test]
    async fn a_failed_expiry_fails_the_run_with_the_backup_and_its_copy_in_place() {
        let list = mock!(Client::list_recovery_points_by_backup_vault).then_output(|| {
            ListRecoveryPointsByBackupVaultOutput::builder()
                .recovery_points(point(TODAY, NOW - 15 * MIN, RecoveryPointStatus::Completed))
                // Exactly the retention old: kept. A day more: expired.
                .recovery_points(point(
                    "arn:aws:backup:us-east-2:1:recovery-point:thirty",
                    NOW - 30 * DAY,
                    RecoveryPointStatus::Completed,
                ))
                .recovery_points(point(
                    "arn:aws:backup:us-east-2:1:recovery-point:old",
                    NOW - 31 * DAY,
                    RecoveryPointStatus::Completed,
                ))
                .build()
        });
        let copies = mock!(Client::list_copy_jobs).then_output(|| {
            ListCopyJobsOutput::builder()
                .copy_jobs(copy_of_today("plan-copy", CopyJobState::Completed))
                .build()
        });
        let refused = mock!(Client::delete_recovery_point)
            .match_requests(|r| r.recovery_point_arn() == Some("arn:aws:backup:us-east-2:1:recovery-point:old"))
            .then_error(|| {
                aws_sdk_backup::operation::delete_recovery_point::DeleteRecoveryPointError::InvalidRequestException(
                    aws_sdk_backup::types::error::InvalidRequestException::builder()
                        .message("the recovery point is in use")
                        .build(),
                )
            });
        let r = run(&[&list, &copies, &refused], NOW).await;
        assert_eq!(r.copy_job_id.as_deref(), Some("plan-copy"));
        assert!(!r.ok, "{r:?}");
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains("expiring") && p.contains(":old")),
            "{r:?}"
        );
        assert_eq!(
            refused.num_calls(),
            1,
            "only the point past the retention is expired"
        );
        assert!(outcome(r).is_err());
    }

    #[tokio::test]
    async fn an_incomplete_backup_fails() {
        let list = mock!(Client::list_recovery_points_by_backup_vault).then_output(|| {
            ListRecoveryPointsByBackupVaultOutput::builder()
                .recovery_points(point(TODAY, NOW - MIN, RecoveryPointStatus::Partial))
                .build()
        });
        let r = run(&[&list, &no_copies()], NOW).await;
        assert!(!r.ok);
        assert!(r.problems[0].contains("not complete (status PARTIAL"), "{r:?}");
        assert!(outcome(r).is_err());
    }
}
