//! The watch handler: one `DescribeJobs` (and `ListJobs` for failed arrays) per call.
//! The state machine calls it after the egress job ends (or fails) to name the failed
//! children; its output is bounded (see [`WatchReport`]) so it always fits in a state.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use tandem_aws::batch::{self, Client, WatchReport};
use tandem_core::names::{PerStage, Stage};

/// The handler's configuration, read once from the environment.
///
/// - `TANDEM_ROOT` (optional): the EFS mount in the function. With it, and a
///   `run_id` in the event, the full list of failed children is written next to the
///   run (`ROOT/RUN/failed-children.json`).
/// - `TANDEM_BUCKET` (optional): the run's bucket: the full list is also published
///   there (`RUN/failed-children.json`), where operators without the volume read it,
///   and the submission is added to the run's job record (`RUN/batch-jobs.json`).
/// - `TANDEM_QUEUES` (optional): the stages' queues, where a stage whose id the event
///   lacks is looked up by its name.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The shared volume, when the function mounts it.
    pub root: Option<PathBuf>,
    /// The bucket URL, when the function may write to it.
    pub bucket: Option<String>,
    /// The stages' queues.
    pub queues: Option<PerStage<String>>,
}

impl Config {
    /// Reads `TANDEM_ROOT`, `TANDEM_BUCKET` and `TANDEM_QUEUES`.
    pub fn from_env() -> Result<Self, String> {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        Ok(Self {
            root: var("TANDEM_ROOT").map(PathBuf::from),
            bucket: var("TANDEM_BUCKET").and_then(|v| v.into_string().ok()),
            queues: var("TANDEM_QUEUES")
                .map(|v| crate::reap::parse_queues(&v.to_string_lossy()))
                .transpose()?,
        })
    }
}

/// The input event.
///
/// `jobs` is either the three job ids `[procure, process, egress]`, or what the state
/// machine collected, `{"procure": {"JobId": ..}, "process": {..}, "egress": {..}}`,
/// where a stage whose submission failed is missing. `error` is the state machine's
/// caught error (`{"Error", "Cause"}`): when the egress job itself failed, its id is in
/// the cause. With `terminate_unfinished`, stages still running are terminated (a
/// failed run is wound down, not left to run for hours).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchEvent {
    /// The jobs submitted so far.
    pub jobs: Jobs,
    /// The run, for the full list of failed children and the expected job names
    /// (checked when the event is read).
    #[serde(default)]
    pub run_id: Option<tandem_core::layout::RunId>,
    /// The error the state machine caught, if it got here through a Catch.
    #[serde(default)]
    pub error: Option<StateError>,
    /// Terminate the stages that have not finished.
    #[serde(default)]
    pub terminate_unfinished: bool,
    /// A rerun's index map in the run directory: the report names the original
    /// children, not the compact array's. Empty or absent for a run's own jobs.
    #[serde(default)]
    pub index_map: Option<String>,
    /// The stages' job names, as prepare made them (a rerun's have a suffix): a stage
    /// whose id the state machine does not have (a `.sync` wait that failed or timed
    /// out) is found by its name.
    #[serde(default)]
    pub job_names: Option<BTreeMap<String, String>>,
    /// The children per stage of this submission (for the job record).
    #[serde(default)]
    pub array_size: Option<u32>,
}

impl WatchEvent {
    /// Stage `stage`'s job name: the event's, else the run's own.
    fn job_name(&self, stage: Stage) -> Option<String> {
        match &self.job_names {
            Some(names) => names.get(stage.name()).cloned(),
            None => self.run_id.as_deref().map(|run| batch::job_name(run, stage, "")),
        }
    }
}

/// The job ids of the event, in either shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Jobs {
    /// `[procure, process, egress]`.
    List(Vec<String>),
    /// `{"procure": {"JobId": ..}, ...}`, stages possibly missing.
    ByStage(BTreeMap<String, JobRef>),
}

/// One submitted job, as the state machine keeps it.
#[derive(Debug, Clone, Deserialize)]
pub struct JobRef {
    /// Batch job id.
    #[serde(rename = "JobId")]
    pub job_id: String,
}

/// An error caught by a Step Functions Catch.
#[derive(Debug, Clone, Deserialize)]
pub struct StateError {
    /// The error name (`States.TaskFailed`, `Batch.ClientException`, ...).
    #[serde(rename = "Error", default)]
    pub error: String,
    /// The cause: for a failed `.sync` Batch job, the job's description as JSON.
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

/// The job a caught error's cause describes, when it is a Batch job named `name`.
fn job_in_cause(cause: &str, name: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(cause).ok()?;
    (v.get("JobName")?.as_str()? == name)
        .then(|| v.get("JobId")?.as_str().map(str::to_string))
        .flatten()
        .filter(|id| !id.is_empty())
}

/// The stages submitted, with their job ids, and the stages never submitted.
type Resolved = (Vec<(Stage, String)>, Vec<Stage>);

/// The (stage, job id) pairs the event names, and the stages never submitted.
fn resolve(event: &WatchEvent) -> Result<Resolved, String> {
    match &event.jobs {
        Jobs::List(ids) => {
            if ids.len() != 3 || ids.iter().any(|j| j.is_empty()) {
                return Err(format!(
                    "\"jobs\" must hold the three job ids (procure, process, egress), got {ids:?}"
                ));
            }
            Ok((
                Stage::ALL.into_iter().zip(ids.iter().cloned()).collect(),
                Vec::new(),
            ))
        }
        Jobs::ByStage(map) => {
            if let Some(bad) = map.keys().find(|k| k.parse::<Stage>().is_err()) {
                return Err(format!(
                    "\"jobs\" has an entry {bad:?}: expected procure, process and egress"
                ));
            }
            let mut found = Vec::new();
            let mut missing = Vec::new();
            for stage in Stage::ALL {
                let from_map = map
                    .get(stage.name())
                    .map(|j| j.job_id.clone())
                    .filter(|id| !id.is_empty());
                // A failed .sync job: the state machine has no id, the cause has it
                // (under the stage's name: a rerun's has a suffix).
                let from_cause = || {
                    let cause = event.error.as_ref()?.cause.as_deref()?;
                    job_in_cause(cause, &event.job_name(stage)?)
                };
                match from_map.or_else(from_cause) {
                    Some(id) => found.push((stage, id)),
                    None => missing.push(stage),
                }
            }
            Ok((found, missing))
        }
    }
}

/// Describes the jobs once. The output is [`WatchReport`]: `finished`, `succeeded`,
/// `stages`, failure counts, groups and a sample, `failed_indices` (the first 1,000
/// per stage), `not_submitted`, `terminated`, `summary`, and `failed_list` when the
/// full list was written next to the run.
pub async fn handle(client: &Client, config: &Config, event: WatchEvent) -> Result<WatchReport, String> {
    let (mut jobs, mut not_submitted) = resolve(&event)?;
    // A stage the event has no id for (a .sync wait that timed out before its id was
    // kept) may still have been submitted: look it up by its exact name.
    if let Some(queues) = &config.queues {
        let mut still = Vec::new();
        for stage in not_submitted {
            let found = match event.job_name(stage) {
                Some(name) => batch::newest_job_named(client, &queues[stage], &name)
                    .await
                    .map_err(|e| tandem_core::error::chain(&e))?,
                None => None,
            };
            match found {
                Some(id) => jobs.push((stage, id)),
                None => still.push(stage),
            }
        }
        jobs.sort_by_key(|(s, _)| s.position());
        not_submitted = still;
    }
    let map = match event.index_map.as_deref().filter(|m| !m.is_empty()) {
        Some(file) => {
            let (Some(root), Some(run)) = (&config.root, &event.run_id) else {
                return Err(format!(
                    "index map {file:?}: the function needs TANDEM_ROOT and the event a run_id to read it"
                ));
            };
            let layout = tandem_core::layout::RunLayout::new(root, run);
            Some(
                tandem_core::index_map::load(&layout, file, tandem_core::plan::MAX_ARRAY_SIZE)
                    .map_err(|e| tandem_core::error::chain(&e))?,
            )
        }
        None => None,
    };
    let (mut report, mut failed) = if jobs.is_empty() {
        (batch::summarize(true, false, Vec::new(), &[]), Vec::new())
    } else {
        let polled = batch::poll(client, &jobs)
            .await
            .map_err(|e| tandem_core::error::chain(&e))?;
        (polled.report, polled.failed)
    };
    if !not_submitted.is_empty() {
        // A stage that was never submitted: the run is over, and it failed.
        report.not_submitted = not_submitted;
        report.succeeded = false;
    }
    if event.terminate_unfinished {
        let why = match &event.error {
            Some(e) => format!("tandem: the run failed ({})", e.error),
            None => "tandem: the run failed".to_string(),
        };
        report.terminated = batch::terminate_unfinished(client, &report, &why).await;
        if !report.terminated.is_empty() || !report.not_submitted.is_empty() {
            report.finished = true;
            report.succeeded = false;
        }
    }
    if let Some(map) = &map {
        batch::map_to_original(&mut report, &mut failed, map);
    }
    if let (Some(root), Some(run), false) = (&config.root, &event.run_id, failed.is_empty()) {
        match batch::write_failed_list(&root.join(run), &failed) {
            Ok(path) => report.failed_list = Some(path.display().to_string()),
            Err(e) => {
                tracing::warn!(error = %tandem_core::error::chain(&e), "could not write the failed list")
            }
        }
    }
    if let (Some(url), Some(run)) = (&config.bucket, &event.run_id) {
        // The submission joins the run's job record; the full list of failed children
        // goes next to the results. The S3 store blocks on its own runtime: off this
        // one's threads.
        let submission = event.array_size.map(|array_size| batch::Submission {
            array_size,
            index_map: event.index_map.clone().filter(|m| !m.is_empty()),
            jobs: jobs
                .iter()
                .map(|(stage, id)| batch::SubmittedStage {
                    stage: *stage,
                    job_id: id.clone(),
                    job_name: event.job_name(*stage).unwrap_or_default(),
                    array_size,
                })
                .collect(),
        });
        let (url, run, list) = (url.clone(), run.clone(), failed.clone());
        let published = tokio::task::spawn_blocking(move || -> tandem_core::Result<Option<String>> {
            let store = tandem_aws::open_store(&url)?;
            if let Some(submission) = submission.filter(|s| s.jobs.len() == 3) {
                let mut record = batch::JobRecord::fetch(store.as_ref(), &run)?.unwrap_or(batch::JobRecord {
                    run_id: run.clone(),
                    submissions: vec![],
                });
                if record.add(submission) {
                    record.publish(store.as_ref())?;
                }
            }
            if list.is_empty() {
                return Ok(None);
            }
            batch::publish_failed_list(store.as_ref(), &run, &list).map(Some)
        })
        .await;
        match published {
            Ok(Ok(location)) => report.failed_list = location.or(report.failed_list.take()),
            Ok(Err(e)) => {
                tracing::warn!(error = %tandem_core::error::chain(&e), "could not publish the run's records")
            }
            Err(e) => tracing::warn!(error = %e, "could not publish the run's records"),
        }
    }
    report.summarize_line();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_batch::operation::describe_jobs::DescribeJobsOutput;
    use aws_sdk_batch::operation::list_jobs::ListJobsOutput;
    use aws_sdk_batch::operation::terminate_job::TerminateJobOutput;
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
        let calls = tandem_aws::calls::contract::Calls::new("watch function");
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&describe, &list], |c| c
            .interceptor(calls.recorder(tandem_aws::calls::resolve::batch)));
        let out = handle(&client, &Config::default(), event).await.unwrap();
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["finished"], true);
        assert_eq!(json["succeeded"], false);
        assert_eq!(json["failed_indices"], serde_json::json!([[2], [2], [2]]));
        assert_eq!(json["stages"][0]["counts"]["FAILED"], 1);
        assert!(json.get("failed_list").is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reruns_watch_names_the_original_children_and_publishes_the_list() {
        // The rerun array's child 2 stands for original child 41 (its index map);
        // operators without the volume read the full list in the bucket.
        let dir = tempfile::tempdir().unwrap();
        let layout = tandem_core::layout::RunLayout::new(&dir.path().join("efs"), &"run-1".parse().unwrap());
        std::fs::create_dir_all(layout.dir()).unwrap();
        let map = tandem_core::index_map::write(&layout, "S1", &[5, 17, 41]).unwrap();
        let bucket = format!("file://{}", dir.path().join("bucket").display());
        let config = Config {
            root: Some(dir.path().join("efs")),
            bucket: Some(bucket.clone()),
            queues: None,
        };
        let describe = mock!(Client::describe_jobs).then_output(|| {
            DescribeJobsOutput::builder()
                .jobs(job("a", JobStatus::Succeeded, 3, 0))
                .jobs(job("b", JobStatus::Succeeded, 3, 0))
                .jobs(job("c", JobStatus::Failed, 2, 1))
                .build()
        });
        let list = mock!(Client::list_jobs).then_output(|| {
            ListJobsOutput::builder()
                .job_summary_list(
                    JobSummary::builder()
                        .job_id("c:2")
                        .job_name("c")
                        .status(JobStatus::Failed)
                        .status_reason("Essential container in task exited")
                        .array_properties(ArrayPropertiesSummary::builder().index(2).build())
                        .build(),
                )
                .build()
        });
        let calls = tandem_aws::calls::contract::Calls::new("watch function");
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&describe, &list], |c| c
            .interceptor(calls.recorder(tandem_aws::calls::resolve::batch)));
        let event: WatchEvent = serde_json::from_value(serde_json::json!({
            "jobs": ["a", "b", "c"], "run_id": "run-1", "index_map": map
        }))
        .unwrap();
        let out = handle(&client, &config, event).await.unwrap();
        assert_eq!(out.failed_indices.0, [vec![], vec![], vec![41]]);
        assert!(out.summary.contains("41"), "{}", out.summary);
        let store = tandem_core::store::open(&bucket).unwrap();
        let listed: Vec<tandem_aws::batch::FailedChild> =
            serde_json::from_slice(&store.get("run-1/failed-children.json").unwrap()).unwrap();
        assert_eq!(listed.iter().map(|f| f.index).collect::<Vec<_>>(), [41]);
        assert!(
            out.failed_list
                .as_deref()
                .unwrap()
                .ends_with("run-1/failed-children.json")
        );
        // A map that is not there is an error, never a report in the array's numbers.
        let event: WatchEvent = serde_json::from_value(serde_json::json!({
            "jobs": ["a", "b", "c"], "run_id": "run-1", "index_map": "index-map-gone.json"
        }))
        .unwrap();
        let err = handle(&client, &config, event).await.unwrap_err();
        assert!(err.contains("index-map-gone.json"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_timed_out_wait_still_stops_egress_and_the_submission_is_recorded() {
        // The egress wait timed out: the state machine kept no id for it and the cause
        // is not the job's. The watch finds it by its (rerun) name in its queue,
        // terminates it with the stages still running, and adds the submission to the
        // run's job record in the bucket, once.
        let names = serde_json::json!({
            "procure": "tandem-run-1-procure-rerun-S1",
            "process": "tandem-run-1-process-rerun-S1",
            "egress": "tandem-run-1-egress-rerun-S1"
        });
        let describe = mock!(Client::describe_jobs).then_output(|| {
            DescribeJobsOutput::builder()
                .jobs(job("p", JobStatus::Succeeded, 3, 0))
                .jobs(job("q", JobStatus::Running, 1, 0))
                .jobs(job("e", JobStatus::Pending, 0, 0))
                .build()
        });
        let list = mock!(Client::list_jobs)
            .match_requests(|r| r.job_queue() == Some("q3"))
            .then_output(|| {
                ListJobsOutput::builder()
                    .job_summary_list(
                        JobSummary::builder()
                            .job_id("e")
                            .job_name("tandem-run-1-egress-rerun-S1")
                            .created_at(5)
                            .build(),
                    )
                    .build()
            });
        let terminate = mock!(Client::terminate_job)
            .match_requests(|r| matches!(r.job_id(), Some("q" | "e")))
            .then_output(|| TerminateJobOutput::builder().build());
        let calls = tandem_aws::calls::contract::Calls::new("watch function");
        let client = mock_client!(
            aws_sdk_batch,
            RuleMode::MatchAny,
            [&describe, &list, &terminate],
            |c| c.interceptor(calls.recorder(tandem_aws::calls::resolve::batch))
        );
        let dir = tempfile::tempdir().unwrap();
        let bucket = format!("file://{}", dir.path().join("bucket").display());
        let config = Config {
            root: None,
            bucket: Some(bucket.clone()),
            queues: Some(PerStage(["q1".into(), "q2".into(), "q3".into()])),
        };
        let event = || -> WatchEvent {
            serde_json::from_value(serde_json::json!({
                "jobs": {"procure": {"JobId": "p"}, "process": {"JobId": "q"}},
                "run_id": "run-1",
                "job_names": names,
                "array_size": 3,
                "error": {"Error": "States.Timeout", "Cause": "The task timed out."},
                "terminate_unfinished": true
            }))
            .unwrap()
        };
        let out = handle(&client, &config, event()).await.unwrap();
        assert!(out.not_submitted.is_empty(), "{out:?}");
        assert_eq!(terminate.num_calls(), 2, "{:?}", out.terminated);
        assert!(out.finished && !out.succeeded);
        handle(&client, &config, event()).await.unwrap();
        let store = tandem_core::store::open(&bucket).unwrap();
        let record =
            tandem_aws::batch::JobRecord::parse(&store.get("run-1/batch-jobs.json").unwrap(), "record")
                .unwrap();
        assert_eq!(
            record.submissions.len(),
            1,
            "the same submission was recorded twice"
        );
        let jobs: Vec<&str> = record.submissions[0]
            .jobs
            .iter()
            .map(|j| j.job_id.as_str())
            .collect();
        assert_eq!(jobs, ["p", "q", "e"]);
        assert_eq!(
            record.submissions[0].jobs[2].job_name,
            "tandem-run-1-egress-rerun-S1"
        );
    }

    #[tokio::test]
    async fn a_failed_reruns_egress_is_found_in_the_cause_under_its_own_name() {
        let describe = mock!(Client::describe_jobs).then_output(|| {
            DescribeJobsOutput::builder()
                .jobs(job("p", JobStatus::Succeeded, 2, 0))
                .jobs(job("q", JobStatus::Succeeded, 2, 0))
                .jobs(job("e", JobStatus::Failed, 1, 1))
                .build()
        });
        let list = mock!(Client::list_jobs).then_output(|| ListJobsOutput::builder().build());
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&describe, &list]);
        let cause =
            serde_json::json!({"JobName": "tandem-run-1-egress-rerun-S1", "JobId": "e", "Status": "FAILED"});
        let event: WatchEvent = serde_json::from_value(serde_json::json!({
            "jobs": {"procure": {"JobId": "p"}, "process": {"JobId": "q"}},
            "run_id": "run-1",
            "job_names": {
                "procure": "tandem-run-1-procure-rerun-S1",
                "process": "tandem-run-1-process-rerun-S1",
                "egress": "tandem-run-1-egress-rerun-S1"
            },
            "error": {"Error": "States.TaskFailed", "Cause": cause.to_string()}
        }))
        .unwrap();
        let out = handle(&client, &Config::default(), event).await.unwrap();
        assert!(
            out.not_submitted.is_empty(),
            "egress was called never submitted: {out:?}"
        );
        assert_eq!(out.stages.len(), 3);
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
        let calls = tandem_aws::calls::contract::Calls::new("watch function");
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&describe, &list], |c| c
            .interceptor(calls.recorder(tandem_aws::calls::resolve::batch)));
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("run-1")).unwrap();
        let config = Config {
            root: Some(dir.path().to_path_buf()),
            bucket: None,
            queues: None,
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

    fn describe(jobs: Vec<JobDetail>) -> aws_smithy_mocks::Rule {
        mock!(Client::describe_jobs)
            .then_output(move || DescribeJobsOutput::builder().set_jobs(Some(jobs.clone())).build())
    }

    #[tokio::test]
    async fn the_state_machines_success_event_reports_success() {
        let event: WatchEvent = serde_json::from_str(
            r#"{"run_id": "r1", "terminate_unfinished": false,
                "jobs": {"procure": {"JobId": "a"}, "process": {"JobId": "b"}, "egress": {"JobId": "c"}}}"#,
        )
        .unwrap();
        let d = describe(vec![
            job("a", JobStatus::Succeeded, 4, 0),
            job("b", JobStatus::Succeeded, 4, 0),
            job("c", JobStatus::Succeeded, 4, 0),
        ]);
        let calls = tandem_aws::calls::contract::Calls::new("watch function");
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&d], |c| c
            .interceptor(calls.recorder(tandem_aws::calls::resolve::batch)));
        let out = handle(&client, &Config::default(), event).await.unwrap();
        assert!(out.finished && out.succeeded, "{out:?}");
        assert!(out.summary.starts_with("the run succeeded"), "{}", out.summary);
    }

    #[tokio::test]
    async fn a_failed_egress_wait_is_named_from_the_caught_cause() {
        // RunEgress (.sync) failed: the state machine has procure and process ids,
        // and the egress job's description in the caught cause.
        let cause =
            serde_json::json!({"JobId": "c", "JobName": "tandem-r1-egress", "Status": "FAILED"}).to_string();
        let event = serde_json::json!({
            "run_id": "r1",
            "terminate_unfinished": true,
            "jobs": {"procure": {"JobId": "a"}, "process": {"JobId": "b"}},
            "error": {"Error": "States.TaskFailed", "Cause": cause},
        });
        let event: WatchEvent = serde_json::from_value(event).unwrap();
        let d = describe(vec![
            job("a", JobStatus::Succeeded, 4, 0),
            job("b", JobStatus::Failed, 3, 1),
            job("c", JobStatus::Failed, 3, 1),
        ]);
        let list = mock!(Client::list_jobs).then_output(|| {
            ListJobsOutput::builder()
                .job_summary_list(
                    JobSummary::builder()
                        .job_id("x:1")
                        .job_name("x")
                        .status(JobStatus::Failed)
                        .status_reason("Essential container in task exited")
                        .array_properties(ArrayPropertiesSummary::builder().index(1).build())
                        .build(),
                )
                .build()
        });
        let terminate = mock!(Client::terminate_job).then_output(|| TerminateJobOutput::builder().build());
        let calls = tandem_aws::calls::contract::Calls::new("watch function");
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&d, &list, &terminate], |c| c
            .interceptor(calls.recorder(tandem_aws::calls::resolve::batch)));
        let out = handle(&client, &Config::default(), event).await.unwrap();
        assert!(out.finished && !out.succeeded);
        assert_eq!(out.failed_indices.0, [vec![], vec![1], vec![1]]);
        assert!(out.not_submitted.is_empty());
        assert_eq!(terminate.num_calls(), 0, "finished jobs are not terminated");
        assert!(
            out.summary
                .contains("the run failed: 2 failed children (process [1]; egress [1])"),
            "{}",
            out.summary
        );
    }

    #[tokio::test]
    async fn a_failed_submission_names_the_missing_stages_and_stops_the_rest() {
        let event: WatchEvent = serde_json::from_value(serde_json::json!({
            "run_id": "r1",
            "terminate_unfinished": true,
            "jobs": {"procure": {"JobId": "a"}},
            "error": {"Error": "Batch.ClientException", "Cause": "JobQueue tandem-process not found"},
        }))
        .unwrap();
        let d = describe(vec![job("a", JobStatus::Runnable, 0, 0)]);
        let terminate = mock!(Client::terminate_job)
            .match_requests(|r| r.job_id() == Some("a"))
            .then_output(|| TerminateJobOutput::builder().build());
        let calls = tandem_aws::calls::contract::Calls::new("watch function");
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&d, &terminate], |c| c
            .interceptor(calls.recorder(tandem_aws::calls::resolve::batch)));
        let out = handle(&client, &Config::default(), event).await.unwrap();
        assert!(out.finished && !out.succeeded);
        assert_eq!(out.not_submitted, vec![Stage::Process, Stage::Egress]);
        assert_eq!(terminate.num_calls(), 1);
        assert!(
            out.summary.contains("never submitted: process, egress"),
            "{}",
            out.summary
        );
        assert!(out.summary.contains("procure (a): terminated"), "{}", out.summary);
        // Nothing submitted at all (procure's submission failed).
        let event: WatchEvent = serde_json::from_value(serde_json::json!({
            "run_id": "r1", "terminate_unfinished": true, "jobs": {},
            "error": {"Error": "Batch.ClientException", "Cause": "no such queue"},
        }))
        .unwrap();
        let calls = tandem_aws::calls::contract::Calls::new("watch function");
        let client = mock_client!(
            aws_sdk_batch,
            RuleMode::MatchAny,
            [] as [&aws_smithy_mocks::Rule; 0],
            |c| c.interceptor(calls.recorder(tandem_aws::calls::resolve::batch))
        );
        let out = handle(&client, &Config::default(), event).await.unwrap();
        assert!(out.finished && !out.succeeded);
        assert_eq!(out.not_submitted.len(), 3);
    }

    #[tokio::test]
    async fn an_event_with_an_unknown_stage_is_refused() {
        let event: WatchEvent =
            serde_json::from_str(r#"{"jobs": {"procure": {"JobId": "a"}, "bake": {"JobId": "b"}}}"#).unwrap();
        let calls = tandem_aws::calls::contract::Calls::new("watch function");
        let client = mock_client!(
            aws_sdk_batch,
            RuleMode::MatchAny,
            [] as [&aws_smithy_mocks::Rule; 0],
            |c| c.interceptor(calls.recorder(tandem_aws::calls::resolve::batch))
        );
        let err = handle(&client, &Config::default(), event).await.unwrap_err();
        assert!(err.contains("\"bake\""), "{err}");
    }

    #[tokio::test]
    async fn an_event_without_three_jobs_is_refused() {
        let calls = tandem_aws::calls::contract::Calls::new("watch function");
        let client = mock_client!(
            aws_sdk_batch,
            RuleMode::MatchAny,
            [] as [&aws_smithy_mocks::Rule; 0],
            |c| c.interceptor(calls.recorder(tandem_aws::calls::resolve::batch))
        );
        let err = handle(
            &client,
            &Config::default(),
            WatchEvent {
                jobs: Jobs::List(vec!["a".into()]),
                run_id: None,
                error: None,
                terminate_unfinished: false,
                index_map: None,
                job_names: None,
                array_size: None,
            },
        )
        .await
        .unwrap_err();
        assert!(err.contains("three job ids"), "{err}");
        assert!(serde_json::from_str::<WatchEvent>(r#"{"job": ["a"]}"#).is_err());
    }
}
