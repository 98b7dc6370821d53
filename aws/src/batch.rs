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

/// A Batch client on `config` (its calls recorded when the process records them,
/// [`crate::calls`]).
pub fn client(config: &aws_config::SdkConfig) -> Client {
    Client::from_conf(
        crate::instrument!(
            aws_sdk_batch::config::Builder::from(config),
            crate::calls::resolve::batch
        )
        .build(),
    )
}
use aws_sdk_batch::types::{
    ArrayJobDependency, ArrayProperties, ContainerOverrides, JobDependency, JobDetail, JobStatus,
    KeyValuePair, KeyValuesPair, RetryStrategy,
};
use serde::{Deserialize, Serialize};
use tandem_core::names::{PerStage, Stage};
use tandem_core::plan::MAX_ARRAY_SIZE;
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
    pub run_id: tandem_core::layout::RunId,
    /// Children per stage (1 is submitted as a plain job).
    pub array_size: u32,
    /// Job queue per stage.
    pub queues: PerStage<String>,
    /// Job definition per stage; its container runs `tandem worker`.
    pub job_definitions: PerStage<String>,
    /// The shared volume as mounted in the containers (`TANDEM_ROOT`).
    pub root: String,
    /// The bucket URL egress writes to (`TANDEM_BUCKET`).
    pub bucket: String,
    /// Batch `retryStrategy.attempts` (1..=10), or the job definition's when `None`.
    /// A retry strategy sent with a job replaces the definition's, so with `Some` the
    /// submission carries the definition's own rules of what is retried
    /// (`evaluateOnExit`) with the new number of attempts.
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

/// One submission of a run's three stages: the run's own, or a rerun's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// Children per stage.
    pub array_size: u32,
    /// A rerun's index map (array child `j` runs original child `map[j]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_map: Option<String>,
    /// The three stages' jobs.
    pub jobs: Vec<SubmittedStage>,
}

/// What a run's submissions were, next to the manifest on the volume and next to the
/// results in the bucket ([`tandem_core::names::jobs_key`]): every submission, oldest
/// first, so a rerun never hides the original's jobs. `submit` and `rerun --on aws`
/// write it, and the watch function adds the state machine's submissions, so a run
/// stays watchable after Batch has forgotten its jobs (it keeps them about a week).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub run_id: tandem_core::layout::RunId,
    pub submissions: Vec<Submission>,
}

/// A record as submit wrote it before reruns were kept: one submission.
#[derive(Deserialize)]
struct SingleRecord {
    run_id: tandem_core::layout::RunId,
    array_size: u32,
    jobs: Vec<SubmittedStage>,
}

impl JobRecord {
    /// A record's JSON, read from `location` (either format).
    pub fn parse(bytes: &[u8], location: &str) -> Result<Self> {
        if let Ok(r) = serde_json::from_slice::<JobRecord>(bytes) {
            return Ok(r);
        }
        let old: SingleRecord = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(location, format!("not a tandem job record: {e}")))?;
        Ok(JobRecord {
            run_id: old.run_id,
            submissions: vec![Submission {
                array_size: old.array_size,
                index_map: None,
                jobs: old.jobs,
            }],
        })
    }

    /// Run `run_id`'s record in its bucket; `None` when there is none.
    pub fn fetch(
        store: &dyn tandem_core::store::ObjectStore,
        run_id: &tandem_core::layout::RunId,
    ) -> Result<Option<Self>> {
        let key = tandem_core::names::jobs_key(run_id);
        match store.get(&key) {
            Ok(b) => Self::parse(&b, &format!("{}/{key}", store.url())).map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the record in the run's bucket.
    pub fn publish(&self, store: &dyn tandem_core::store::ObjectStore) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::corrupt(tandem_core::names::jobs_key(&self.run_id), e.to_string()))?;
        store.put(&tandem_core::names::jobs_key(&self.run_id), json.into())
    }

    /// Adds `submission` unless the record holds it already (the same jobs): the
    /// watch function sees one submission at each of its calls. True when added.
    pub fn add(&mut self, submission: Submission) -> bool {
        let same = |s: &Submission| {
            s.jobs.iter().map(|j| &j.job_id).collect::<Vec<_>>()
                == submission.jobs.iter().map(|j| &j.job_id).collect::<Vec<_>>()
        };
        if self.submissions.iter().any(same) {
            return false;
        }
        self.submissions.push(submission);
        true
    }
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
        if let Some((stage, _)) = values.iter().find(|(_, v)| v.trim().is_empty()) {
            return Err(Error::InvalidInput(format!(
                "the {what} for stage {stage} is empty"
            )));
        }
    }
    Ok(())
}

/// Batch job names: letters, digits, hyphens and underscores, at most 128.
///
/// `tandem-RUN-STAGE[SUFFIX]`: when that is too long, the run id part is shortened
/// (its start and end kept), never the stage or the suffix, so the three jobs of a
/// run stay distinct and say which stage they are.
pub fn job_name(run_id: &str, stage: Stage, suffix: &str) -> String {
    const MAX: usize = 128;
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let tail = clean(&format!("-{}{suffix}", stage.name()));
    let tail: String = tail.chars().take(MAX - "tandem-".len() - 8).collect();
    let mut run = clean(run_id);
    // The room for the run id does not depend on the suffix (a rerun's
    // `-rerun-STAMP` fits the reserve), so a run's own jobs and its reruns' share one
    // name prefix, which is how they are found ([`jobs_of_run`]).
    let reserve = "-process-rerun-20261130T000000Z".len().max(tail.len());
    let room = MAX - "tandem-".len() - reserve;
    if run.len() > room {
        // Keep the start (the sortable stamp) and the end (the random suffix).
        let keep_end = room / 3;
        let keep_start = room - keep_end - 1;
        run = format!("{}_{}", &run[..keep_start], &run[run.len() - keep_end..]);
    }
    format!("tandem-{run}{tail}")
}

/// Submits the three stages: stage 1 as an array job of the run's size, stages 2 and
/// 3 depending N_TO_N on the stage before (a run of one child: plain jobs depending
/// on the previous job). Each child gets `TANDEM_RUN_ID`, `TANDEM_ROOT`,
/// `TANDEM_BUCKET` and `TANDEM_STAGE`. If a later stage cannot be submitted, the
/// stages already submitted are cancelled, so no half-submitted run keeps running.
pub async fn submit(client: &Client, spec: &SubmitSpec) -> Result<Vec<SubmittedStage>> {
    check_spec(spec)?;
    let strategies = match spec.attempts {
        Some(a) => Some(retry_strategies(client, spec, a).await?),
        None => None,
    };
    let mut done: Vec<SubmittedStage> = Vec::with_capacity(3);
    for stage in Stage::ALL {
        let p = stage.position();
        let name = job_name(&spec.run_id, stage, &spec.name_suffix);
        let mut env = vec![
            ("TANDEM_RUN_ID".to_string(), spec.run_id.to_string()),
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
            .job_queue(&spec.queues[stage])
            .job_definition(&spec.job_definitions[stage])
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
        if let Some(s) = &strategies {
            req = req.retry_strategy(s[p].clone());
        }
        let result = submit_once(client, req, &name, &spec.queues[stage])
            .await
            .map(|job_id| SubmittedStage {
                stage,
                job_id,
                job_name: name.clone(),
                array_size: spec.array_size,
            });
        match result {
            Ok(submitted) => done.push(submitted),
            Err(message) => {
                let cleanup =
                    terminate_all(client, &done, &format!("tandem: submitting {stage} failed")).await;
                return Err(backend(
                    "submit",
                    format!(
                        "stage {stage} (queue {}, job definition {})",
                        spec.queues[stage], spec.job_definitions[stage]
                    ),
                    format!("{message}{cleanup}"),
                ));
            }
        }
    }
    Ok(done)
}

/// Tries of one SubmitJob whose answer does not come back.
const SUBMIT_TRIES: u32 = 5;

/// How long after a lost answer the job is looked up (twice) before it is submitted
/// again: ListJobs may not show a job created a moment ago.
const LOOKUP_DELAY: Duration = if cfg!(test) {
    Duration::from_millis(10)
} else {
    Duration::from_secs(5)
};

/// Submits one job and returns its id, never submitting it twice.
///
/// SubmitJob has no idempotency token: a request whose answer was lost (a timeout, a
/// 5xx, a dropped connection) may have created the job, and sending it again would
/// start a second array writing the same files. So the SDK does not retry it; after
/// a lost answer the job is looked up by its name among the jobs created since the
/// first try, and only submitted again when it is not there. Throttling (429) and a
/// 5xx say the job was not created, but the lookup is cheap and covers both.
async fn submit_once(
    client: &Client,
    req: aws_sdk_batch::operation::submit_job::builders::SubmitJobFluentBuilder,
    name: &str,
    queue: &str,
) -> std::result::Result<String, String> {
    use aws_sdk_batch::error::SdkError;
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
        // Batch's clock and ours may disagree by a little.
        - 60_000;
    let mut last = String::new();
    for attempt in 1..=SUBMIT_TRIES {
        if attempt > 1 {
            // A job just created may not be listed at once: look twice, a while apart,
            // before submitting again.
            for _ in 0..2 {
                tokio::time::sleep(LOOKUP_DELAY).await;
                if let Some(id) = find_created(client, queue, name, since).await? {
                    tracing::info!(
                        "SubmitJob {name}: the lost answer's job exists ({id}); not submitting again"
                    );
                    return Ok(id);
                }
            }
        }
        let once = req
            .clone()
            .customize()
            .config_override(
                aws_sdk_batch::config::Builder::default()
                    .retry_config(aws_config::retry::RetryConfig::disabled()),
            )
            .send()
            .await;
        match once {
            Ok(out) => {
                return match out.job_id().filter(|id| !id.trim().is_empty()) {
                    Some(id) => Ok(id.to_string()),
                    // A later stage cannot depend on a job without an id.
                    None => Err("the service answered without a job id".to_string()),
                };
            }
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let lost = match &e {
                    SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
                        true
                    }
                    _ => matches!(status, Some(429 | 500..=599)),
                };
                last = sdk_message(&e);
                if !lost {
                    return Err(last);
                }
                tracing::warn!("SubmitJob {name} (try {attempt} of {SUBMIT_TRIES}): {last}");
            }
        }
    }
    tokio::time::sleep(LOOKUP_DELAY).await;
    if let Some(id) = find_created(client, queue, name, since).await? {
        return Ok(id);
    }
    Err(format!(
        "{last} (tried {SUBMIT_TRIES} times, looking the job up by name between tries)"
    ))
}

/// The id of the newest job named exactly `name` in `queue`, if any.
pub async fn newest_job_named(client: &Client, queue: &str, name: &str) -> Result<Option<String>> {
    find_created(client, queue, name, i64::MIN)
        .await
        .map_err(|message| backend("look up job", format!("{name} in queue {queue}"), message))
}

/// The id of the job named `name` in `queue` created at or after `since` (ms), if any.
async fn find_created(
    client: &Client,
    queue: &str,
    name: &str,
    since: i64,
) -> std::result::Result<Option<String>, String> {
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_jobs()
            .job_queue(queue)
            .filters(KeyValuesPair::builder().name("JOB_NAME").values(name).build())
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| format!("looking up job {name} after a lost answer: {}", sdk_message(&e)))?;
        if let Some(j) = page
            .job_summary_list()
            .iter()
            .find(|j| j.job_name() == Some(name) && j.created_at().unwrap_or(0) >= since)
        {
            return Ok(j.job_id().map(str::to_string));
        }
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(None),
        }
    }
}

/// Per stage, the retry strategy of a submission that asks for `attempts`: the job
/// definition's own `evaluateOnExit` rules (read with DescribeJobDefinitions) with
/// the new number of attempts, since a strategy sent with the job replaces the
/// definition's whole.
async fn retry_strategies(client: &Client, spec: &SubmitSpec, attempts: u32) -> Result<Vec<RetryStrategy>> {
    let mut out = Vec::with_capacity(3);
    for (stage, definition) in spec.job_definitions.iter() {
        // An ARN or NAME:REVISION names one definition; a bare name is every revision
        // of it, the newest active one being what SubmitJob runs (DescribeJobDefinitions
        // takes a bare name as jobDefinitionName, with status ACTIVE, paged).
        let bare = !definition.starts_with("arn:") && !definition.contains(':');
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = client.describe_job_definitions().set_next_token(token.take());
            req = if bare {
                req.job_definition_name(definition).status("ACTIVE")
            } else {
                req.job_definitions(definition)
            };
            let page = req.send().await.map_err(|e| {
                backend(
                    "read the retry rules of",
                    format!("job definition {definition}"),
                    sdk_message(&e),
                )
            })?;
            found.extend(page.job_definitions().iter().cloned());
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        let d = found
            .iter()
            .filter(|d| d.status().is_none_or(|s| s == "ACTIVE"))
            .max_by_key(|d| d.revision().unwrap_or(0))
            .ok_or_else(|| {
                backend(
                    "read the retry rules of",
                    format!("job definition {definition} (stage {stage})"),
                    "no active job definition of that name or ARN".into(),
                )
            })?;
        let rules = d
            .retry_strategy()
            .map(|r| r.evaluate_on_exit().to_vec())
            .unwrap_or_default();
        out.push(
            RetryStrategy::builder()
                .attempts(attempts as i32)
                .set_evaluate_on_exit((!rules.is_empty()).then_some(rules))
                .build(),
        );
    }
    Ok(out)
}

/// Terminates the jobs of stages already submitted and says exactly what happened
/// to each: `""` when there were none, otherwise `"; terminated ...; could not
/// terminate ... (reason)"`, so nobody is told a job was stopped when it was not.
async fn terminate_all(client: &Client, jobs: &[SubmittedStage], reason: &str) -> String {
    if jobs.is_empty() {
        return String::new();
    }
    let mut stopped = Vec::new();
    let mut not = Vec::new();
    for s in jobs {
        match client
            .terminate_job()
            .job_id(&s.job_id)
            .reason(reason)
            .send()
            .await
        {
            Ok(_) => stopped.push(format!("{} ({})", s.stage, s.job_id)),
            Err(e) => not.push(format!("{} ({}): {}", s.stage, s.job_id, sdk_message(&e))),
        }
    }
    let mut out = String::new();
    if !stopped.is_empty() {
        out.push_str(&format!(
            "; terminated the stages already submitted: {}",
            stopped.join(", ")
        ));
    }
    if !not.is_empty() {
        out.push_str(&format!(
            "; could NOT terminate {}: stop them by hand (aws batch terminate-job)",
            not.join("; ")
        ));
    }
    out
}

/// The newest submission of run `run_id`'s three stages, found by name in each
/// stage's queue (a run the state machine started has no job record, but its jobs are
/// named [`job_name`]`(run, stage, SUFFIX)`): the jobs of the suffix whose jobs were
/// created last, and the suffix (`""` for the run's own, `-rerun-STAMP` for a rerun,
/// whose index map is `index-map-STAMP.json`). An error names the stages of that
/// submission that are not there.
pub async fn find_jobs(client: &Client, queues: &PerStage<String>, run_id: &str) -> Result<FoundJobs> {
    let all = jobs_of_run(client, queues, run_id).await?;
    let suffix_of = |j: &RunJob| j.job_name[job_name(run_id, j.stage, "").len()..].to_string();
    let newest = all
        .iter()
        .max_by_key(|j| j.created_at)
        .map(suffix_of)
        .unwrap_or_default();
    let mut jobs = Vec::with_capacity(3);
    let mut missing = Vec::new();
    for (stage, queue) in queues.iter() {
        let found = all
            .iter()
            .filter(|j| j.stage == stage && suffix_of(j) == newest)
            .max_by_key(|j| j.created_at);
        match found {
            Some(j) => jobs.push((stage, j.job_id.clone())),
            None => missing.push(format!(
                "{stage} ({} in {queue})",
                job_name(run_id, stage, &newest)
            )),
        }
    }
    if !missing.is_empty() {
        return Err(Error::NotFound {
            what: format!("Batch jobs of run {run_id}"),
            location: missing.join(", "),
        });
    }
    Ok(FoundJobs { jobs, suffix: newest })
}

/// What [`find_jobs`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundJobs {
    /// The three stages' jobs.
    pub jobs: Vec<(Stage, String)>,
    /// Their names' suffix: `""`, or a rerun's `-rerun-STAMP`.
    pub suffix: String,
}

impl FoundJobs {
    /// The index map of a rerun's submission (`-rerun-STAMP` maps through
    /// `index-map-STAMP.json`), `None` for the run's own.
    pub fn index_map(&self) -> Option<String> {
        self.suffix
            .strip_prefix("-rerun-")
            .map(|stamp| format!("index-map-{stamp}.json"))
    }
}

/// A Batch job's status, as DescribeJobs and ListJobs report it: typed, so "done"
/// is decided in one place, and serialized as Batch spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    Submitted,
    Pending,
    Runnable,
    Starting,
    Running,
    Succeeded,
    Failed,
    /// A status this build does not know (a newer API), or none given.
    #[serde(untagged)]
    Other(String),
}

impl JobState {
    /// SUCCEEDED or FAILED: the job will not change again.
    pub fn is_done(&self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed)
    }

    /// As Batch spells it.
    pub fn as_str(&self) -> &str {
        match self {
            JobState::Submitted => "SUBMITTED",
            JobState::Pending => "PENDING",
            JobState::Runnable => "RUNNABLE",
            JobState::Starting => "STARTING",
            JobState::Running => "RUNNING",
            JobState::Succeeded => "SUCCEEDED",
            JobState::Failed => "FAILED",
            JobState::Other(s) => s,
        }
    }
}

impl From<Option<&JobStatus>> for JobState {
    fn from(s: Option<&JobStatus>) -> Self {
        match s {
            Some(JobStatus::Submitted) => JobState::Submitted,
            Some(JobStatus::Pending) => JobState::Pending,
            Some(JobStatus::Runnable) => JobState::Runnable,
            Some(JobStatus::Starting) => JobState::Starting,
            Some(JobStatus::Running) => JobState::Running,
            Some(JobStatus::Succeeded) => JobState::Succeeded,
            Some(JobStatus::Failed) => JobState::Failed,
            Some(other) => JobState::Other(other.as_str().to_string()),
            None => JobState::Other("UNKNOWN".into()),
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One job of a run, found by its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunJob {
    /// The stage its name says.
    pub stage: Stage,
    /// Batch job id.
    pub job_id: String,
    /// Its name: the run's, or a rerun's (with a suffix).
    pub job_name: String,
    /// SUBMITTED .. SUCCEEDED, FAILED.
    pub status: JobState,
    /// When it was created (ms since the epoch).
    pub created_at: i64,
}

impl RunJob {
    /// SUCCEEDED or FAILED.
    pub fn finished(&self) -> bool {
        self.status.is_done()
    }
}

/// Every job of run `run_id` in the stages' queues, the run's own and its reruns'
/// (their names start with [`job_name`]`(run, stage, "")`), in any status: ListJobs
/// with a `JOB_NAME` filter ending in `*` matches names by prefix, whatever their status.
pub async fn jobs_of_run(client: &Client, queues: &PerStage<String>, run_id: &str) -> Result<Vec<RunJob>> {
    let mut jobs = Vec::new();
    for (stage, queue) in queues.iter() {
        let prefix = job_name(run_id, stage, "");
        let mut token: Option<String> = None;
        loop {
            let page = client
                .list_jobs()
                .job_queue(queue)
                .filters(
                    KeyValuesPair::builder()
                        .name("JOB_NAME")
                        .values(format!("{prefix}*"))
                        .build(),
                )
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    backend(
                        "list the jobs of",
                        format!("run {run_id} in queue {queue}"),
                        sdk_message(&e),
                    )
                })?;
            for j in page.job_summary_list() {
                let (Some(id), Some(name)) = (j.job_id(), j.job_name()) else {
                    continue;
                };
                // The filter's prefix also matches another stage's longer name only if
                // it were that stage's: keep the names this stage makes.
                if name == prefix || name.starts_with(&format!("{prefix}-")) {
                    jobs.push(RunJob {
                        stage,
                        job_id: id.to_string(),
                        job_name: name.to_string(),
                        status: JobState::from(j.status()),
                        created_at: j.created_at().unwrap_or(0),
                    });
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
    }
    Ok(jobs)
}

/// Terminates every unfinished job of `jobs` (an array parent takes its children
/// with it). Returns what was stopped and what could not be, job by job.
pub async fn terminate_jobs(client: &Client, jobs: &[RunJob], reason: &str) -> (Vec<String>, Vec<String>) {
    let mut stopped = Vec::new();
    let mut not = Vec::new();
    for j in jobs.iter().filter(|j| !j.finished()) {
        match client
            .terminate_job()
            .job_id(&j.job_id)
            .reason(reason)
            .send()
            .await
        {
            Ok(_) => stopped.push(format!(
                "{} {} ({}, was {})",
                j.stage, j.job_name, j.job_id, j.status
            )),
            Err(e) => not.push(format!(
                "{} {} ({}): {}",
                j.stage,
                j.job_name,
                j.job_id,
                sdk_message(&e)
            )),
        }
    }
    (stopped, not)
}

/// The state of one stage's job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageStatus {
    /// The stage.
    pub stage: Stage,
    /// Batch job id.
    pub job_id: String,
    /// The job's status (SUBMITTED .. SUCCEEDED, FAILED).
    pub status: JobState,
    /// Children per status, from the array status summary (a plain job counts as one).
    pub counts: BTreeMap<String, i32>,
    /// Batch's reason, when it gives one.
    pub reason: Option<String>,
}

impl StageStatus {
    fn is_done(&self) -> bool {
        self.status.is_done()
    }
}

/// A child that failed, as Batch reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedChild {
    /// The stage.
    pub stage: Stage,
    /// The child's array index (in the submitted array).
    pub index: u32,
    /// Batch's status reason for the job (e.g. "Essential container in task exited",
    /// "Dependent Job failed", or a host or capacity error).
    pub reason: String,
    /// The container's own reason, when there is one (e.g. "OutOfMemoryError:
    /// Container killed due to memory usage"), kept apart from `reason` so neither
    /// hides the other.
    pub container_reason: Option<String>,
    /// The container's exit code, when it ran.
    pub exit_code: Option<i32>,
}

/// Failed children sharing a stage, reasons and exit code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureGroup {
    /// The stage.
    pub stage: Stage,
    /// Batch's status reason.
    pub reason: String,
    /// The container's reason.
    pub container_reason: Option<String>,
    /// The exit code.
    pub exit_code: Option<i32>,
    /// How many children failed this way.
    pub count: u32,
    /// The first few of their indices.
    pub first_indices: Vec<u32>,
}

/// Most failure groups kept per stage; the rest are counted in `other_failures`.
pub const MAX_GROUPS_PER_STAGE: usize = 10;
/// Failed indices listed per stage in a report.
pub const MAX_INDICES_PER_STAGE: usize = 1000;
/// Failed children listed in full (with reasons) in a report.
pub const MAX_SAMPLE: usize = 20;
/// Longest reason kept in a report, in characters.
pub const MAX_REASON: usize = 400;

/// One look at the three jobs: the shape the watch lambda returns to Step Functions
/// and `tandem watch --json` prints.
///
/// Bounded whatever fails: a bad image fails 10,000 children and their 20,000
/// dependents, and one entry each would be megabytes, far past Step Functions'
/// 256 KiB payload limit. The report carries counts per stage and reason, the first
/// failed indices and a small sample; the full list ([`Poll::failed`]) is written
/// next to the run by whoever has the volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchReport {
    /// Every stage is SUCCEEDED or FAILED.
    pub finished: bool,
    /// Every stage SUCCEEDED.
    pub succeeded: bool,
    /// Per-stage status.
    pub stages: Vec<StageStatus>,
    /// Failed children per stage.
    pub failed_counts: PerStage<u32>,
    /// Failed children grouped by stage, reasons and exit code, largest first
    /// ([`MAX_GROUPS_PER_STAGE`] per stage).
    pub failure_groups: Vec<FailureGroup>,
    /// Failed children in groups that did not fit.
    pub other_failures: u32,
    /// The first failed indices per stage ([`MAX_INDICES_PER_STAGE`] each), for
    /// state machines.
    pub failed_indices: PerStage<Vec<u32>>,
    /// True when `failed_indices` does not list every failed child.
    pub failed_indices_truncated: bool,
    /// The first failed children with their reasons ([`MAX_SAMPLE`]).
    pub failed_sample: Vec<FailedChild>,
    /// Where the full list of failed children was written, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_list: Option<String>,
    /// Stages that were never submitted (a submission that failed), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_submitted: Vec<Stage>,
    /// What happened to stages that were still running when a failed run was
    /// wound down: `procure (JOB): terminated` or why it could not be.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terminated: Vec<String>,
    /// One line for people and for a state machine's Fail cause (at most
    /// [`MAX_SUMMARY`] characters).
    pub summary: String,
}

/// Longest [`WatchReport::summary`], in characters (Step Functions caps a Fail
/// state's cause at 32,768).
pub const MAX_SUMMARY: usize = 2000;

impl WatchReport {
    /// Recomputes [`WatchReport::summary`] from the report.
    pub fn summarize_line(&mut self) {
        let mut parts = Vec::new();
        if self.succeeded {
            let children: Vec<String> = self
                .stages
                .iter()
                .map(|s| format!("{} {}", s.stage, s.counts.get("SUCCEEDED").copied().unwrap_or(0)))
                .collect();
            parts.push(format!(
                "the run succeeded: every stage SUCCEEDED ({})",
                children.join(", ")
            ));
        } else if !self.finished {
            parts.push("the run is still running".to_string());
        } else {
            let n: u32 = self.failed_counts.values().sum();
            let per_stage: Vec<String> = self
                .failed_indices
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(s, v)| {
                    let shown: Vec<String> = v.iter().take(20).map(u32::to_string).collect();
                    let more = self.failed_counts[s] as usize - shown.len();
                    if more > 0 {
                        format!("{s} [{} and {more} more]", shown.join(", "))
                    } else {
                        format!("{s} [{}]", shown.join(", "))
                    }
                })
                .collect();
            parts.push(format!(
                "the run failed: {n} failed {} ({})",
                if n == 1 { "child" } else { "children" },
                if per_stage.is_empty() {
                    "none listed".to_string()
                } else {
                    per_stage.join("; ")
                }
            ));
            if let Some(g) = self.failure_groups.first() {
                parts.push(format!("most common: {} x {} {}", g.count, g.stage, g.reason));
            }
        }
        if !self.not_submitted.is_empty() {
            let names: Vec<&str> = self.not_submitted.iter().map(|s| s.name()).collect();
            parts.push(format!("never submitted: {}", names.join(", ")));
        }
        if !self.terminated.is_empty() {
            parts.push(self.terminated.join("; "));
        }
        let line = parts.join("; ");
        self.summary = clip_to(&line, MAX_SUMMARY);
    }
}

/// A poll's bounded report and the full list of failed children behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Poll {
    /// What to show and return.
    pub report: WatchReport,
    /// Every failed child, in stage and index order.
    pub failed: Vec<FailedChild>,
}

/// The file in a run's directory that holds every failed child of the last watch.
pub const FAILED_LIST: &str = "failed-children.json";

/// Renames the indices of a rerun's report from its compact array's to the original
/// children's: array child `j` ran original child `map[j]`.
pub fn map_to_original(report: &mut WatchReport, failed: &mut [FailedChild], map: &[u32]) {
    let original = |j: u32| map.get(j as usize).copied().unwrap_or(j);
    for f in failed.iter_mut() {
        f.index = original(f.index);
    }
    for s in &mut report.failed_indices.0 {
        for i in s.iter_mut() {
            *i = original(*i);
        }
        s.sort_unstable();
    }
    for g in &mut report.failure_groups {
        for i in &mut g.first_indices {
            *i = original(*i);
        }
        g.first_indices.sort_unstable();
    }
    for f in &mut report.failed_sample {
        f.index = original(f.index);
    }
}

/// The full list of failed children as the JSON [`write_failed_list`] writes.
pub fn failed_list_json(failed: &[FailedChild]) -> Result<Vec<u8>> {
    serde_json::to_vec(failed)
        .map_err(|e| Error::corrupt(FAILED_LIST, format!("cannot encode the failed children: {e}")))
}

/// Publishes the full list of failed children in the run's bucket
/// ([`tandem_core::names::failed_list_key`]) and returns its URL.
pub fn publish_failed_list(
    store: &dyn tandem_core::store::ObjectStore,
    run_id: &str,
    failed: &[FailedChild],
) -> Result<String> {
    let key = tandem_core::names::failed_list_key(run_id);
    store.put(&key, failed_list_json(failed)?.into())?;
    Ok(format!("{}/{key}", store.url()))
}

/// Writes every failed child as a JSON array to [`FAILED_LIST`] in `run_dir`
/// (atomically: a temporary name, then renamed) and returns its path.
pub fn write_failed_list(run_dir: &std::path::Path, failed: &[FailedChild]) -> Result<std::path::PathBuf> {
    let path = run_dir.join(FAILED_LIST);
    let tmp = run_dir.join(format!(".{FAILED_LIST}.tmp"));
    tandem_core::store::write_file(&tmp, &failed_list_json(failed)?)?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &tmp, e))?;
    Ok(path)
}

fn clip(s: &str) -> String {
    clip_to(s, MAX_REASON)
}

fn clip_to(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut c: String = s.chars().take(max - 1).collect();
        c.push('…');
        c
    }
}

/// Builds the bounded report of `failed` (sorted by stage and index).
pub fn summarize(
    finished: bool,
    succeeded: bool,
    stages: Vec<StageStatus>,
    failed: &[FailedChild],
) -> WatchReport {
    let mut failed_counts = PerStage::<u32>::default();
    let mut failed_indices = PerStage::<Vec<u32>>::default();
    let mut truncated = false;
    type Key = (Stage, String, Option<String>, Option<i32>);
    let mut groups: BTreeMap<Key, (u32, Vec<u32>)> = BTreeMap::new();
    for f in failed {
        failed_counts[f.stage] += 1;
        if failed_indices[f.stage].len() < MAX_INDICES_PER_STAGE {
            failed_indices[f.stage].push(f.index);
        } else {
            truncated = true;
        }
        let g = groups
            .entry((
                f.stage,
                clip(&f.reason),
                f.container_reason.as_deref().map(clip),
                f.exit_code,
            ))
            .or_default();
        g.0 += 1;
        if g.1.len() < 10 {
            g.1.push(f.index);
        }
    }
    let mut failure_groups = Vec::new();
    let mut other = 0;
    for stage in Stage::ALL {
        let mut mine: Vec<_> = groups.iter().filter(|((s, ..), _)| *s == stage).collect();
        mine.sort_by_key(|g| std::cmp::Reverse(g.1.0));
        for (i, ((stage, reason, container_reason, exit_code), (count, first))) in
            mine.into_iter().enumerate()
        {
            if i < MAX_GROUPS_PER_STAGE {
                failure_groups.push(FailureGroup {
                    stage: *stage,
                    reason: reason.clone(),
                    container_reason: container_reason.clone(),
                    exit_code: *exit_code,
                    count: *count,
                    first_indices: first.clone(),
                });
            } else {
                other += count;
            }
        }
    }
    let failed_sample = failed
        .iter()
        .take(MAX_SAMPLE)
        .map(|f| FailedChild {
            reason: clip(&f.reason),
            container_reason: f.container_reason.as_deref().map(clip),
            ..f.clone()
        })
        .collect();
    let mut report = WatchReport {
        finished,
        succeeded,
        stages,
        failed_counts,
        failure_groups,
        other_failures: other,
        failed_indices,
        failed_indices_truncated: truncated,
        failed_sample,
        failed_list: None,
        not_submitted: Vec::new(),
        terminated: Vec::new(),
        summary: String::new(),
    };
    report.summarize_line();
    report
}

/// Terminates every stage of `report` that has not finished (a failed run being
/// wound down) and returns what happened to each, for [`WatchReport::terminated`].
pub async fn terminate_unfinished(client: &Client, report: &WatchReport, reason: &str) -> Vec<String> {
    let mut out = Vec::new();
    for st in report.stages.iter().filter(|s| !s.is_done()) {
        match client
            .terminate_job()
            .job_id(&st.job_id)
            .reason(reason)
            .send()
            .await
        {
            Ok(_) => out.push(format!("{} ({}): terminated", st.stage, st.job_id)),
            Err(e) => out.push(format!(
                "{} ({}): could NOT terminate: {}",
                st.stage,
                st.job_id,
                sdk_message(&e)
            )),
        }
    }
    out
}

fn stage_status(stage: Stage, job: &JobDetail) -> StageStatus {
    let status = JobState::from(job.status());
    let counts: BTreeMap<String, i32> = match job.array_properties().and_then(|a| a.status_summary()) {
        Some(summary) => summary
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        None => BTreeMap::from([(status.as_str().to_string(), 1)]),
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
pub async fn poll(client: &Client, jobs: &[(Stage, String)]) -> Result<Poll> {
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
        if st.status != JobState::Failed && !st.counts.contains_key("FAILED") {
            continue;
        }
        if !is_array {
            let container = job.container();
            failed.push(FailedChild {
                stage: st.stage,
                index: 0,
                reason: st.reason.clone().unwrap_or_else(|| "failed".into()),
                container_reason: container.and_then(|c| c.reason()).map(str::to_string),
                exit_code: container.and_then(|c| c.exit_code()),
            });
            continue;
        }
        failed.extend(failed_children(client, st.stage, &st.job_id).await?);
    }
    let finished = stages.iter().all(|(s, _, _)| s.is_done());
    let succeeded =
        finished && stages.iter().all(|(s, _, _)| s.status == JobState::Succeeded) && failed.is_empty();
    failed.sort_by_key(|f| (f.stage, f.index));
    failed.dedup_by_key(|f| (f.stage, f.index));
    let report = summarize(
        finished,
        succeeded,
        stages.into_iter().map(|(s, _, _)| s).collect(),
        &failed,
    );
    Ok(Poll { report, failed })
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
            .max_results(1000)
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
            let container_reason = j.container().and_then(|c| c.reason()).map(str::to_string);
            out.push(FailedChild {
                stage,
                index,
                reason: j
                    .status_reason()
                    .map(str::to_string)
                    .or_else(|| container_reason.clone())
                    .unwrap_or_else(|| "failed".into()),
                container_reason,
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
) -> Result<std::result::Result<Poll, Stalled>> {
    let mut interval = options.interval;
    let mut last_change = Instant::now();
    let mut last: Option<Vec<StageStatus>> = None;
    loop {
        let polled = poll(client, jobs).await?;
        let changed = last.as_ref().is_none_or(|l| *l != polled.report.stages);
        if changed {
            on_change(&polled.report);
            last_change = Instant::now();
            interval = options.interval;
        } else {
            interval = (interval * 2).min(options.max_interval);
        }
        if polled.report.finished {
            return Ok(Ok(polled));
        }
        if let Some(t) = options.stall_timeout
            && last_change.elapsed() >= t
        {
            return Ok(Err(Stalled {
                unchanged_for: last_change.elapsed(),
                last: polled.report,
            }));
        }
        last = Some(polled.report.stages);
        tokio::time::sleep(interval).await;
    }
}

/// SDK-level behaviour the emulator cannot show: failed and stuck children,
/// throttling, a submission that fails half way.
/// DescribeJobs takes at most 100 job ids a call.
pub const DESCRIBE_BATCH: usize = 100;

/// The pause between DescribeJobs calls when collecting a run's children: ten calls
/// a second, well under Batch's request rate; the SDK's retries absorb the rest.
pub const DESCRIBE_PACE: Duration = Duration::from_millis(100);

/// One child as Batch recorded it: `None` for a description without a creation time.
pub fn observed_child(
    stage: Stage,
    job: &aws_sdk_batch::types::JobDetail,
) -> Option<tandem_core::cost::ObservedChild> {
    let s = |ms: i64| ms as f64 / 1000.0;
    let index = job
        .array_properties()
        .and_then(|a| a.index())
        .map(|i| i as u32)
        .or_else(|| {
            job.job_id()
                .and_then(|id| id.rsplit_once(':'))
                .and_then(|(_, i)| i.parse().ok())
        })
        .unwrap_or(0);
    Some(tandem_core::cost::ObservedChild {
        stage,
        index,
        created_s: s(job.created_at()?),
        // An attempt that failed before RUNNING (an image that could not be pulled) has
        // no start: it ran for no time, and Fargate still billed its task.
        attempts: job
            .attempts()
            .iter()
            .filter_map(|a| {
                let stop = a.stopped_at().filter(|t| *t > 0)?;
                let start = a.started_at().filter(|t| *t > 0).unwrap_or(stop);
                Some((s(start), s(stop.max(start))))
            })
            .collect(),
        worker_started_s: None,
    })
}

/// Whether Batch ran `job` on Fargate (its platform capabilities), else EC2.
pub fn on_fargate(job: &aws_sdk_batch::types::JobDetail) -> bool {
    job.platform_capabilities()
        .contains(&aws_sdk_batch::types::PlatformCapability::Fargate)
}

/// The children of a stage's job as Batch described them.
#[derive(Debug, Clone)]
pub struct Described {
    pub children: Vec<tandem_core::cost::ObservedChild>,
    /// Whether they ran on Fargate (else EC2).
    pub fargate: bool,
    /// Children Batch did not describe (it keeps finished jobs about a week).
    pub missing: u32,
}

/// Every child of `job_id`, as Batch describes them: an array job's `size` children
/// (`JOB:0` .. `JOB:size-1`, 100 to a DescribeJobs call, paced by
/// [`DESCRIBE_PACE`]), or the job itself when it is not an array.
pub async fn observed_children(client: &Client, stage: Stage, job_id: &str) -> Result<Described> {
    let describe = |ids: Vec<String>| async move {
        client
            .describe_jobs()
            .set_jobs(Some(ids.clone()))
            .send()
            .await
            .map_err(|e| backend("describe jobs", format!("{} ...", ids[0]), sdk_message(&e)))
    };
    let parent = describe(vec![job_id.to_string()]).await?;
    let job = parent.jobs().first().ok_or_else(|| Error::NotFound {
        what: format!("{stage} job"),
        location: job_id.to_string(),
    })?;
    let fargate = on_fargate(job);
    let Some(size) = job.array_properties().and_then(|a| a.size()) else {
        let children: Vec<_> = observed_child(stage, job).into_iter().collect();
        let missing = u32::from(children.is_empty());
        return Ok(Described {
            children,
            fargate,
            missing,
        });
    };
    let ids: Vec<String> = (0..size).map(|i| format!("{job_id}:{i}")).collect();
    let mut out = Vec::with_capacity(ids.len());
    for (n, chunk) in ids.chunks(DESCRIBE_BATCH).enumerate() {
        if n > 0 {
            tokio::time::sleep(DESCRIBE_PACE).await;
        }
        let page = describe(chunk.to_vec()).await?;
        out.extend(page.jobs().iter().filter_map(|j| observed_child(stage, j)));
    }
    out.sort_by_key(|c| c.index);
    let missing = (size.max(0) as u32).saturating_sub(out.len() as u32);
    Ok(Described {
        children: out,
        fargate,
        missing,
    })
}

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

    /// An array of 250 children takes three DescribeJobs calls of at most 100 ids
    /// after its parent's, and every child comes back once, in index order.
    #[tokio::test]
    async fn the_children_of_a_large_array_are_described_a_hundred_at_a_time() {
        let describe = mock!(Client::describe_jobs).then_compute_output(|req| {
            assert!(req.jobs().len() <= DESCRIBE_BATCH, "{}", req.jobs().len());
            let jobs = req
                .jobs()
                .iter()
                .map(|id| {
                    let b = JobDetail::builder()
                        .job_id(id)
                        .job_name("n")
                        .status(JobStatus::Succeeded)
                        .created_at(1_000);
                    if id == "big" {
                        b.array_properties(ArrayPropertiesDetail::builder().size(250).build())
                            .build()
                    } else {
                        b.build()
                    }
                })
                .collect();
            DescribeJobsOutput::builder().set_jobs(Some(jobs)).build()
        });
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&describe]);
        let d = observed_children(&client, Stage::Egress, "big").await.unwrap();
        assert!(!d.fargate && d.missing == 0);
        assert_eq!(describe.num_calls(), 4);
        assert_eq!(
            d.children.iter().map(|c| c.index).collect::<Vec<_>>(),
            (0..250).collect::<Vec<_>>()
        );
    }

    /// A job description of the fixture (the API's JSON shape) as the SDK's type.
    fn described(v: &serde_json::Value) -> JobDetail {
        let ms = |k: &str| v[k].as_i64();
        let mut b = JobDetail::builder()
            .job_id(v["jobId"].as_str().unwrap())
            .job_name(v["jobName"].as_str().unwrap())
            .status(JobStatus::from(v["status"].as_str().unwrap()))
            .set_created_at(ms("createdAt"))
            .set_started_at(ms("startedAt"))
            .set_stopped_at(ms("stoppedAt"))
            .set_status_reason(v["statusReason"].as_str().map(str::to_string))
            .array_properties(
                ArrayPropertiesDetail::builder()
                    .set_index(v["arrayProperties"]["index"].as_i64().map(|i| i as i32))
                    .set_size(v["arrayProperties"]["size"].as_i64().map(|i| i as i32))
                    .build(),
            );
        for p in v["platformCapabilities"].as_array().into_iter().flatten() {
            b = b.platform_capabilities(aws_sdk_batch::types::PlatformCapability::from(
                p.as_str().unwrap(),
            ));
        }
        for a in v["attempts"].as_array().into_iter().flatten() {
            b = b.attempts(
                aws_sdk_batch::types::AttemptDetail::builder()
                    .set_started_at(a["startedAt"].as_i64())
                    .set_stopped_at(a["stoppedAt"].as_i64())
                    .build(),
            );
        }
        b.build()
    }

    const CHILDREN: &str = include_str!("../testdata/describe-jobs-children.json");

    /// The children of a recorded run, described 100 to a call, priced by the cost
    /// model: the figures by hand in `tandem_core::cost`'s terms (Fargate, 0.25 vCPU
    /// and 0.5 GB: $3.4284722e-6 a second).
    #[tokio::test]
    async fn a_runs_children_are_described_in_hundreds_and_priced_by_hand() {
        let fixture: serde_json::Value = serde_json::from_str(CHILDREN).unwrap();
        let children = |stage: &str| -> Vec<JobDetail> {
            fixture[stage].as_array().unwrap().iter().map(described).collect()
        };
        let (procure, process) = (children("procure"), children("process"));
        let parent = |id: &str, size: i32| {
            JobDetail::builder()
                .job_id(id)
                .job_name(id)
                .status(JobStatus::Failed)
                .platform_capabilities(aws_sdk_batch::types::PlatformCapability::Fargate)
                .array_properties(ArrayPropertiesDetail::builder().size(size).build())
                .build()
        };
        let (p, q) = (parent("p0", 4), parent("q0", 4));
        let answer = move |ids: &[String]| -> DescribeJobsOutput {
            let all: Vec<JobDetail> = [p.clone(), q.clone()]
                .into_iter()
                .chain(procure.clone())
                .chain(process.clone())
                .collect();
            DescribeJobsOutput::builder()
                .set_jobs(Some(
                    all.into_iter()
                        .filter(|j| ids.iter().any(|i| Some(i.as_str()) == j.job_id()))
                        .collect(),
                ))
                .build()
        };
        let describe = mock!(Client::describe_jobs).then_compute_output(move |req| {
            assert!(req.jobs().len() <= DESCRIBE_BATCH);
            answer(req.jobs())
        });
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&describe]);
        let d = observed_children(&client, Stage::Procure, "p0").await.unwrap();
        assert!(d.fargate && d.missing == 0);
        let mut observed = d.children;
        observed.extend(
            observed_children(&client, Stage::Process, "q0")
                .await
                .unwrap()
                .children,
        );
        assert_eq!(observed.len(), 8);
        assert_eq!(
            describe.num_calls(),
            4,
            "a parent and one page of children per stage"
        );
        // The retried child: both attempts; the child that never started: none.
        let retried = observed
            .iter()
            .find(|c| c.stage == Stage::Procure && c.index == 1)
            .unwrap();
        assert_eq!(retried.attempts, [(1045.0, 1110.0), (1130.0, 1131.5)]);
        assert!(
            observed
                .iter()
                .any(|c| c.stage == Stage::Process && c.index == 3 && c.attempts.is_empty())
        );
        // The worker's own start of procure child 0 (from its completion record).
        observed[0].worker_started_s = Some(1041.5);

        let table = tandem_core::cost::PriceTable::committed();
        let inputs = tandem_core::cost::Inputs {
            records: 160,
            ids_per_node: 40,
            region: "us-east-2".into(),
            platform: tandem_core::cost::Platform::stack_default(tandem_core::cost::Compute::Fargate),
            rate: tandem_core::cost::WorkRate::measured(),
            prices: table.region("us-east-2").unwrap().clone(),
            prices_as_of: table.as_of.clone(),
        };
        let m = tandem_core::cost::measured(&inputs, &observed);
        let (pr, pc, eg) = (&m.stages[0], &m.stages[1], &m.stages[2]);
        // procure: waits 40 + 45 (+ 20 between child 1's attempts) + 49 (+ 1 between
        // child 2's) + 60; runs 2 + 65 + 1.5 + 0 + 1 + 1, of which child 0's first 1.5 s
        // were starting; billed 60 + (65 + 60) + (60 + 60) + 60: child 2's attempt that
        // never ran still had a task.
        assert_eq!((pr.children, pr.attempts, pr.never_started), (4, 6, 0));
        assert_eq!(pr.waiting_s, 215.0);
        assert_eq!((pr.starting_s, pr.working_s), (1.5, 69.0));
        assert_eq!(pr.billed_s, 365.0);
        // process: each waits 40 s after its procure child stopped; child 3 never ran.
        assert_eq!((pc.children, pc.attempts, pc.never_started), (4, 3, 1));
        assert_eq!((pc.waiting_s, pc.working_s, pc.billed_s), (120.0, 3.0, 180.0));
        assert_eq!(eg.children, 0);
        assert_eq!(m.wall_s, 172.5);
        let per_second = (0.25 * 0.04048 + 0.5 * 0.004445) / 3600.0;
        assert!(
            (m.costs.compute - 545.0 * per_second).abs() < 1e-12,
            "{}",
            m.costs.compute
        );
    }

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
            run_id: "r".parse().unwrap(),
            array_size,
            queues: PerStage(queues.map(String::from)),
            job_definitions: PerStage::splat("d".to_string()),
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
        let calls = crate::calls::contract::Calls::new("tandem watch");
        let client = mock_client!(
            aws_sdk_batch,
            RuleMode::MatchAny,
            [&describe, &page1, &page2, &egress],
            |c| c.interceptor(calls.recorder(crate::calls::resolve::batch))
        );
        let polled = poll(&client, &jobs()).await.unwrap();
        let report = &polled.report;
        assert!(report.finished);
        assert!(
            !report.succeeded,
            "a FAILED stage must never be reported as success"
        );
        assert_eq!(report.failed_indices, PerStage([vec![], vec![3, 7], vec![3, 7]]));
        assert_eq!(report.failed_counts, PerStage([0, 2, 2]));
        let f = &polled.failed[0];
        assert_eq!((f.stage, f.index, f.exit_code), (Stage::Process, 3, Some(1)));
        assert!(f.reason.contains("Essential container"));
        assert_eq!(report.stages[1].counts.get("FAILED"), Some(&2));
        // process: exit codes 1 and 2 are two groups; egress: one dependency group.
        let egress: Vec<_> = report
            .failure_groups
            .iter()
            .filter(|g| g.stage == Stage::Egress)
            .collect();
        assert_eq!(egress.len(), 1);
        assert_eq!(
            (egress[0].count, egress[0].first_indices.clone()),
            (2, vec![3, 7])
        );
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
        let calls = crate::calls::contract::Calls::new("tandem watch");
        let client = mock_client!(
            aws_sdk_batch,
            aws_smithy_mocks::RuleMode::Sequential,
            [&describe],
            |c| c.interceptor(calls.recorder(crate::calls::resolve::batch))
        );
        let polled = poll(&client, &jobs()).await.unwrap();
        assert!(polled.report.finished && polled.report.succeeded && polled.failed.is_empty());
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
        let calls = crate::calls::contract::Calls::new("tandem watch");
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&describe], |c| c
            .interceptor(calls.recorder(crate::calls::resolve::batch)));
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
        let calls = crate::calls::contract::Calls::new("tandem watch");
        let client = mock_client!(aws_sdk_batch, RuleMode::Sequential, [&describe], |c| c
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(5)
                    .with_initial_backoff(Duration::from_millis(1))
            )
            .interceptor(calls.recorder(crate::calls::resolve::batch)));
        let polled = poll(&client, &jobs()).await.unwrap();
        assert!(polled.report.succeeded);
        assert_eq!(describe.num_calls(), 3);
    }

    /// Procure and process are accepted (job id "j"); egress's queue does not exist.
    fn now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    }

    /// SubmitJob answers stage `stage`'s request with a 503 first, then with `id`.
    fn lost_then_ok(stage: &'static str, id: &'static str) -> aws_smithy_mocks::Rule {
        mock!(Client::submit_job)
            .match_requests(move |r| r.job_name().is_some_and(|n| n.ends_with(stage)))
            .sequence()
            .http_status(503, Some(r#"{"message":"Service Unavailable"}"#.into()))
            .output(move || SubmitJobOutput::builder().job_id(id).job_name("n").build())
            .build()
    }

    #[tokio::test]
    async fn a_lost_answer_whose_job_exists_is_not_submitted_again() {
        let procure = lost_then_ok("procure", "second-procure");
        let rest = mock!(Client::submit_job)
            .match_requests(|r| r.job_name().is_some_and(|n| !n.ends_with("procure")))
            .then_output(|| SubmitJobOutput::builder().job_id("j").job_name("n").build());
        // The first request did create the job: it is listed by its name.
        let list = mock!(Client::list_jobs)
            .match_requests(|r| r.job_queue() == Some("q1"))
            .then_output(|| {
                ListJobsOutput::builder()
                    .job_summary_list(
                        JobSummary::builder()
                            .job_id("first-procure")
                            .job_name(job_name("r", Stage::Procure, ""))
                            .created_at(now_ms())
                            .build(),
                    )
                    .build()
            });
        let calls = crate::calls::contract::Calls::new("tandem submit");
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&procure, &rest, &list], |c| c
            .interceptor(calls.recorder(crate::calls::resolve::batch)));
        let jobs = submit(&client, &spec(5, ["q1", "q2", "q3"])).await.unwrap();
        assert_eq!(jobs[0].job_id, "first-procure");
        assert_eq!(procure.num_calls(), 1, "the procure array was submitted twice");
        assert_eq!(list.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_lost_answer_whose_job_does_not_exist_is_submitted_again() {
        let procure = lost_then_ok("procure", "second-procure");
        let rest = mock!(Client::submit_job)
            .match_requests(|r| r.job_name().is_some_and(|n| !n.ends_with("procure")))
            .then_output(|| SubmitJobOutput::builder().job_id("j").job_name("n").build());
        // An older job of the same name (an earlier submission of this run) is not it.
        let list = mock!(Client::list_jobs).then_output(|| {
            ListJobsOutput::builder()
                .job_summary_list(
                    JobSummary::builder()
                        .job_id("last-week")
                        .job_name(job_name("r", Stage::Procure, ""))
                        .created_at(now_ms() - 7 * 86_400_000)
                        .build(),
                )
                .build()
        });
        let calls = crate::calls::contract::Calls::new("tandem submit");
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&procure, &rest, &list], |c| c
            .interceptor(calls.recorder(crate::calls::resolve::batch)));
        let jobs = submit(&client, &spec(5, ["q1", "q2", "q3"])).await.unwrap();
        assert_eq!(jobs[0].job_id, "second-procure");
        assert_eq!(procure.num_calls(), 2);
    }

    #[tokio::test]
    async fn a_refused_submission_is_not_retried() {
        let (ok, fail) = egress_submission_fails();
        let terminate = mock!(Client::terminate_job).then_output(|| TerminateJobOutput::builder().build());
        let list = mock!(Client::list_jobs).then_output(|| ListJobsOutput::builder().build());
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&ok, &fail, &terminate, &list]);
        submit(&client, &spec(5, ["q1", "q2", "q3"])).await.unwrap_err();
        assert_eq!((fail.num_calls(), list.num_calls()), (1, 0));
    }

    #[tokio::test]
    async fn without_attempts_the_job_definitions_retry_rules_stand() {
        let submitted = mock!(Client::submit_job)
            .match_requests(|r| r.retry_strategy().is_none())
            .then_output(|| SubmitJobOutput::builder().job_id("j").job_name("n").build());
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&submitted]);
        submit(&client, &spec(5, ["q1", "q2", "q3"])).await.unwrap();
        assert_eq!(submitted.num_calls(), 3);
    }

    #[tokio::test]
    async fn attempts_keep_the_job_definitions_rules_of_what_is_retried() {
        use aws_sdk_batch::operation::describe_job_definitions::DescribeJobDefinitionsOutput;
        use aws_sdk_batch::types::{EvaluateOnExit, JobDefinition, RetryAction};
        let rule =
            |on: &str, action: RetryAction| EvaluateOnExit::builder().on_reason(on).action(action).build();
        let definitions = mock!(Client::describe_job_definitions).then_output(move || {
            let def = |rev: i32, status: &str| {
                JobDefinition::builder()
                    .job_definition_name("d")
                    .job_definition_arn(format!("arn:aws:batch:us-east-1:1:job-definition/d:{rev}"))
                    .revision(rev)
                    .r#type("container")
                    .status(status)
                    .retry_strategy(
                        RetryStrategy::builder()
                            .attempts(3)
                            .evaluate_on_exit(rule("CannotPullContainerError*", RetryAction::Retry))
                            .evaluate_on_exit(rule(&format!("* rev {rev}"), RetryAction::Exit))
                            .build(),
                    )
                    .build()
            };
            DescribeJobDefinitionsOutput::builder()
                .job_definitions(def(1, "INACTIVE"))
                .job_definitions(def(2, "ACTIVE"))
                .build()
        });
        let submitted = mock!(Client::submit_job)
            .match_requests(|r| {
                r.retry_strategy().is_some_and(|s| {
                    s.attempts() == Some(5)
                        && s.evaluate_on_exit().len() == 2
                        && s.evaluate_on_exit()[1].on_reason() == Some("* rev 2")
                })
            })
            .then_output(|| SubmitJobOutput::builder().job_id("j").job_name("n").build());
        let calls = crate::calls::contract::Calls::new("tandem rerun --on aws");
        let client = mock_client!(
            aws_sdk_batch,
            RuleMode::MatchAny,
            [&definitions, &submitted],
            |c| c.interceptor(calls.recorder(crate::calls::resolve::batch))
        );
        let mut s = spec(5, ["q1", "q2", "q3"]);
        s.attempts = Some(5);
        submit(&client, &s).await.unwrap();
        assert_eq!(
            submitted.num_calls(),
            3,
            "a submission lost the definition's rules"
        );
    }

    fn egress_submission_fails() -> (aws_smithy_mocks::Rule, aws_smithy_mocks::Rule) {
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
        (ok, fail)
    }

    #[tokio::test]
    async fn a_submission_failing_half_way_terminates_what_it_submitted() {
        let (ok, fail) = egress_submission_fails();
        let terminate = mock!(Client::terminate_job).then_output(|| TerminateJobOutput::builder().build());
        let calls = crate::calls::contract::Calls::new("tandem submit");
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&ok, &fail, &terminate], |c| c
            .interceptor(calls.recorder(crate::calls::resolve::batch)));
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
        let calls = crate::calls::contract::Calls::new("tandem submit");
        let client = mock_client!(
            aws_sdk_batch,
            RuleMode::MatchAny,
            [] as [&aws_smithy_mocks::Rule; 0],
            |c| c.interceptor(calls.recorder(crate::calls::resolve::batch))
        );
        let spec = spec(10_001, ["q", "q", "q"]);
        let err = submit(&client, &spec).await.unwrap_err().to_string();
        assert!(err.contains("10001") && err.contains("10000"), "{err}");
    }

    #[test]
    fn job_names_are_valid_batch_names() {
        // However long the run id, a rerun's names start with the run's own, which is
        // how a run's jobs are found by prefix.
        let long = "x".repeat(128);
        for stage in Stage::ALL {
            let own = job_name(&long, stage, "");
            let rerun = job_name(&long, stage, "-rerun-20261130T123456Z");
            assert!(
                rerun.starts_with(&format!("{own}-")) && rerun.len() <= 128,
                "{own} / {rerun}"
            );
        }
        assert_eq!(
            job_name("20261128T000000Z-ab.c", Stage::Egress, ""),
            "tandem-20261128T000000Z-ab_c-egress"
        );
        // A 128-character run id: the run part is shortened, never the stage or the
        // rerun suffix, so the three names stay distinct.
        let run = format!("20261128T000000Z-{}-end", "x".repeat(107));
        let names: Vec<String> = Stage::ALL
            .iter()
            .map(|s| job_name(&run, *s, "-rerun-20261128T010203Z"))
            .collect();
        for (n, s) in names.iter().zip(Stage::ALL) {
            assert!(n.len() <= 128, "{n}");
            assert!(n.ends_with(&format!("-{s}-rerun-20261128T010203Z")), "{n}");
            assert!(
                n.starts_with("tandem-20261128T000000Z-") && n.contains("-end-"),
                "{n}"
            );
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
        }
        assert_ne!(names[0], names[1]);
    }

    #[test]
    fn ten_thousand_failed_children_and_their_dependents_fit_in_a_state_payload() {
        // A bad image: every procure child fails, every later child is a dependency
        // failure. Step Functions refuses payloads over 256 KiB.
        let mut failed = Vec::new();
        for stage in Stage::ALL {
            for index in 0..10_000u32 {
                failed.push(FailedChild {
                    stage,
                    index,
                    reason: if stage == Stage::Procure {
                        format!(
                            "CannotPullContainerError: pull image manifest has been retried 5 time(s): \
                             failed to resolve ref 123456789012.dkr.ecr.us-east-2.amazonaws.com/tandem:{index}"
                        )
                    } else {
                        "Dependent Job failed".into()
                    },
                    container_reason: (stage == Stage::Procure).then(|| "x".repeat(2000)),
                    exit_code: None,
                });
            }
        }
        let stages = vec![];
        let report = summarize(true, false, stages, &failed);
        let json = serde_json::to_vec(&report).unwrap();
        assert!(json.len() < 256 * 1024, "{} bytes", json.len());
        assert_eq!(report.failed_counts, PerStage([10_000, 10_000, 10_000]));
        assert!(report.failed_indices_truncated);
        assert_eq!(report.failed_indices[Stage::Egress].len(), MAX_INDICES_PER_STAGE);
        // Distinct reasons (one per child, here) are grouped as far as they fit and
        // counted, never dropped.
        let grouped: u32 = report.failure_groups.iter().map(|g| g.count).sum();
        assert_eq!(grouped + report.other_failures, 30_000);
    }

    #[tokio::test]
    async fn the_container_reason_is_kept_next_to_the_status_reason() {
        let describe = mock!(Client::describe_jobs).then_output(|| {
            DescribeJobsOutput::builder()
                .jobs(job("p1", JobStatus::Failed, &[("FAILED", 1), ("SUCCEEDED", 9)]))
                .jobs(job("p2", JobStatus::Failed, &[("FAILED", 1), ("SUCCEEDED", 9)]))
                .jobs(job("p3", JobStatus::Failed, &[("FAILED", 1), ("SUCCEEDED", 9)]))
                .build()
        });
        let list = mock!(Client::list_jobs).then_output(|| {
            ListJobsOutput::builder()
                .job_summary_list(
                    JobSummary::builder()
                        .job_id("a:4")
                        .job_name("a")
                        .status(JobStatus::Failed)
                        .status_reason("Essential container in task exited")
                        .array_properties(ArrayPropertiesSummary::builder().index(4).build())
                        .container(
                            ContainerSummary::builder()
                                .exit_code(137)
                                .reason("OutOfMemoryError: Container killed due to memory usage")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
        let calls = crate::calls::contract::Calls::new("tandem watch");
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&describe, &list], |c| c
            .interceptor(calls.recorder(crate::calls::resolve::batch)));
        let polled = poll(&client, &jobs()).await.unwrap();
        let f = &polled.failed[0];
        assert_eq!(f.reason, "Essential container in task exited");
        assert_eq!(
            f.container_reason.as_deref(),
            Some("OutOfMemoryError: Container killed due to memory usage")
        );
        assert_eq!(f.exit_code, Some(137));
    }

    #[tokio::test]
    async fn a_failed_terminate_is_reported_not_hidden() {
        let (ok, fail) = egress_submission_fails();
        let terminate = mock!(Client::terminate_job)
            .sequence()
            .output(|| TerminateJobOutput::builder().build())
            .error(|| {
                aws_sdk_batch::operation::terminate_job::TerminateJobError::ClientException(
                    ClientException::builder().message("not authorized").build(),
                )
            })
            .build();
        let calls = crate::calls::contract::Calls::new("tandem submit");
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&ok, &fail, &terminate], |c| c
            .interceptor(calls.recorder(crate::calls::resolve::batch)));
        let err = submit(&client, &spec(5, ["q1", "q2", "q3"]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("terminated the stages already submitted: procure (j)"),
            "{err}"
        );
        assert!(
            err.contains("could NOT terminate process (j): ClientException: not authorized"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_jobs_of_a_run_are_found_by_name_in_their_queues() {
        // Each queue holds the run's own job; procure's also an older one of the same
        // name (an earlier attempt) and another run's whose name starts alike.
        let list = |rerun: bool| {
            mock!(Client::list_jobs).then_compute_output(move |r| {
                let queue = r.job_queue().unwrap_or_default().to_string();
                let prefix = r.filters()[0].values()[0].trim_end_matches('*').to_string();
                let job = |id: String, name: &str, created: i64| {
                    JobSummary::builder()
                        .job_id(id)
                        .job_name(name)
                        .created_at(created)
                        .status(JobStatus::Succeeded)
                        .build()
                };
                let mut out =
                    ListJobsOutput::builder().job_summary_list(job(format!("{queue}-new"), &prefix, 20));
                if queue == "q1" {
                    out = out
                        .job_summary_list(job("q1-old".into(), &prefix, 10))
                        .job_summary_list(job("other".into(), &format!("{prefix}x"), 99));
                }
                if rerun {
                    out = out.job_summary_list(job(
                        format!("{queue}-rerun"),
                        &format!("{prefix}-rerun-S1"),
                        30,
                    ));
                }
                out.build()
            })
        };
        let own = list(false);
        let calls = crate::calls::contract::Calls::new("tandem watch");
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&own], |c| c
            .interceptor(calls.recorder(crate::calls::resolve::batch)));
        let queues = PerStage(["q1".to_string(), "q2".to_string(), "q3".to_string()]);
        let found = find_jobs(&client, &queues, "r1").await.unwrap();
        assert_eq!(
            found.jobs,
            vec![
                (Stage::Procure, "q1-new".to_string()),
                (Stage::Process, "q2-new".to_string()),
                (Stage::Egress, "q3-new".to_string())
            ]
        );
        assert_eq!(found.index_map(), None);
        // After a rerun, its arrays are the newest: they are watched, through their map.
        let rerun = list(true);
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&rerun]);
        let found = find_jobs(&client, &queues, "r1").await.unwrap();
        assert_eq!(found.jobs[2], (Stage::Egress, "q3-rerun".to_string()));
        assert_eq!(found.index_map().as_deref(), Some("index-map-S1.json"));
        let none = mock!(Client::list_jobs).then_output(|| ListJobsOutput::builder().build());
        let calls = crate::calls::contract::Calls::new("tandem watch");
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&none], |c| c
            .interceptor(calls.recorder(crate::calls::resolve::batch)));
        let err = find_jobs(&client, &queues, "r1").await.unwrap_err().to_string();
        assert!(err.contains("procure (tandem-r1-procure in q1)"), "{err}");
    }

    #[test]
    fn a_reruns_report_names_the_original_children() {
        let failed = |index| FailedChild {
            stage: Stage::Egress,
            index,
            reason: "Essential container in task exited".into(),
            container_reason: None,
            exit_code: Some(1),
        };
        let mut list = vec![failed(0), failed(2)];
        let mut report = summarize(true, false, vec![], &list);
        map_to_original(&mut report, &mut list, &[7, 41, 9000]);
        assert_eq!(list.iter().map(|f| f.index).collect::<Vec<_>>(), [7, 9000]);
        assert_eq!(report.failed_indices[Stage::Egress], vec![7, 9000]);
        assert_eq!(report.failure_groups[0].first_indices, vec![7, 9000]);
        assert!(
            report
                .failed_sample
                .iter()
                .all(|f| f.index == 7 || f.index == 9000)
        );
    }

    #[tokio::test]
    async fn a_submission_without_a_job_id_is_refused() {
        let empty = mock!(Client::submit_job)
            .then_output(|| SubmitJobOutput::builder().job_id("").job_name("n").build());
        let calls = crate::calls::contract::Calls::new("tandem submit");
        let client = mock_client!(aws_sdk_batch, RuleMode::MatchAny, [&empty], |c| c
            .interceptor(calls.recorder(crate::calls::resolve::batch)));
        let err = submit(&client, &spec(5, ["q", "q", "q"]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("without a job id") && err.contains("procure"),
            "{err}"
        );
    }
}
