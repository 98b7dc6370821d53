//! Starting the deployed run state machine and following an execution to its end
//! (`tandem start`), through aws-sdk-sfn.

use std::time::{Duration, Instant};

pub use aws_sdk_sfn::Client;

/// A Step Functions client on `config` (its calls recorded when the process records
/// them, [`crate::calls`]).
pub fn client(config: &aws_config::SdkConfig) -> Client {
    Client::from_conf(
        crate::instrument!(
            aws_sdk_sfn::config::Builder::from(config),
            crate::calls::resolve::sfn
        )
        .build(),
    )
}
use serde::Serialize;
use tandem_core::{Error, Result};

use crate::sdk_message;

/// Starts an execution of `state_machine_arn` with `input` (the workload: records,
/// ids_per_node, seed, first_id) and returns its ARN.
pub async fn start(
    client: &Client,
    state_machine_arn: &str,
    input: &serde_json::Value,
    name: Option<&str>,
) -> Result<String> {
    let out = client
        .start_execution()
        .state_machine_arn(state_machine_arn)
        .input(input.to_string())
        .set_name(name.map(str::to_string))
        .send()
        .await
        .map_err(|e| Error::Backend {
            op: "start execution of",
            location: state_machine_arn.to_string(),
            message: sdk_message(&e),
        })?;
    Ok(out.execution_arn().to_string())
}

/// A Step Functions execution's status: typed, so "ended" and "succeeded" are decided
/// in one place, and serialized as Step Functions spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionState {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
    PendingRedrive,
    /// A status this build does not know.
    #[serde(untagged)]
    Other(String),
}

impl ExecutionState {
    /// As Step Functions spells it.
    pub fn as_str(&self) -> &str {
        match self {
            ExecutionState::Running => "RUNNING",
            ExecutionState::Succeeded => "SUCCEEDED",
            ExecutionState::Failed => "FAILED",
            ExecutionState::TimedOut => "TIMED_OUT",
            ExecutionState::Aborted => "ABORTED",
            ExecutionState::PendingRedrive => "PENDING_REDRIVE",
            ExecutionState::Other(s) => s,
        }
    }

    /// The execution ended without its own wind-down running to the end: stopped by
    /// hand, timed out, or failed.
    pub fn abandoned(&self) -> bool {
        matches!(
            self,
            ExecutionState::Aborted | ExecutionState::TimedOut | ExecutionState::Failed
        )
    }
}

impl From<&aws_sdk_sfn::types::ExecutionStatus> for ExecutionState {
    fn from(s: &aws_sdk_sfn::types::ExecutionStatus) -> Self {
        use aws_sdk_sfn::types::ExecutionStatus as S;
        match s {
            S::Running => ExecutionState::Running,
            S::Succeeded => ExecutionState::Succeeded,
            S::Failed => ExecutionState::Failed,
            S::TimedOut => ExecutionState::TimedOut,
            S::Aborted => ExecutionState::Aborted,
            S::PendingRedrive => ExecutionState::PendingRedrive,
            other => ExecutionState::Other(other.as_str().to_string()),
        }
    }
}

impl std::fmt::Display for ExecutionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One look at an execution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionReport {
    /// The execution.
    pub execution_arn: String,
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE.
    pub status: ExecutionState,
    /// The state it is in (while running) or ended in.
    pub current_state: Option<String>,
    /// The run the prepare step created, once it has.
    pub run_id: Option<String>,
    /// The execution's output, when it succeeded.
    pub output: Option<serde_json::Value>,
    /// The error, when it failed.
    pub error: Option<String>,
    /// The cause (the watch summary for a failed run).
    pub cause: Option<String>,
}

impl ExecutionReport {
    /// The execution has ended.
    pub fn finished(&self) -> bool {
        !matches!(
            self.status,
            ExecutionState::Running | ExecutionState::PendingRedrive
        )
    }

    /// The execution ended in SUCCEEDED.
    pub fn succeeded(&self) -> bool {
        self.status == ExecutionState::Succeeded
    }
}

fn backend(op: &'static str, arn: &str, message: String) -> Error {
    Error::Backend {
        op,
        location: arn.to_string(),
        message,
    }
}

/// Describes the execution once, with the state it is in and the run id from the
/// prepare step's output (read from the newest history events, one page).
pub async fn describe(client: &Client, execution_arn: &str) -> Result<ExecutionReport> {
    let d = client
        .describe_execution()
        .execution_arn(execution_arn)
        .send()
        .await
        .map_err(|e| backend("describe execution", execution_arn, sdk_message(&e)))?;
    let history = client
        .get_execution_history()
        .execution_arn(execution_arn)
        .reverse_order(true)
        .max_results(100)
        .include_execution_data(true)
        .send()
        .await
        .map_err(|e| backend("read the history of", execution_arn, sdk_message(&e)))?;
    let mut current_state = None;
    let mut run_id = None;
    for ev in history.events() {
        // The newest state entered is the one the execution is in.
        if current_state.is_none()
            && let Some(s) = ev.state_entered_event_details()
        {
            current_state = Some(s.name().to_string());
        }
        if let Some(x) = ev.state_exited_event_details()
            && x.name() == "Prepare"
            && let Some(v) = x
                .output()
                .and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())
        {
            run_id = v
                .pointer("/run/run_id")
                .and_then(|r| r.as_str())
                .map(str::to_string);
        }
    }
    let output: Option<serde_json::Value> = d.output().and_then(|o| serde_json::from_str(o).ok());
    if run_id.is_none() {
        run_id = output
            .as_ref()
            .and_then(|v| v.pointer("/run/run_id"))
            .and_then(|r| r.as_str())
            .map(str::to_string);
    }
    Ok(ExecutionReport {
        execution_arn: execution_arn.to_string(),
        status: ExecutionState::from(d.status()),
        current_state,
        run_id,
        output,
        error: d.error().map(str::to_string),
        cause: d.cause().map(str::to_string),
    })
}

/// The run the prepare step of execution `execution_arn` created, read from its whole
/// history (newest first, every page): `None` when the execution ended or was stopped
/// before prepare finished, so no run and no job exists.
pub async fn prepared_run_id(client: &Client, execution_arn: &str) -> Result<Option<String>> {
    let mut token: Option<String> = None;
    loop {
        let page = client
            .get_execution_history()
            .execution_arn(execution_arn)
            .reverse_order(true)
            .include_execution_data(true)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| backend("read the history of", execution_arn, sdk_message(&e)))?;
        for ev in page.events() {
            if let Some(x) = ev.state_exited_event_details()
                && x.name() == "Prepare"
                && let Some(run) = x
                    .output()
                    .and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok())
                    .and_then(|v| v.pointer("/run/run_id")?.as_str().map(str::to_string))
            {
                return Ok(Some(run));
            }
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(None),
        }
    }
}

/// How [`follow`] polls.
#[derive(Debug, Clone, Copy)]
pub struct FollowOptions {
    /// First interval between polls; it doubles while nothing changes.
    pub interval: Duration,
    /// Longest interval between polls.
    pub max_interval: Duration,
    /// Give up when nothing has changed for this long.
    pub stall_timeout: Option<Duration>,
}

/// Polls the execution until it ends, calling `on_change` whenever its status or
/// state changes. `Ok(Err(last))` when nothing changed for the stall timeout.
pub async fn follow(
    client: &Client,
    execution_arn: &str,
    options: FollowOptions,
    mut on_change: impl FnMut(&ExecutionReport),
) -> Result<std::result::Result<ExecutionReport, ExecutionReport>> {
    let mut interval = options.interval;
    let mut last: Option<(ExecutionState, Option<String>)> = None;
    let mut last_change = Instant::now();
    loop {
        let r = describe(client, execution_arn).await?;
        let key = (r.status.clone(), r.current_state.clone());
        if last.as_ref() != Some(&key) {
            on_change(&r);
            last = Some(key);
            last_change = Instant::now();
            interval = options.interval;
        } else {
            interval = (interval * 2).min(options.max_interval);
        }
        if r.finished() {
            return Ok(Ok(r));
        }
        if let Some(t) = options.stall_timeout
            && last_change.elapsed() >= t
        {
            return Ok(Err(r));
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
    use aws_sdk_sfn::operation::get_execution_history::GetExecutionHistoryOutput;
    use aws_sdk_sfn::operation::start_execution::StartExecutionOutput;
    use aws_sdk_sfn::types::{
        ExecutionStatus, HistoryEvent, HistoryEventType, StateEnteredEventDetails, StateExitedEventDetails,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::DateTime;

    fn describe_out(
        status: ExecutionStatus,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> DescribeExecutionOutput {
        DescribeExecutionOutput::builder()
            .execution_arn("arn:aws:states:us-east-2:123456789012:execution:Run:e1")
            .state_machine_arn("arn:aws:states:us-east-2:123456789012:stateMachine:Run")
            .status(status)
            .start_date(DateTime::from_secs(0))
            .set_error(error.map(str::to_string))
            .set_cause(cause.map(str::to_string))
            .build()
            .unwrap()
    }

    fn history(state: &str) -> GetExecutionHistoryOutput {
        let ev = |id: i64, ty: HistoryEventType| {
            HistoryEvent::builder()
                .id(id)
                .timestamp(DateTime::from_secs(id))
                .r#type(ty)
        };
        GetExecutionHistoryOutput::builder()
            .events(
                ev(9, HistoryEventType::TaskStateEntered)
                    .state_entered_event_details(
                        StateEnteredEventDetails::builder().name(state).build().unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .events(
                ev(4, HistoryEventType::TaskStateExited)
                    .state_exited_event_details(
                        StateExitedEventDetails::builder()
                            .name("Prepare")
                            .output(r#"{"run": {"run_id": "20261128T000000Z-abc123", "array_size": 10000}}"#)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn a_run_is_followed_through_its_states_to_a_failure_with_the_watch_summary() {
        let start_rule = mock!(Client::start_execution)
            .match_requests(|r| r.input().is_some_and(|i| i.contains("\"records\":1000")))
            .then_output(|| {
                StartExecutionOutput::builder()
                    .execution_arn("arn:aws:states:us-east-2:123456789012:execution:Run:e1")
                    .start_date(DateTime::from_secs(0))
                    .build()
                    .unwrap()
            });
        // Running in one state for a while, then in another, then failed.
        let d = mock!(Client::describe_execution)
            .sequence()
            .output(|| describe_out(ExecutionStatus::Running, None, None))
            .times(3)
            .output(|| {
                describe_out(
                    ExecutionStatus::Failed,
                    Some("TandemRunFailed"),
                    Some("the run failed: 2 failed children (process [3, 7])"),
                )
            })
            .build();
        let h = mock!(Client::get_execution_history)
            .sequence()
            .output(|| history("ArrayEgress"))
            .times(2)
            .output(|| history("WatchFailure"))
            .times(2)
            .build();
        let calls = crate::calls::contract::Calls::new("tandem start");
        let client = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&start_rule, &d, &h], |c| c
            .interceptor(calls.recorder(crate::calls::resolve::sfn)));
        let arn = start(
            &client,
            "arn:aws:states:us-east-2:123456789012:stateMachine:Run",
            &serde_json::json!({"records": 1000}),
            None,
        )
        .await
        .unwrap();
        let opts = FollowOptions {
            interval: Duration::from_millis(1),
            max_interval: Duration::from_millis(4),
            stall_timeout: None,
        };
        let mut seen = Vec::new();
        let end = follow(&client, &arn, opts, |r| {
            seen.push(r.current_state.clone().unwrap_or_default())
        })
        .await
        .unwrap()
        .unwrap();
        assert!(end.finished() && !end.succeeded());
        assert_eq!(end.error.as_deref(), Some("TandemRunFailed"));
        assert!(end.cause.as_deref().unwrap().contains("process [3, 7]"));
        assert_eq!(end.run_id.as_deref(), Some("20261128T000000Z-abc123"));
        assert_eq!(
            seen,
            ["ArrayEgress", "WatchFailure", "WatchFailure"],
            "one line per change"
        );
    }

    #[tokio::test]
    async fn a_stuck_execution_ends_the_follow_at_its_timeout() {
        let d = mock!(Client::describe_execution)
            .then_output(|| describe_out(ExecutionStatus::Running, None, None));
        let h = mock!(Client::get_execution_history).then_output(|| history("ArrayEgress"));
        let calls = crate::calls::contract::Calls::new("tandem start");
        let client = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&d, &h], |c| c
            .interceptor(calls.recorder(crate::calls::resolve::sfn)));
        let opts = FollowOptions {
            interval: Duration::from_millis(2),
            max_interval: Duration::from_millis(8),
            stall_timeout: Some(Duration::from_millis(50)),
        };
        let last = follow(
            &client,
            "arn:aws:states:us-east-2:123456789012:execution:Run:e1",
            opts,
            |_| {},
        )
        .await
        .unwrap()
        .unwrap_err();
        assert_eq!(last.status, ExecutionState::Running);
        assert!(d.num_calls() >= 3);
    }
}
