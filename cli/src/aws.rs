//! `tandem submit`, `watch`, `rerun --on aws` and `start`: the run on AWS Batch and
//! Step Functions, named by flags or by the deployed stack's outputs (`--stack`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tandem_aws::Aws;
use tandem_aws::batch::{self, SubmitSpec, SubmittedStage, WatchOptions, WatchReport};
use tandem_core::names::Stage;

use crate::Failed;
use crate::args::{BatchTargetArgs, RerunArgs, StartArgs, SubmitArgs, WatchArgs};
use crate::commands::open_run;
use crate::output;

/// What submit records next to the manifest, so `watch --run` finds the jobs.
#[derive(Debug, Serialize, Deserialize)]
struct SubmitRecord {
    run_id: String,
    array_size: u32,
    jobs: Vec<SubmittedStage>,
}

fn record_path(root: &Path, run_id: &str) -> PathBuf {
    root.join(run_id).join("batch-jobs.json")
}

/// One value for all three stages, or exactly three.
fn three(flag: &str, value: &str) -> Result<[String; 3]> {
    let parts: Vec<String> = value.split(',').map(|s| s.trim().to_string()).collect();
    match parts.as_slice() {
        [one] if !one.is_empty() => Ok([one.clone(), one.clone(), one.clone()]),
        [a, b, c] if ![a, b, c].iter().any(|s| s.is_empty()) => Ok([a.clone(), b.clone(), c.clone()]),
        _ => bail!(
            "{flag} {value:?} is not valid: give one name for all stages or three as procure,process,egress"
        ),
    }
}

/// Where a run's jobs go: a queue and a job definition per stage, and the shared
/// volume's path inside the containers.
struct BatchTarget {
    queues: [String; 3],
    job_definitions: [String; 3],
    container_root: Option<String>,
}

/// The outputs of the deployed pipeline stack `name`.
fn pipeline_stack(aws: &Aws, name: &str) -> Result<tandem_aws::stack::PipelineOutputs> {
    let client = tandem_aws::stack::client(aws.config(), None);
    let outputs = aws.block_on(tandem_aws::stack::StackOutputs::load(&client, name))?;
    Ok(tandem_aws::stack::PipelineOutputs::from_outputs(&outputs)?)
}

/// Checks the flags before any AWS call, then connects and resolves the target.
fn connect(a: &BatchTargetArgs) -> Result<(Aws, BatchTarget)> {
    let queues = a.queues.as_deref();
    let job_definitions = a.job_definitions.as_deref();
    if let Some(q) = queues {
        three("--queue", q)?;
    }
    if let Some(d) = job_definitions {
        three("--job-definition", d)?;
    }
    let aws = Aws::from_env()?;
    let target = batch_target(
        &aws,
        queues,
        job_definitions,
        a.stack.as_deref(),
        a.container_root.as_deref(),
    )?;
    Ok((aws, target))
}

/// Queues and job definitions from the flags, or from the stack's outputs for those
/// not given; the container root from the flag, the stack, or (the caller's default)
/// the local root.
fn batch_target(
    aws: &Aws,
    queues: Option<&str>,
    job_definitions: Option<&str>,
    stack: Option<&str>,
    container_root: Option<&str>,
) -> Result<BatchTarget> {
    let outputs = stack.map(|name| pipeline_stack(aws, name)).transpose()?;
    let queues = match (queues, &outputs) {
        (Some(q), _) => three("--queue", q)?,
        (None, Some(o)) => o.queues.0.clone(),
        (None, None) => {
            bail!("no job queues: give --queue Q[,Q2,Q3] or --stack NAME (the deployed pipeline stack)")
        }
    };
    let job_definitions = match (job_definitions, &outputs) {
        (Some(d), _) => three("--job-definition", d)?,
        (None, Some(o)) => [
            o.job_definition.clone(),
            o.job_definition.clone(),
            o.job_definition.clone(),
        ],
        (None, None) => bail!(
            "no job definition: give --job-definition D[,D2,D3] or --stack NAME (the deployed pipeline stack)"
        ),
    };
    Ok(BatchTarget {
        queues,
        job_definitions,
        container_root: container_root
            .map(str::to_string)
            .or_else(|| outputs.map(|o| o.volume_path)),
    })
}

/// The spec for submitting `array_size` children of the run (all of them, or a
/// rerun's), before the caller's adjustments (attempts, environment, name).
fn base_spec(
    ctx: &tandem_core::stage::RunContext,
    run: &crate::args::RunArgs,
    target: &BatchTarget,
    array_size: u32,
) -> SubmitSpec {
    SubmitSpec {
        run_id: ctx.manifest.run_id.clone(),
        array_size,
        queues: target.queues.clone(),
        job_definitions: target.job_definitions.clone(),
        root: target
            .container_root
            .clone()
            .unwrap_or_else(|| run.location.root.display().to_string()),
        bucket: ctx.store.url(),
        attempts: None,
        extra_env: vec![],
        name_suffix: String::new(),
    }
}

pub fn submit(a: SubmitArgs) -> Result<()> {
    let (aws, target) = connect(&a.target)?;
    let ctx = open_run(&a.run)?;
    let mut spec = base_spec(&ctx, &a.run, &target, ctx.manifest.plan.array_size);
    spec.attempts = a.attempts;
    let record = submit_spec(&aws, &a.run.location.root, &spec)?;
    output::json(&record)
}

/// Submits `spec` and records the jobs next to the manifest.
fn submit_spec(aws: &Aws, root: &Path, spec: &SubmitSpec) -> Result<SubmitRecord> {
    batch::check_spec(spec)?;
    if !spec.bucket.starts_with("s3://") {
        crate::note!(
            "tandem: warning: the run's bucket is {}; Batch containers write there only if they mount it",
            spec.bucket
        );
    }
    let client = aws_sdk_batch_client(aws);
    let jobs = aws.block_on(batch::submit(&client, spec))?;
    let record = SubmitRecord {
        run_id: spec.run_id.clone(),
        array_size: spec.array_size,
        jobs,
    };
    let path = record_path(root, &spec.run_id);
    std::fs::write(&path, serde_json::to_vec_pretty(&record)?)
        .with_context(|| format!("recording the job ids in {}", path.display()))?;
    Ok(record)
}

#[derive(Serialize)]
struct RerunOnAws {
    run_id: String,
    /// Original indices being rerun (entry j is array child j).
    indices: Vec<u32>,
    /// The index map file in the run directory (TANDEM_INDEX_MAP).
    index_map: Option<String>,
    /// The submitted jobs (empty when nothing needed rerunning).
    jobs: Vec<SubmittedStage>,
}

/// `tandem rerun --on aws`: one compact array per stage over the children whose
/// result does not verify, mapped back to their original indices.
pub fn rerun(a: RerunArgs) -> Result<()> {
    let (aws, target) = connect(&a.target)?;
    let ctx = open_run(&a.run)?;
    let workers = a.exec.workers.map_or(4, usize::from).min(64);
    ctx.check_id_file()?;
    let indices: Vec<u32> = tandem_core::executor::rerun_tasks(&ctx, workers)?
        .iter()
        .map(|t| t.index)
        .collect();
    let run_id = ctx.manifest.run_id.clone();
    if indices.is_empty() {
        crate::note!("tandem: every child of run {run_id} is complete; nothing to rerun");
        return output::json(&RerunOnAws {
            run_id,
            indices,
            index_map: None,
            jobs: vec![],
        });
    }
    let stamp = tandem_core::time::compact_stamp(tandem_core::time::now_micros());
    let map = tandem_core::index_map::write(&ctx.layout, &stamp, &indices)?;
    let mut spec = base_spec(&ctx, &a.run, &target, indices.len() as u32);
    spec.attempts = a.exec.attempts;
    spec.extra_env = vec![("TANDEM_INDEX_MAP".into(), map.clone())];
    spec.name_suffix = format!("-rerun-{stamp}");
    let record = submit_spec(&aws, &a.run.location.root, &spec)?;
    output::json(&RerunOnAws {
        run_id,
        indices,
        index_map: Some(map),
        jobs: record.jobs,
    })
}

fn aws_sdk_batch_client(aws: &Aws) -> tandem_aws::batch::Client {
    tandem_aws::batch::client(aws.config())
}

#[derive(Serialize)]
struct WatchOutput<'a> {
    #[serde(flatten)]
    report: &'a WatchReport,
    timed_out: bool,
}

fn status_line(r: &WatchReport) -> String {
    r.stages
        .iter()
        .map(|s| {
            let counts: Vec<String> = s
                .counts
                .iter()
                .map(|(k, v)| format!("{} {v}", k.to_lowercase()))
                .collect();
            format!("{}: {} ({})", s.stage, s.status.to_lowercase(), counts.join(", "))
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

pub fn watch(a: WatchArgs) -> Result<()> {
    let jobs: Vec<(Stage, String)> = match (&a.jobs, &a.run_id) {
        (Some(raw), _) => {
            let ids: Vec<&str> = raw.split(',').map(str::trim).collect();
            if ids.len() != 3 || ids.iter().any(|i| i.is_empty()) {
                bail!("--jobs {raw:?} is not valid: give the three job ids as procure,process,egress");
            }
            Stage::ALL
                .into_iter()
                .zip(ids.into_iter().map(String::from))
                .collect()
        }
        (None, Some(run)) if a.stack.is_some() && !record_path(&a.location.root, run).is_file() => {
            // Started by the state machine: no record, but the jobs carry the run's names.
            tandem_core::layout::check_run_id(run)?;
            let aws = Aws::from_env()?;
            let stack = pipeline_stack(&aws, a.stack.as_deref().unwrap_or_default())?;
            let client = aws_sdk_batch_client(&aws);
            aws.block_on(batch::find_jobs(&client, &stack.queues, run))?
        }
        (None, Some(run)) => {
            tandem_core::layout::check_run_id(run)?;
            let path = record_path(&a.location.root, run);
            let bytes = std::fs::read(&path).with_context(|| {
                format!(
                    "no Batch jobs recorded for run {run} at {}: was it submitted with tandem submit?",
                    path.display()
                )
            })?;
            let record: SubmitRecord =
                serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))?;
            record.jobs.into_iter().map(|j| (j.stage, j.job_id)).collect()
        }
        (None, None) => bail!("give --jobs ID1,ID2,ID3 or --run RUN_ID"),
    };
    let aws = Aws::from_env()?;
    let client = aws_sdk_batch_client(&aws);
    let opts = WatchOptions {
        interval: a.interval,
        max_interval: a.max_interval,
        stall_timeout: a.timeout,
    };
    let quiet = a.json;
    let outcome = aws.block_on(batch::watch(&client, &jobs, opts, |r| {
        if !quiet {
            crate::note!("{}", status_line(r));
        }
    }))?;
    let (mut report, failed, timed_out) = match outcome {
        Ok(p) => (p.report, p.failed, false),
        Err(stalled) => (stalled.last, Vec::new(), true),
    };
    // The report is bounded; the full list goes next to the run when we know it.
    if let (Some(run), false) = (&a.run_id, failed.is_empty()) {
        let dir = a.location.root.join(run);
        match batch::write_failed_list(&dir, &failed) {
            Ok(path) => report.failed_list = Some(path.display().to_string()),
            Err(e) => {
                crate::note!("tandem: warning: could not write the full list of failed children: {e:#}")
            }
        }
    }
    if a.json {
        output::json(&WatchOutput {
            report: &report,
            timed_out,
        })?;
    } else {
        output::text(&watch_text(&report))?;
    }
    if timed_out {
        return Err(Failed(format!(
            "no progress for {:.0} s: {}",
            a.timeout.unwrap_or_default().as_secs_f64(),
            status_line(&report)
        ))
        .into());
    }
    if report.succeeded {
        Ok(())
    } else {
        Err(Failed(report.summary.clone()).into())
    }
}

/// The failures of a finished watch, for people: groups by stage and reason, a
/// sample of children, the status line.
pub fn watch_text(report: &WatchReport) -> String {
    let mut s = String::new();
    for g in &report.failure_groups {
        let code = g
            .exit_code
            .map(|c| format!(", exit code {c}"))
            .unwrap_or_default();
        let container = g
            .container_reason
            .as_deref()
            .map(|r| format!(" / container: {r}"))
            .unwrap_or_default();
        let first: Vec<String> = g.first_indices.iter().map(u32::to_string).collect();
        s.push_str(&format!(
            "failed: {} {} {} ({}{container}{code}), e.g. indices {}\n",
            g.count,
            g.stage,
            if g.count == 1 { "child" } else { "children" },
            g.reason,
            first.join(", ")
        ));
    }
    if report.other_failures > 0 {
        s.push_str(&format!(
            "failed: {} more children with other reasons\n",
            report.other_failures
        ));
    }
    if let Some(path) = &report.failed_list {
        s.push_str(&format!("every failed child, with its reasons: {path}\n"));
    }
    s.push_str(&format!("{}\n", status_line(report)));
    s
}

#[derive(Serialize)]
struct StartOutput<'a> {
    #[serde(flatten)]
    report: &'a tandem_aws::sfn::ExecutionReport,
    timed_out: bool,
}

/// `tandem start`: starts the run state machine and follows the execution.
pub fn start(a: StartArgs) -> Result<()> {
    let aws = Aws::from_env()?;
    let arn = match (&a.state_machine, &a.stack) {
        (Some(arn), _) => arn.clone(),
        (None, Some(stack)) => pipeline_stack(&aws, stack)?.state_machine_arn,
        (None, None) => bail!("give --stack NAME (the deployed pipeline stack) or --state-machine ARN"),
    };
    let mut input = serde_json::Map::new();
    for (key, value) in [
        ("records", a.records),
        ("ids_per_node", a.ids_per_node),
        ("seed", a.seed),
        ("first_id", a.first_id),
    ] {
        if let Some(v) = value {
            input.insert(key.into(), v.into());
        }
    }
    if let (Some(n), Some(k)) = (a.records, a.ids_per_node) {
        // The state machine would refuse it in its prepare step; say so now.
        tandem_core::plan::PartitionPlan::new(n, k)?;
    }
    let client = tandem_aws::sfn::client(aws.config());
    let execution = aws.block_on(tandem_aws::sfn::start(
        &client,
        &arn,
        &input.into(),
        a.name.as_deref(),
    ))?;
    crate::note!("tandem: started {execution}");
    if a.no_wait {
        return output::json(&serde_json::json!({ "execution_arn": execution }));
    }
    let opts = tandem_aws::sfn::FollowOptions {
        interval: a.interval,
        max_interval: a.max_interval,
        stall_timeout: a.timeout,
    };
    let quiet = a.json;
    let outcome = aws.block_on(tandem_aws::sfn::follow(&client, &execution, opts, |r| {
        if !quiet {
            crate::note!(
                "{}: {}{}",
                r.status.to_lowercase(),
                r.current_state.as_deref().unwrap_or("-"),
                r.run_id
                    .as_deref()
                    .map(|id| format!(" (run {id})"))
                    .unwrap_or_default()
            );
        }
    }))?;
    let (report, timed_out) = match &outcome {
        Ok(r) => (r, false),
        Err(r) => (r, true),
    };
    if a.json {
        output::json(&StartOutput { report, timed_out })?;
    } else {
        let mut s = format!("execution {}: {}\n", report.execution_arn, report.status);
        if let Some(run) = &report.run_id {
            s.push_str(&format!("run {run}\n"));
        }
        if let Some(summary) = report
            .output
            .as_ref()
            .and_then(|o| o.pointer("/watch/summary"))
            .and_then(|v| v.as_str())
        {
            s.push_str(&format!("{summary}\n"));
        }
        if let Some(cause) = &report.cause {
            s.push_str(&format!(
                "{}: {cause}\n",
                report.error.as_deref().unwrap_or("error")
            ));
        }
        output::text(&s)?;
    }
    if timed_out {
        return Err(Failed(format!(
            "no change for {:.0} s; the execution goes on: {}",
            a.timeout.unwrap_or_default().as_secs_f64(),
            report.execution_arn
        ))
        .into());
    }
    if report.succeeded() {
        Ok(())
    } else {
        Err(Failed(format!(
            "the execution ended {}: {}",
            report.status,
            report.cause.as_deref().unwrap_or("no cause given")
        ))
        .into())
    }
}
