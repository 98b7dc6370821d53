//! Stopping the jobs of an execution that ended without its own wind-down.
//!
//! Step Functions stops only the task it is waiting on when an execution is stopped
//! by hand, times out or fails outside a Catch: the egress `.sync` job. Procure and
//! process were submitted with plain `batch:submitJob` and would go on running for
//! hours (and keep writing to the volume). An EventBridge rule on the state machine's
//! "Execution Status Change" to ABORTED, TIMED_OUT or FAILED invokes the watch
//! function with this event; it finds the run the execution prepared (its history)
//! and terminates every unfinished job of the run, the run's own and its reruns'.

use serde::{Deserialize, Serialize};
use tandem_aws::batch::{self, RunJob};
use tandem_aws::sfn::ExecutionState;
use tandem_core::names::PerStage;

/// The event the rule sends: `{"abandoned_execution": {"execution_arn", "status"}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbandonedEvent {
    pub abandoned_execution: Abandoned,
}

/// The execution that ended.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Abandoned {
    pub execution_arn: String,
    /// ABORTED, TIMED_OUT or FAILED.
    pub status: ExecutionState,
    /// When the execution started and stopped (ms since the epoch, the event's
    /// `startDate` and `stopDate`): only jobs created in between are the execution's,
    /// so a late or retried event never stops a rerun started after it.
    #[serde(default)]
    pub start_date: Option<i64>,
    #[serde(default)]
    pub stop_date: Option<i64>,
}

/// What was done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReapReport {
    pub execution_arn: String,
    pub status: ExecutionState,
    /// The run the execution prepared, when it got that far.
    pub run_id: Option<String>,
    /// Every job of the run found, finished or not.
    pub jobs: Vec<RunJob>,
    /// The unfinished jobs terminated.
    pub terminated: Vec<String>,
}

/// Finds the execution's run and terminates its unfinished jobs created while the
/// execution ran. An error (the history unreadable, a job that could not be
/// terminated) fails the invocation: Lambda retries an asynchronous invocation twice,
/// and the error is in the function's log.
pub async fn handle(
    batch_client: &batch::Client,
    sfn_client: &tandem_aws::sfn::Client,
    queues: &PerStage<String>,
    event: AbandonedEvent,
) -> Result<ReapReport, String> {
    let Abandoned {
        execution_arn,
        status,
        start_date,
        stop_date,
    } = event.abandoned_execution;
    if !status.abandoned() {
        return Err(format!(
            "execution {execution_arn} is {status}: only an ABORTED, TIMED_OUT or FAILED execution's jobs are stopped"
        ));
    }
    let chain = |e: tandem_core::Error| tandem_core::error::chain(&e);
    let run_id = tandem_aws::sfn::prepared_run_id(sfn_client, &execution_arn)
        .await
        .map_err(chain)?;
    let Some(run) = run_id.clone() else {
        tracing::info!(%execution_arn, %status, "the execution prepared no run: no job to stop");
        return Ok(ReapReport {
            execution_arn,
            status,
            run_id,
            jobs: vec![],
            terminated: vec![],
        });
    };
    let run: tandem_core::layout::RunId = run.parse().map_err(chain)?;
    // Batch's clock and Step Functions' may differ by a little.
    const SKEW_MS: i64 = 60_000;
    let jobs: Vec<RunJob> = batch::jobs_of_run(batch_client, queues, &run)
        .await
        .map_err(chain)?
        .into_iter()
        .filter(|j| start_date.is_none_or(|t| j.created_at >= t - SKEW_MS))
        .filter(|j| stop_date.is_none_or(|t| j.created_at <= t + SKEW_MS))
        .collect();
    let reason = format!("tandem: execution {status}");
    let (terminated, not) = batch::terminate_jobs(batch_client, &jobs, &reason).await;
    let report = ReapReport {
        execution_arn,
        status,
        run_id,
        jobs,
        terminated,
    };
    tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "stopped the run's jobs");
    if !not.is_empty() {
        return Err(format!(
            "run {run}: could not terminate {} (the others: {})",
            not.join("; "),
            if report.terminated.is_empty() {
                "none".to_string()
            } else {
                report.terminated.join(", ")
            }
        ));
    }
    Ok(report)
}

/// The three stages' queues, from `TANDEM_QUEUES=PROCURE,PROCESS,EGRESS`.
pub fn queues_from_env() -> Result<PerStage<String>, String> {
    parse_queues(&std::env::var("TANDEM_QUEUES").map_err(|_| "TANDEM_QUEUES is not set".to_string())?)
}

/// `PROCURE,PROCESS,EGRESS`.
pub fn parse_queues(raw: &str) -> Result<PerStage<String>, String> {
    PerStage::parse_three(raw)
        .ok_or_else(|| format!("TANDEM_QUEUES={raw:?}: expected the three queues as procure,process,egress"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_batch::operation::list_jobs::ListJobsOutput;
    use aws_sdk_batch::operation::terminate_job::TerminateJobOutput;
    use aws_sdk_batch::types::{JobStatus, JobSummary};
    use aws_sdk_sfn::operation::get_execution_history::GetExecutionHistoryOutput;
    use aws_sdk_sfn::types::{HistoryEvent, HistoryEventType, StateExitedEventDetails};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use tandem_aws::calls::contract::Calls;
    use tandem_core::names::Stage;

    const EXECUTION: &str = "arn:aws:states:us-east-2:123456789012:execution:PipelineStack-run:e1";

    fn event(status: &str) -> AbandonedEvent {
        serde_json::from_value(serde_json::json!({
            "abandoned_execution": {"execution_arn": EXECUTION, "status": status}
        }))
        .unwrap()
    }

    fn history(prepared: Option<&'static str>) -> aws_smithy_mocks::Rule {
        mock!(tandem_aws::sfn::Client::get_execution_history).then_output(move || {
            let exited = |name: &str, output: String| {
                HistoryEvent::builder()
                    .id(3)
                    .r#type(HistoryEventType::TaskStateExited)
                    .timestamp(aws_smithy_types::DateTime::from_secs(0))
                    .state_exited_event_details(
                        StateExitedEventDetails::builder()
                            .name(name)
                            .output(output)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap()
            };
            let mut out = GetExecutionHistoryOutput::builder().set_events(Some(vec![]));
            if let Some(run) = prepared {
                out = out.events(exited(
                    "Prepare",
                    format!(r#"{{"run": {{"run_id": "{run}", "array_size": 10}}}}"#),
                ));
            }
            out.build().unwrap()
        })
    }

    fn listed(stage: Stage, jobs: &[(&str, &str, JobStatus)]) -> aws_smithy_mocks::Rule {
        let jobs: Vec<(String, String, JobStatus)> = jobs
            .iter()
            .map(|(i, n, s)| (i.to_string(), n.to_string(), s.clone()))
            .collect();
        let queue = format!("q-{}", stage.name());
        mock!(batch::Client::list_jobs)
            .match_requests(move |r| r.job_queue() == Some(queue.as_str()))
            .then_output(move || {
                let mut out = ListJobsOutput::builder();
                for (id, name, status) in &jobs {
                    out = out.job_summary_list(
                        JobSummary::builder()
                            .job_id(id)
                            .job_name(name)
                            .status(status.clone())
                            .build(),
                    );
                }
                out.build()
            })
    }

    fn queues() -> PerStage<String> {
        PerStage::from_fn(|s| format!("q-{}", s.name()))
    }

    #[tokio::test]
    async fn a_stopped_execution_leaves_no_job_of_its_run_running() {
        let run = "20261130T020000Z-abc123";
        let h = history(Some(run));
        let name = |s: Stage, suffix: &str| batch::job_name(run, s, suffix);
        let procure = listed(
            Stage::Procure,
            &[
                ("p", &name(Stage::Procure, ""), JobStatus::Running),
                ("p-old", &name(Stage::Procure, "-rerun-x"), JobStatus::Succeeded),
            ],
        );
        let process = listed(
            Stage::Process,
            &[("q", &name(Stage::Process, ""), JobStatus::Pending)],
        );
        let egress = listed(
            Stage::Egress,
            &[("e", &name(Stage::Egress, ""), JobStatus::Failed)],
        );
        let terminate = mock!(batch::Client::terminate_job)
            .match_requests(|r| {
                matches!(r.job_id(), Some("p" | "q")) && r.reason() == Some("tandem: execution ABORTED")
            })
            .then_output(|| TerminateJobOutput::builder().build());
        let calls = Calls::new("watch function");
        let b = mock_client!(
            aws_sdk_batch,
            RuleMode::MatchAny,
            [&procure, &process, &egress, &terminate],
            |c| c.interceptor(calls.recorder(tandem_aws::calls::resolve::batch))
        );
        let s = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&h], |c| c
            .interceptor(calls.recorder(tandem_aws::calls::resolve::sfn)));
        let report = handle(&b, &s, &queues(), event("ABORTED")).await.unwrap();
        assert_eq!(report.run_id.as_deref(), Some(run));
        assert_eq!(terminate.num_calls(), 2, "{report:?}");
        assert_eq!(report.terminated.len(), 2);
        assert_eq!(report.jobs.len(), 4);
    }

    #[tokio::test]
    async fn a_late_event_never_stops_a_rerun_started_after_the_execution() {
        // The execution ran from t=1000 s to t=2000 s; a rerun's jobs were created at
        // t=5000 s, after it stopped: a late or retried event must leave them alone.
        let run = "r1";
        let h = history(Some(run));
        let job = |id: &str, name: String, created: i64| {
            JobSummary::builder()
                .job_id(id)
                .job_name(name)
                .status(JobStatus::Running)
                .created_at(created)
                .build()
        };
        let list = mock!(batch::Client::list_jobs).then_compute_output(move |r| {
            let stage: Stage = r.job_queue().unwrap().trim_start_matches("q-").parse().unwrap();
            ListJobsOutput::builder()
                .job_summary_list(job("own", batch::job_name(run, stage, ""), 1_500_000))
                .job_summary_list(job("rerun", batch::job_name(run, stage, "-rerun-S9"), 5_000_000))
                .build()
        });
        let terminate = mock!(batch::Client::terminate_job)
            .match_requests(|r| r.job_id() == Some("own"))
            .then_output(|| TerminateJobOutput::builder().build());
        let b = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&list, &terminate]);
        let s = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&h]);
        let event: AbandonedEvent = serde_json::from_value(serde_json::json!({
            "abandoned_execution": {
                "execution_arn": EXECUTION, "status": "ABORTED",
                "start_date": 1_000_000, "stop_date": 2_000_000
            }
        }))
        .unwrap();
        let report = handle(&b, &s, &queues(), event).await.unwrap();
        assert_eq!(terminate.num_calls(), 3, "{report:?}");
        assert!(report.jobs.iter().all(|j| j.job_id == "own"));
    }

    #[tokio::test]
    async fn an_execution_stopped_before_prepare_has_nothing_to_stop() {
        let h = history(None);
        let b = mock_client!(
            aws_sdk_batch,
            RuleMode::MatchAny,
            [] as [&aws_smithy_mocks::Rule; 0]
        );
        let s = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&h]);
        let report = handle(&b, &s, &queues(), event("TIMED_OUT")).await.unwrap();
        assert!(report.run_id.is_none() && report.jobs.is_empty());
    }

    #[tokio::test]
    async fn a_job_that_cannot_be_terminated_fails_the_invocation_by_name() {
        let run = "r1";
        let h = history(Some(run));
        let procure = listed(
            Stage::Procure,
            &[(
                "p",
                &batch::job_name(run, Stage::Procure, ""),
                JobStatus::Runnable,
            )],
        );
        let process = listed(Stage::Process, &[]);
        let egress = listed(Stage::Egress, &[]);
        let terminate = mock!(batch::Client::terminate_job).then_error(|| {
            aws_sdk_batch::operation::terminate_job::TerminateJobError::ClientException(
                aws_sdk_batch::types::error::ClientException::builder()
                    .message("not authorized")
                    .build(),
            )
        });
        let b = mock_client!(
            aws_sdk_batch,
            RuleMode::MatchAny,
            [&procure, &process, &egress, &terminate]
        );
        let s = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&h]);
        let err = handle(&b, &s, &queues(), event("FAILED")).await.unwrap_err();
        assert!(
            err.contains("could not terminate procure") && err.contains("(p)"),
            "{err}"
        );
    }

    #[test]
    fn the_event_and_the_queues_are_checked() {
        assert!(
            serde_json::from_str::<AbandonedEvent>(r#"{"abandoned_execution": {"execution_arn": "a"}}"#)
                .is_err()
        );
        assert_eq!(
            parse_queues("a, b ,c").unwrap(),
            PerStage(["a".into(), "b".into(), "c".into()])
        );
        for bad in ["", "a,b", "a,,c", "a,b,c,d"] {
            let err = parse_queues(bad).unwrap_err();
            assert!(err.contains("procure,process,egress"), "{bad:?}: {err}");
        }
    }

    #[tokio::test]
    async fn a_running_execution_is_refused() {
        let b = mock_client!(
            aws_sdk_batch,
            RuleMode::MatchAny,
            [] as [&aws_smithy_mocks::Rule; 0]
        );
        let s = mock_client!(
            aws_sdk_sfn,
            RuleMode::MatchAny,
            [] as [&aws_smithy_mocks::Rule; 0]
        );
        let err = handle(&b, &s, &queues(), event("RUNNING")).await.unwrap_err();
        assert!(err.contains("RUNNING"), "{err}");
    }
}
