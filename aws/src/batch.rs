//! AWS Batch: submit a run's three stages as array jobs chained N_TO_N, and watch
//! them to the end.
//!
//! Everything here takes an `aws_sdk_batch::Client`, so the same code runs against
//! AWS, the local emulator (request and response shapes) and `aws-smithy-mocks`
//! (ordering, throttling, stuck and failed children, which the emulator cannot
//! show: it runs no container and marks every job SUCCEEDED).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub use aws_sdk_batch::Client;
use aws_sdk_batch::types::{
    ArrayJobDependency, ArrayProperties, ContainerOverrides, JobDependency, JobDetail, JobStatus,
    KeyValuePair, RetryStrategy,
};
use serde::{Deserialize, Serialize};
use tandem_core::plan::MAX_ARRAY_SIZE;
use tandem_core::stage::Stage;
use tandem_core::{Error, Result};

use crate::sdk_message;

fn backend(op: &'static str, location: impl Into<String>, message: String) -> Error {
    Error::Backend {
        op,
        location: location.into(),
        message,
    }
}

/// What to submit.
#[derive(Debug, Clone)]
pub struct SubmitSpec {
    /// The run (from its manifest).
    pub run_id: String,
    /// Children per stage (1 is submitted as a plain job).
    pub array_size: u32,
    /// Job queue per stage (procure, process, egress).
    pub queues: [String; 3],
    /// Job definition per stage; its container runs `tandem worker`.
    pub job_definitions: [String; 3],
    /// The shared volume as mounted in the containers (`TANDEM_ROOT`).
    pub root: String,
    /// The bucket URL egress writes to (`TANDEM_BUCKET`).
    pub bucket: String,
    /// Batch `retryStrategy.attempts` (1..=10), or the job definition's when `None`.
    pub attempts: Option<u32>,
    /// Extra environment for every child (e.g. `TANDEM_INDEX_MAP` for a rerun).
    pub extra_env: Vec<(String, String)>,
    /// Job name suffix (a rerun adds one so names stay distinct).
    pub name_suffix: String,
}

/// One submitted stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmittedStage {
    /// The stage.
    pub stage: Stage,
    /// Batch job id (of the array parent).
    pub job_id: String,
    /// Job name.
    pub job_name: String,
    /// Children (1: a plain job).
    pub array_size: u32,
}

/// Checks a spec before any request is sent.
pub fn check_spec(spec: &SubmitSpec) -> Result<()> {
    if spec.array_size == 0 || spec.array_size > MAX_ARRAY_SIZE {
        return Err(Error::InvalidInput(format!(
            "array size {} is out of range: AWS Batch runs 1 to {MAX_ARRAY_SIZE} children per job",
            spec.array_size
        )));
    }
    if let Some(a) = spec.attempts.filter(|a| !(1..=10).contains(a)) {
        return Err(Error::InvalidInput(format!(
            "--attempts {a} is out of range: AWS Batch allows 1 to 10"
        )));
    }
    for (what, values) in [("queue", &spec.queues), ("job definition", &spec.job_definitions)] {
        if let Some(i) = values.iter().position(|v| v.trim().is_empty()) {
            return Err(Error::InvalidInput(format!(
                "the {what} for stage {} is empty",
                Stage::ALL[i]
            )));
        }
    }
    Ok(())
}

/// Batch job names: letters, digits, hyphens and underscores, at most 128.
pub fn job_name(run_id: &str, stage: Stage, suffix: &str) -> String {
    let raw = format!("tandem-{run_id}-{}{suffix}", stage.name());
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(128);
    name
}

/// Submits the three stages: stage 1 as an array job of the run's size, stages 2 and
/// 3 depending N_TO_N on the stage before (a run of one child: plain jobs depending
/// on the previous job). Each child gets `TANDEM_RUN_ID`, `TANDEM_ROOT`,
/// `TANDEM_BUCKET` and `TANDEM_STAGE`. If a later stage cannot be submitted, the
/// stages already submitted are cancelled, so no half-submitted run keeps running.
pub async fn submit(client: &Client, spec: &SubmitSpec) -> Result<Vec<SubmittedStage>> {
    check_spec(spec)?;
    let mut done: Vec<SubmittedStage> = Vec::with_capacity(3);
    for stage in Stage::ALL {
        let p = stage.position();
        let name = job_name(&spec.run_id, stage, &spec.name_suffix);
        let mut env = vec![
            ("TANDEM_RUN_ID".to_string(), spec.run_id.clone()),
            ("TANDEM_ROOT".to_string(), spec.root.clone()),
            ("TANDEM_BUCKET".to_string(), spec.bucket.clone()),
            ("TANDEM_STAGE".to_string(), stage.name().to_string()),
        ];
        env.extend(spec.extra_env.iter().cloned());
        let overrides = ContainerOverrides::builder()
            .set_environment(Some(
                env.into_iter()
                    .map(|(k, v)| KeyValuePair::builder().name(k).value(v).build())
                    .collect(),
            ))
            .build();
        let mut req = client
            .submit_job()
            .job_name(&name)
            .job_queue(&spec.queues[p])
            .job_definition(&spec.job_definitions[p])
            .container_overrides(overrides);
        if spec.array_size > 1 {
            req = req.array_properties(ArrayProperties::builder().size(spec.array_size as i32).build());
        }
        if let Some(prev) = done.last() {
            let mut dep = JobDependency::builder().job_id(&prev.job_id);
            if spec.array_size > 1 {
                dep = dep.r#type(ArrayJobDependency::NToN);
            }
            req = req.depends_on(dep.build());
        }
        if let Some(a) = spec.attempts {
            req = req.retry_strategy(RetryStrategy::builder().attempts(a as i32).build());
        }
        match req.send().await {
            Ok(out) => done.push(SubmittedStage {
                stage,
                job_id: out.job_id().unwrap_or_default().to_string(),
                job_name: out.job_name().unwrap_or(&name).to_string(),
                array_size: spec.array_size,
            }),
            Err(e) => {
                let message = sdk_message(&e);
                for s in &done {
                    let _ = client
                        .terminate_job()
                        .job_id(&s.job_id)
                        .reason(format!("tandem: submitting {stage} failed"))
                        .send()
                        .await;
                }
                return Err(backend(
                    "submit",
                    format!(
                        "stage {stage} (queue {}, job definition {})",
                        spec.queues[p], spec.job_definitions[p]
                    ),
                    if done.is_empty() {
                        message
                    } else {
                        format!("{message}; the stages already submitted were terminated")
                    },
                ));
            }
        }
    }
    Ok(done)
}

/// The state of one stage's job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageStatus {
    /// The stage.
    pub stage: Stage,
    /// Batch job id.
    pub job_id: String,
    /// The job's status (SUBMITTED .. SUCCEEDED, FAILED).
    pub status: String,
    /// Children per status, from the array status summary (a plain job counts as one).
    pub counts: BTreeMap<String, i32>,
    /// Batch's reason, when it gives one.
    pub reason: Option<String>,
}

impl StageStatus {
    fn is_done(&self) -> bool {
        self.status == "SUCCEEDED" || self.status == "FAILED"
    }
}

/// A child that failed, as Batch reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedChild {
    /// The stage.
    pub stage: Stage,
    /// The child's array index (in the submitted array).
    pub index: u32,
    /// Batch's status reason (e.g. "Essential container in task exited", or a
    /// dependency failure).
    pub reason: String,
    /// The container's exit code, when it ran.
    pub exit_code: Option<i32>,
}

/// One look at the three jobs: the shape the watch lambda returns to Step Functions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchReport {
    /// Every stage is SUCCEEDED or FAILED.
    pub finished: bool,
    /// Every stage SUCCEEDED.
    pub succeeded: bool,
    /// Per-stage status.
    pub stages: Vec<StageStatus>,
    /// The failed children of finished, failed stages.
    pub failed: Vec<FailedChild>,
    /// `failed` as indices per stage (procure, process, egress), for state machines.
    pub failed_indices: [Vec<u32>; 3],
}

fn stage_status(stage: Stage, job: &JobDetail) -> StageStatus {
    let status = job
        .status()
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|| "UNKNOWN".into());
    let counts: BTreeMap<String, i32> = match job.array_properties().and_then(|a| a.status_summary()) {
        Some(summary) => summary
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        None => BTreeMap::from([(status.clone(), 1)]),
    };
    StageStatus {
        stage,
        job_id: job.job_id().unwrap_or_default().to_string(),
        status,
        counts,
        reason: job.status_reason().map(str::to_string),
    }
}

/// Describes the three jobs once (one `DescribeJobs` call) and, for stages that
/// finished with failures, lists the failed children (`ListJobs` on the array job,
/// all pages).
pub async fn poll(client: &Client, jobs: &[(Stage, String)]) -> Result<WatchReport> {
    let ids: Vec<String> = jobs.iter().map(|(_, id)| id.clone()).collect();
    let out = client
        .describe_jobs()
        .set_jobs(Some(ids.clone()))
        .send()
        .await
        .map_err(|e| backend("describe jobs", ids.join(","), sdk_message(&e)))?;
    let mut stages = Vec::with_capacity(jobs.len());
    for (stage, id) in jobs {
        let job = out
            .jobs()
            .iter()
            .find(|j| j.job_id() == Some(id.as_str()))
            .ok_or_else(|| Error::NotFound {
                what: format!("{stage} job"),
                location: id.clone(),
            })?;
        stages.push((stage_status(*stage, job), job.array_properties().is_some(), job));
    }
    let mut failed = Vec::new();
    for (st, is_array, job) in &stages {
        if st.status != "FAILED" && !st.counts.contains_key("FAILED") {
            continue;
        }
        if !is_array {
            failed.push(FailedChild {
                stage: st.stage,
                index: 0,
                reason: st.reason.clone().unwrap_or_else(|| "failed".into()),
                exit_code: job.container().and_then(|c| c.exit_code()),
            });
            continue;
        }
        failed.extend(failed_children(client, st.stage, &st.job_id).await?);
    }
    let finished = stages.iter().all(|(s, _, _)| s.is_done());
    let succeeded = finished && stages.iter().all(|(s, _, _)| s.status == "SUCCEEDED") && failed.is_empty();
    let mut failed_indices: [Vec<u32>; 3] = Default::default();
    for f in &failed {
        failed_indices[f.stage.position()].push(f.index);
    }
    for v in &mut failed_indices {
        v.sort_unstable();
        v.dedup();
    }
    Ok(WatchReport {
        finished,
        succeeded,
        stages: stages.into_iter().map(|(s, _, _)| s).collect(),
        failed,
        failed_indices,
    })
}

/// The failed children of an array job, from every page of `ListJobs`.
async fn failed_children(client: &Client, stage: Stage, array_job_id: &str) -> Result<Vec<FailedChild>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_jobs()
            .array_job_id(array_job_id)
            .job_status(JobStatus::Failed)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| backend("list failed children of", array_job_id, sdk_message(&e)))?;
        for j in page.job_summary_list() {
            if j.status().is_some_and(|s| *s != JobStatus::Failed) {
                continue;
            }
            // The child's index is in its array properties, and is also the suffix
            // of its job id ("<array job id>:<index>").
            let index = j
                .array_properties()
                .and_then(|a| a.index())
                .map(|i| i as u32)
                .or_else(|| {
                    j.job_id()
                        .and_then(|id| id.rsplit(':').next())
                        .and_then(|s| s.parse().ok())
                });
            let Some(index) = index else { continue };
            out.push(FailedChild {
                stage,
                index,
                reason: j
                    .status_reason()
                    .or_else(|| j.container().and_then(|c| c.reason()))
                    .unwrap_or("failed")
                    .to_string(),
                exit_code: j.container().and_then(|c| c.exit_code()),
            });
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    out.sort_unstable_by_key(|f| f.index);
    Ok(out)
}

/// How [`watch`] polls.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    /// First interval between polls; it doubles while nothing changes, up to `max_interval`.
    pub interval: Duration,
    /// Longest interval between polls.
    pub max_interval: Duration,
    /// Give up when the status counts have not changed for this long.
    pub stall_timeout: Option<Duration>,
}

/// Why a watch ended without a final state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stalled {
    /// How long nothing changed.
    pub unchanged_for: Duration,
    /// The last report.
    pub last: WatchReport,
}

/// Polls until every stage has finished, calling `on_change` whenever the counts
/// change. Returns `Err(Stalled)` inside `Ok` when nothing changed for the stall
/// timeout (a job stuck RUNNABLE, say, for lack of capacity).
pub async fn watch(
    client: &Client,
    jobs: &[(Stage, String)],
    options: WatchOptions,
    mut on_change: impl FnMut(&WatchReport),
) -> Result<std::result::Result<WatchReport, Stalled>> {
    let mut interval = options.interval;
    let mut last_change = Instant::now();
    let mut last: Option<WatchReport> = None;
    loop {
        let report = poll(client, jobs).await?;
        let changed = last.as_ref().is_none_or(|l| l.stages != report.stages);
        if changed {
            on_change(&report);
            last_change = Instant::now();
            interval = options.interval;
        } else {
            interval = (interval * 2).min(options.max_interval);
        }
        if report.finished {
            return Ok(Ok(report));
        }
        if let Some(t) = options.stall_timeout
            && last_change.elapsed() >= t
        {
            return Ok(Err(Stalled {
                unchanged_for: last_change.elapsed(),
                last: report,
            }));
        }
        last = Some(report);
        tokio::time::sleep(interval).await;
    }
}

/// SDK-level behaviour the emulator cannot show: failed and stuck children,
/// throttling, a submission that fails half way.
#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_batch::operation::describe_jobs::DescribeJobsOutput;
    use aws_sdk_batch::operation::list_jobs::ListJobsOutput;
    use aws_sdk_batch::operation::submit_job::{SubmitJobError, SubmitJobOutput};
    use aws_sdk_batch::operation::terminate_job::TerminateJobOutput;
    use aws_sdk_batch::types::error::ClientException;
    use aws_sdk_batch::types::{ArrayPropertiesDetail, ArrayPropertiesSummary, ContainerSummary, JobSummary};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use std::collections::HashMap;

    fn job(id: &str, status: JobStatus, summary: &[(&str, i32)]) -> JobDetail {
        JobDetail::builder()
            .job_id(id)
            .job_name(id)
            .status(status)
            .array_properties(
                ArrayPropertiesDetail::builder()
                    .size(10)
                    .set_status_summary(Some(
                        summary
                            .iter()
                            .map(|(k, v)| (k.to_string(), *v))
                            .collect::<HashMap<_, _>>(),
                    ))
                    .build(),
            )
            .build()
    }

    fn failed_child(array: &str, index: i32, reason: &str, exit: Option<i32>) -> JobSummary {
        JobSummary::builder()
            .job_id(format!("{array}:{index}"))
            .job_name(array)
            .status(JobStatus::Failed)
            .status_reason(reason)
            .array_properties(ArrayPropertiesSummary::builder().index(index).build())
            .set_container(exit.map(|c| ContainerSummary::builder().exit_code(c).build()))
            .build()
    }

    fn spec(array_size: u32, queues: [&str; 3]) -> SubmitSpec {
        SubmitSpec {
            run_id: "r".into(),
            array_size,
            queues: queues.map(String::from),
            job_definitions: ["d", "d", "d"].map(String::from),
            root: "/mnt".into(),
            bucket: "s3://b".into(),
            attempts: None,
            extra_env: vec![],
            name_suffix: String::new(),
        }
    }

    fn jobs() -> Vec<(Stage, String)> {
        vec![
            (Stage::Procure, "p1".into()),
            (Stage::Process, "p2".into()),
            (Stage::Egress, "p3".into()),
        ]
    }

    #[tokio::test]
    async fn a_failed_run_is_reported_as_failed_with_every_failed_index_and_reason() {
        let describe = mock!(Client::describe_jobs).then_output(|| {
            DescribeJobsOutput::builder()
                .jobs(job("p1", JobStatus::Succeeded, &[("SUCCEEDED", 10)]))
                .jobs(job("p2", JobStatus::Failed, &[("SUCCEEDED", 8), ("FAILED", 2)]))
                .jobs(job("p3", JobStatus::Failed, &[("SUCCEEDED", 8), ("FAILED", 2)]))
                .build()
        });
        // process's failed children come over two pages
        let page1 = mock!(Client::list_jobs)
            .match_requests(|r| r.array_job_id() == Some("p2") && r.next_token().is_none())
            .then_output(|| {
                ListJobsOutput::builder()
                    .job_summary_list(failed_child(
                        "p2",
                        7,
                        "Essential container in task exited",
                        Some(2),
                    ))
                    .next_token("page-2")
                    .build()
            });
        let page2 = mock!(Client::list_jobs)
            .match_requests(|r| r.array_job_id() == Some("p2") && r.next_token() == Some("page-2"))
            .then_output(|| {
                ListJobsOutput::builder()
                    .job_summary_list(failed_child(
                        "p2",
                        3,
                        "Essential container in task exited",
                        Some(1),
                    ))
                    .build()
            });
        let egress = mock!(Client::list_jobs)
            .match_requests(|r| r.array_job_id() == Some("p3"))
            .then_output(|| {
                ListJobsOutput::builder()
                    .job_summary_list(failed_child("p3", 3, "Dependent Job failed", None))
                    .job_summary_list(failed_child("p3", 7, "Dependent Job failed", None))
                    .build()
            });
        let client = mock_client!(
            aws_sdk_batch,
            RuleMode::MatchAny,
            [&describe, &page1, &page2, &egress]
        );
        let report = poll(&client, &jobs()).await.unwrap();
        assert!(report.finished);
        assert!(
            !report.succeeded,
            "a FAILED stage must never be reported as success"
        );
        assert_eq!(report.failed_indices, [vec![], vec![3, 7], vec![3, 7]]);
        let f = &report.failed[0];
        assert_eq!((f.stage, f.index, f.exit_code), (Stage::Process, 3, Some(1)));
        assert!(f.reason.contains("Essential container"));
        assert_eq!(report.stages[1].counts.get("FAILED"), Some(&2));
        assert_eq!(page2.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_succeeded_run_is_finished_and_succeeded() {
        let describe = mock!(Client::describe_jobs).then_output(|| {
            DescribeJobsOutput::builder()
                .jobs(job("p1", JobStatus::Succeeded, &[("SUCCEEDED", 10)]))
                .jobs(job("p2", JobStatus::Succeeded, &[("SUCCEEDED", 10)]))
                .jobs(job("p3", JobStatus::Succeeded, &[("SUCCEEDED", 10)]))
                .build()
        });
        let client = mock_client!(aws_sdk_batch, [&describe]);
        let report = poll(&client, &jobs()).await.unwrap();
        assert!(report.finished && report.succeeded && report.failed.is_empty());
    }

    #[tokio::test]
    async fn a_watch_that_makes_no_progress_ends_at_its_timeout() {
        let describe = mock!(Client::describe_jobs).then_output(|| {
            DescribeJobsOutput::builder()
                .jobs(job("p1", JobStatus::Runnable, &[("RUNNABLE", 10)]))
                .jobs(job("p2", JobStatus::Pending, &[("PENDING", 10)]))
                .jobs(job("p3", JobStatus::Pending, &[("PENDING", 10)]))
                .build()
        });
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&describe]);
        let opts = WatchOptions {
            interval: Duration::from_millis(5),
            max_interval: Duration::from_millis(20),
            stall_timeout: Some(Duration::from_millis(100)),
        };
        let mut changes = 0;
        let stalled = watch(&client, &jobs(), opts, |_| changes += 1)
            .await
            .unwrap()
            .unwrap_err();
        assert!(stalled.unchanged_for >= Duration::from_millis(100));
        assert_eq!(stalled.last.stages[0].counts.get("RUNNABLE"), Some(&10));
        assert_eq!(changes, 1, "an unchanged status is reported once");
        assert!(describe.num_calls() >= 3);
    }

    #[tokio::test]
    async fn throttled_polls_are_retried_with_backoff() {
        let describe = mock!(Client::describe_jobs)
            .sequence()
            .http_status(
                429,
                Some(r#"{"__type":"TooManyRequestsException","message":"Rate exceeded"}"#.into()),
            )
            .times(2)
            .output(|| {
                DescribeJobsOutput::builder()
                    .jobs(job("p1", JobStatus::Succeeded, &[("SUCCEEDED", 10)]))
                    .jobs(job("p2", JobStatus::Succeeded, &[("SUCCEEDED", 10)]))
                    .jobs(job("p3", JobStatus::Succeeded, &[("SUCCEEDED", 10)]))
                    .build()
            })
            .build();
        let client = mock_client!(aws_sdk_batch, RuleMode::Sequential, [&describe], |c| c
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(5)
                    .with_initial_backoff(Duration::from_millis(1))
            ));
        let report = poll(&client, &jobs()).await.unwrap();
        assert!(report.succeeded);
        assert_eq!(describe.num_calls(), 3);
    }

    #[tokio::test]
    async fn a_submission_failing_half_way_terminates_what_it_submitted() {
        let ok = mock!(Client::submit_job)
            .match_requests(|r| r.job_name().is_some_and(|n| !n.ends_with("egress")))
            .then_output(|| SubmitJobOutput::builder().job_id("j").job_name("n").build());
        let fail = mock!(Client::submit_job)
            .match_requests(|r| r.job_name().is_some_and(|n| n.ends_with("egress")))
            .then_error(|| {
                SubmitJobError::ClientException(
                    ClientException::builder()
                        .message("JobQueue q3 not found")
                        .build(),
                )
            });
        let terminate = mock!(Client::terminate_job).then_output(|| TerminateJobOutput::builder().build());
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&ok, &fail, &terminate]);
        let spec = spec(5, ["q1", "q2", "q3"]);
        let err = submit(&client, &spec).await.unwrap_err().to_string();
        assert!(
            err.contains("egress") && err.contains("q3") && err.contains("not found"),
            "{err}"
        );
        assert_eq!(terminate.num_calls(), 2);
    }

    #[tokio::test]
    async fn arrays_over_ten_thousand_are_refused_before_any_request() {
        let client = mock_client!(
            aws_sdk_batch,
            RuleMode::MatchAny,
            [] as [&aws_smithy_mocks::Rule; 0]
        );
        let spec = spec(10_001, ["q", "q", "q"]);
        let err = submit(&client, &spec).await.unwrap_err().to_string();
        assert!(err.contains("10001") && err.contains("10000"), "{err}");
    }

    #[test]
    fn job_names_are_valid_batch_names() {
        assert_eq!(
            job_name("20261128T000000Z-ab.c", Stage::Egress, ""),
            "tandem-20261128T000000Z-ab_c-egress"
        );
        assert!(job_name(&"x".repeat(200), Stage::Procure, "").len() <= 128);
    }
}
