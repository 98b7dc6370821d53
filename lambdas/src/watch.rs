//! The watch handler: one `DescribeJobs` (and `ListJobs` for failed arrays) per call.
//! The state machine calls it after the egress job ends (or fails) to name the failed
//! children; its output is bounded (see [`WatchReport`]) so it always fits in a state.

use std::path::PathBuf;

use serde::Deserialize;
use tandem_aws::batch::{self, Client, WatchReport};
use tandem_core::names::Stage;

/// The handler's configuration, read once from the environment.
///
/// - `TANDEM_ROOT` (optional): the EFS mount in the function. With it, and a
///   `run_id` in the event, the full list of failed children is written next to the
///   run (`ROOT/RUN/failed-children.json`).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The shared volume, when the function mounts it.
    pub root: Option<PathBuf>,
}

impl Config {
    /// Reads `TANDEM_ROOT`.
    pub fn from_env() -> Self {
        Self {
            root: std::env::var_os("TANDEM_ROOT")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }
}

/// The input event: the three job ids (procure, process, egress), and the run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchEvent {
    /// `[procure, process, egress]` job ids.
    pub jobs: Vec<String>,
    /// The run, for the full list of failed children.
    #[serde(default)]
    pub run_id: Option<String>,
}

/// Describes the jobs once. The output is [`WatchReport`]: `finished`, `succeeded`,
/// `stages`, failure counts, groups and a sample, `failed_indices` (the first 1,000
/// per stage) and `failed_list` when the full list was written.
pub async fn handle(client: &Client, config: &Config, event: WatchEvent) -> Result<WatchReport, String> {
    if event.jobs.len() != 3 || event.jobs.iter().any(|j| j.is_empty()) {
        return Err(format!(
            "\"jobs\" must hold the three job ids (procure, process, egress), got {:?}",
            event.jobs
        ));
    }
    if let Some(run) = &event.run_id {
        tandem_core::layout::check_run_id(run).map_err(|e| tandem_core::error::chain(&e))?;
    }
    let jobs: Vec<(Stage, String)> = Stage::ALL.into_iter().zip(event.jobs).collect();
    let polled = batch::poll(client, &jobs)
        .await
        .map_err(|e| tandem_core::error::chain(&e))?;
    let mut report = polled.report;
    if let (Some(root), Some(run), false) = (&config.root, &event.run_id, polled.failed.is_empty()) {
        match batch::write_failed_list(&root.join(run), &polled.failed) {
            Ok(path) => report.failed_list = Some(path.display().to_string()),
            Err(e) => {
                tracing::warn!(error = %tandem_core::error::chain(&e), "could not write the failed list")
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_batch::operation::describe_jobs::DescribeJobsOutput;
    use aws_sdk_batch::operation::list_jobs::ListJobsOutput;
    use aws_sdk_batch::types::{
        ArrayPropertiesDetail, ArrayPropertiesSummary, JobDetail, JobStatus, JobSummary,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn job(id: &str, status: JobStatus, ok: i32, failed: i32) -> JobDetail {
        JobDetail::builder()
            .job_id(id)
            .status(status)
            .array_properties(
                ArrayPropertiesDetail::builder()
                    .size(ok + failed)
                    .status_summary("SUCCEEDED", ok)
                    .status_summary("FAILED", failed)
                    .build(),
            )
            .build()
    }

    #[tokio::test]
    async fn a_fixture_event_with_a_failed_child_returns_failed_indices() {
        let event: WatchEvent = serde_json::from_str(r#"{"jobs": ["a", "b", "c"]}"#).unwrap();
        let describe = mock!(Client::describe_jobs).then_output(|| {
            DescribeJobsOutput::builder()
                .jobs(job("a", JobStatus::Failed, 3, 1))
                .jobs(job("b", JobStatus::Failed, 3, 1))
                .jobs(job("c", JobStatus::Failed, 3, 1))
                .build()
        });
        let list = mock!(Client::list_jobs).then_output(|| {
            ListJobsOutput::builder()
                .job_summary_list(
                    JobSummary::builder()
                        .job_id("x:2")
                        .job_name("x")
                        .status(JobStatus::Failed)
                        .status_reason("Essential container in task exited")
                        .array_properties(ArrayPropertiesSummary::builder().index(2).build())
                        .build(),
                )
                .build()
        });
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&describe, &list]);
        let out = handle(&client, &Config::default(), event).await.unwrap();
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["finished"], true);
        assert_eq!(json["succeeded"], false);
        assert_eq!(json["failed_indices"], serde_json::json!([[2], [2], [2]]));
        assert_eq!(json["stages"][0]["counts"]["FAILED"], 1);
        assert!(json.get("failed_list").is_none());
    }

    #[tokio::test]
    async fn ten_thousand_failed_children_per_stage_stay_under_the_state_limit() {
        // A bad image: 10,000 procure children fail, and their 20,000 dependents
        // with them. ListJobs pages them 1,000 at a time.
        let describe = mock!(Client::describe_jobs).then_output(|| {
            DescribeJobsOutput::builder()
                .jobs(job("a", JobStatus::Failed, 0, 10_000))
                .jobs(job("b", JobStatus::Failed, 0, 10_000))
                .jobs(job("c", JobStatus::Failed, 0, 10_000))
                .build()
        });
        let list = mock!(Client::list_jobs).then_compute_output(|req| {
            let array = req.array_job_id().unwrap_or_default().to_string();
            let page: u32 = req.next_token().and_then(|t| t.parse().ok()).unwrap_or(0);
            let mut out = ListJobsOutput::builder();
            for index in page * 1000..(page + 1) * 1000 {
                out = out.job_summary_list(
                    JobSummary::builder()
                        .job_id(format!("{array}:{index}"))
                        .job_name(&array)
                        .status(JobStatus::Failed)
                        .status_reason(if array == "a" {
                            "CannotPullContainerError: pull access denied for tandem"
                        } else {
                            "Dependent Job failed"
                        })
                        .array_properties(ArrayPropertiesSummary::builder().index(index as i32).build())
                        .build(),
                );
            }
            if page < 9 {
                out = out.next_token((page + 1).to_string());
            }
            out.build()
        });
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&describe, &list]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("run-1")).unwrap();
        let config = Config {
            root: Some(dir.path().to_path_buf()),
        };
        let event: WatchEvent =
            serde_json::from_str(r#"{"jobs": ["a", "b", "c"], "run_id": "run-1"}"#).unwrap();
        let out = handle(&client, &config, event).await.unwrap();
        let json = serde_json::to_vec(&out).unwrap();
        assert!(json.len() < 256 * 1024, "{} bytes", json.len());
        assert_eq!(out.failed_counts.0, [10_000, 10_000, 10_000]);
        assert_eq!(out.failure_groups.len(), 3);
        assert_eq!(list.num_calls(), 30);
        // Every failed child is in the full list next to the run.
        let full: Vec<tandem_aws::batch::FailedChild> =
            serde_json::from_slice(&std::fs::read(dir.path().join("run-1/failed-children.json")).unwrap())
                .unwrap();
        assert_eq!(full.len(), 30_000);
        assert_eq!(
            out.failed_list.as_deref(),
            Some(dir.path().join("run-1/failed-children.json").to_str().unwrap())
        );
    }

    #[tokio::test]
    async fn an_event_without_three_jobs_is_refused() {
        let client = mock_client!(
            aws_sdk_batch,
            RuleMode::MatchAny,
            [] as [&aws_smithy_mocks::Rule; 0]
        );
        let err = handle(
            &client,
            &Config::default(),
            WatchEvent {
                jobs: vec!["a".into()],
                run_id: None,
            },
        )
        .await
        .unwrap_err();
        assert!(err.contains("three job ids"), "{err}");
        assert!(serde_json::from_str::<WatchEvent>(r#"{"job": ["a"]}"#).is_err());
    }
}
