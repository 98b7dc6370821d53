//! The watch handler: one `DescribeJobs` (and `ListJobs` for failed arrays) per call;
//! the state machine loops with a Wait state until `finished`.

use serde::Deserialize;
use tandem_aws::batch::{self, Client, WatchReport};
use tandem_core::stage::Stage;

/// The input event: the three job ids, procure, process, egress.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchEvent {
    /// `[procure, process, egress]` job ids.
    pub jobs: Vec<String>,
}

/// Describes the jobs once. The output is [`WatchReport`]: `finished`, `succeeded`,
/// `stages` (status and counts per stage), `failed` and `failed_indices`.
pub async fn handle(client: &Client, event: WatchEvent) -> Result<WatchReport, String> {
    if event.jobs.len() != 3 || event.jobs.iter().any(|j| j.is_empty()) {
        return Err(format!(
            "\"jobs\" must hold the three job ids (procure, process, egress), got {:?}",
            event.jobs
        ));
    }
    let jobs: Vec<(Stage, String)> = Stage::ALL.into_iter().zip(event.jobs).collect();
    batch::poll(client, &jobs).await.map_err(|e| e.to_string())
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
        let out = handle(&client, event).await.unwrap();
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["finished"], true);
        assert_eq!(json["succeeded"], false);
        assert_eq!(json["failed_indices"], serde_json::json!([[2], [2], [2]]));
        assert_eq!(json["stages"][0]["counts"]["FAILED"], 1);
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
            WatchEvent {
                jobs: vec!["a".into()],
            },
        )
        .await
        .unwrap_err();
        assert!(err.contains("three job ids"), "{err}");
        assert!(serde_json::from_str::<WatchEvent>(r#"{"job": ["a"]}"#).is_err());
    }
}
