//! The post-backup handler: what runs after the scheduled backup of the product
//! table (the original just took another backup). It checks that today's backup
//! exists and is complete, copies it to the second region's vault, expires recovery
//! points past retention, and reports, through AWS Backup.

use aws_sdk_backup::Client;
use aws_sdk_backup::types::RecoveryPointStatus;
use serde::Serialize;
use tandem_dr::backup::last_scheduled_slot;

/// The handler's configuration, read once from the environment.
///
/// - `TABLE_ARN`: the DynamoDB table whose recovery points are checked (required);
/// - `DESTINATION_VAULT_ARN`: the backup vault in the second region (required);
/// - `COPY_ROLE_ARN`: the role AWS Backup assumes for the copy (required);
/// - `RETENTION_DAYS`: recovery points older than this are deleted (default 30).
#[derive(Debug, Clone)]
pub struct Config {
    /// Table ARN.
    pub table_arn: String,
    /// Vault in the second region.
    pub destination_vault_arn: String,
    /// Role for copy jobs.
    pub copy_role_arn: String,
    /// Retention in days.
    pub retention_days: u32,
}

impl Config {
    /// Reads the variables above, naming the one that is missing or bad.
    pub fn from_env() -> Result<Self, String> {
        let get = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set: the function needs it"));
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
            destination_vault_arn: get("DESTINATION_VAULT_ARN")?,
            copy_role_arn: get("COPY_ROLE_ARN")?,
            retention_days,
        })
    }
}

/// What the handler found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PostBackupReport {
    /// True when today's backup exists, is complete and its copy was started.
    pub ok: bool,
    /// Today's recovery point, if there is one.
    pub todays_backup: Option<String>,
    /// Its status.
    pub status: Option<String>,
    /// The copy job started for it.
    pub copy_job_id: Option<String>,
    /// Recovery points deleted for being past retention.
    pub expired: Vec<String>,
    /// What is wrong, for the alarm.
    pub problems: Vec<String>,
}

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

/// Runs the checks at `now_us` (µs since the epoch).
pub async fn handle(client: &Client, config: &Config, now_us: u64) -> Result<PostBackupReport, String> {
    // Every recovery point of the table, all pages.
    let mut points = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_recovery_points_by_resource()
            .resource_arn(&config.table_arn)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| {
                err(
                    "listing recovery points",
                    aws_sdk_backup::error::DisplayErrorContext(e),
                )
            })?;
        points.extend(page.recovery_points().iter().cloned());
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    let created_us = |p: &aws_sdk_backup::types::RecoveryPointByResource| {
        p.creation_date()
            .map(|d| d.as_secs_f64() * 1e6)
            .unwrap_or(0.0)
            .max(0.0) as u64
    };
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
        expired: Vec::new(),
        problems: Vec::new(),
    };
    match today {
        None => problems.push(format!(
            "no backup of {} since today's scheduled time ({} µs, cron(10 9 * * ? *))",
            config.table_arn, slot
        )),
        Some(p) if p.status() != Some(&RecoveryPointStatus::Completed) => problems.push(format!(
            "today's backup {} is not complete (status {}{})",
            p.recovery_point_arn().unwrap_or("?"),
            p.status().map(|s| s.as_str()).unwrap_or("unknown"),
            p.status_message().map(|m| format!(": {m}")).unwrap_or_default()
        )),
        Some(p) => {
            let out = client
                .start_copy_job()
                .recovery_point_arn(p.recovery_point_arn().unwrap_or_default())
                .source_backup_vault_name(p.backup_vault_name().unwrap_or("Default"))
                .destination_backup_vault_arn(&config.destination_vault_arn)
                .iam_role_arn(&config.copy_role_arn)
                .send()
                .await;
            match out {
                Ok(o) => report.copy_job_id = o.copy_job_id().map(String::from),
                Err(e) => problems.push(err(
                    "copying today's backup",
                    aws_sdk_backup::error::DisplayErrorContext(e),
                )),
            }
        }
    }
    let cutoff = now_us.saturating_sub(u64::from(config.retention_days) * 86_400_000_000);
    for p in points.iter().filter(|p| created_us(p) < cutoff) {
        let (Some(arn), Some(vault)) = (p.recovery_point_arn(), p.backup_vault_name()) else {
            continue;
        };
        match client
            .delete_recovery_point()
            .backup_vault_name(vault)
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
    report.ok = problems.is_empty() && report.copy_job_id.is_some();
    report.problems = problems;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_backup::operation::delete_recovery_point::DeleteRecoveryPointOutput;
    use aws_sdk_backup::operation::list_recovery_points_by_resource::ListRecoveryPointsByResourceOutput;
    use aws_sdk_backup::operation::start_copy_job::StartCopyJobOutput;
    use aws_sdk_backup::types::RecoveryPointByResource;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    const DAY: u64 = 86_400_000_000;
    /// 2026-11-28 09:30 UTC.
    const NOW: u64 = 20_420 * DAY + (9 * 3600 + 30 * 60) * 1_000_000;

    fn point(arn: &str, created_us: u64, status: RecoveryPointStatus) -> RecoveryPointByResource {
        RecoveryPointByResource::builder()
            .recovery_point_arn(arn)
            .creation_date(aws_sdk_backup::primitives::DateTime::from_secs(
                (created_us / 1_000_000) as i64,
            ))
            .status(status)
            .backup_vault_name("Default")
            .build()
    }

    fn config() -> Config {
        Config {
            table_arn: "arn:aws:dynamodb:us-east-2:1:table/Product".into(),
            destination_vault_arn: "arn:aws:backup:us-east-1:1:backup-vault:dr".into(),
            copy_role_arn: "arn:aws:iam::1:role/backup-copy".into(),
            retention_days: 30,
        }
    }

    #[tokio::test]
    async fn todays_complete_backup_is_copied_and_old_ones_expire() {
        let list = mock!(Client::list_recovery_points_by_resource).then_output(|| {
            ListRecoveryPointsByResourceOutput::builder()
                .recovery_points(point(
                    "today",
                    NOW - 15 * 60_000_000,
                    RecoveryPointStatus::Completed,
                ))
                .recovery_points(point("yesterday", NOW - DAY, RecoveryPointStatus::Completed))
                .recovery_points(point("old", NOW - 31 * DAY, RecoveryPointStatus::Completed))
                .build()
        });
        let copy = mock!(Client::start_copy_job)
            .match_requests(|r| {
                r.recovery_point_arn() == Some("today")
                    && r.destination_backup_vault_arn() == Some("arn:aws:backup:us-east-1:1:backup-vault:dr")
            })
            .then_output(|| StartCopyJobOutput::builder().copy_job_id("copy-1").build());
        let delete = mock!(Client::delete_recovery_point)
            .match_requests(|r| r.recovery_point_arn() == Some("old"))
            .then_output(|| DeleteRecoveryPointOutput::builder().build());
        let client = mock_client!(aws_sdk_backup, RuleMode::MatchAny, [&list, &copy, &delete]);
        let r = handle(&client, &config(), NOW).await.unwrap();
        assert!(r.ok, "{r:?}");
        assert_eq!(r.todays_backup.as_deref(), Some("today"));
        assert_eq!(r.copy_job_id.as_deref(), Some("copy-1"));
        assert_eq!(r.expired, vec!["old".to_string()]);
    }

    #[tokio::test]
    async fn a_missing_backup_is_reported_and_nothing_is_copied() {
        let list = mock!(Client::list_recovery_points_by_resource).then_output(|| {
            ListRecoveryPointsByResourceOutput::builder()
                .recovery_points(point("yesterday", NOW - DAY, RecoveryPointStatus::Completed))
                .build()
        });
        let copy = mock!(Client::start_copy_job).then_output(|| StartCopyJobOutput::builder().build());
        let client = mock_client!(aws_sdk_backup, RuleMode::MatchAny, [&list, &copy]);
        let r = handle(&client, &config(), NOW).await.unwrap();
        assert!(!r.ok);
        assert!(r.problems[0].contains("no backup"), "{r:?}");
        assert_eq!(copy.num_calls(), 0);
    }

    #[tokio::test]
    async fn an_incomplete_backup_is_not_copied() {
        let list = mock!(Client::list_recovery_points_by_resource).then_output(|| {
            ListRecoveryPointsByResourceOutput::builder()
                .recovery_points(point("today", NOW - 60_000_000, RecoveryPointStatus::Partial))
                .build()
        });
        let copy = mock!(Client::start_copy_job).then_output(|| StartCopyJobOutput::builder().build());
        let client = mock_client!(aws_sdk_backup, RuleMode::MatchAny, [&list, &copy]);
        let r = handle(&client, &config(), NOW).await.unwrap();
        assert!(!r.ok);
        assert!(r.problems[0].contains("not complete (status PARTIAL"), "{r:?}");
        assert_eq!(copy.num_calls(), 0);
    }
}
