//! `tandem submit`, `watch`, `rerun --on aws` and `start`: the run on AWS Batch and
//! Step Functions, named by flags or by the deployed stack's outputs (`--stack`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tandem_aws::Aws;
use tandem_aws::batch::{self, JobRecord, Submission, SubmitSpec, SubmittedStage, WatchOptions, WatchReport};
use tandem_core::layout::RunId;
use tandem_core::names::{PerStage, Stage};
use tandem_core::stage::RunContext;
use tandem_core::store::ObjectStore;

use crate::Failed;
use crate::args::{BatchTargetArgs, RerunArgs, StartArgs, SubmitArgs, WatchArgs};
use crate::output;
use crate::run::{open_run, pipeline_stack};

/// The job record on the volume (when the run is there) or else in the bucket.
fn load_record(
    root: Option<&Path>,
    store: Option<&dyn ObjectStore>,
    run_id: &RunId,
) -> Result<Option<JobRecord>> {
    if let Some(path) = root.map(|r| record_path(r, run_id)) {
        match std::fs::read(&path) {
            Ok(b) => return Ok(Some(JobRecord::parse(&b, &path.display().to_string())?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    match store {
        Some(store) => Ok(JobRecord::fetch(store, run_id)?),
        None => Ok(None),
    }
}

/// Writes the record on the volume (when the run is there) and in the bucket.
fn save_record(record: &JobRecord, root: &Path, store: &dyn ObjectStore) -> Result<()> {
    let path = record_path(root, &record.run_id);
    if path.parent().is_some_and(Path::is_dir) {
        tandem_core::store::write_file(&path, &serde_json::to_vec_pretty(record)?)
            .with_context(|| format!("recording the job ids in {}", path.display()))?;
    }
    Ok(record.publish(store)?)
}

/// What submit prints.
#[derive(Debug, Serialize)]
struct SubmitOutput {
    run_id: RunId,
    array_size: u32,
    jobs: Vec<SubmittedStage>,
}

fn record_path(root: &Path, run_id: &str) -> PathBuf {
    root.join(run_id).join("batch-jobs.json")
}

/// Where a run's jobs go: a queue and a job definition per stage, and the shared
/// volume's path inside the containers.
struct BatchTarget {
    queues: PerStage<String>,
    job_definitions: PerStage<String>,
    container_root: Option<String>,
}

/// Connects and resolves the target (the flags were parsed and checked by clap).
fn connect(a: &BatchTargetArgs) -> Result<(Aws, BatchTarget)> {
    let aws = Aws::from_env()?;
    let target = batch_target(&aws, a)?;
    Ok((aws, target))
}

/// Queues and job definitions from the flags, or from the stack's outputs for those
/// not given; the container root from the flag, the stack, or (the caller's default)
/// the local root.
fn batch_target(aws: &Aws, a: &BatchTargetArgs) -> Result<BatchTarget> {
    let outputs = a
        .stack
        .as_deref()
        .map(|name| pipeline_stack(aws, name))
        .transpose()?;
    let queues = match (&a.queues, &outputs) {
        (Some(q), _) => q.clone(),
        (None, Some(o)) => o.queues.clone(),
        (None, None) => {
            bail!("no job queues: give --queue Q[,Q2,Q3] or --stack NAME (the deployed pipeline stack)")
        }
    };
    let job_definitions = match (&a.job_definitions, &outputs) {
        (Some(d), _) => d.clone(),
        (None, Some(o)) => PerStage::splat(o.job_definition.clone()),
        (None, None) => bail!(
            "no job definition: give --job-definition D[,D2,D3] or --stack NAME (the deployed pipeline stack)"
        ),
    };
    Ok(BatchTarget {
        queues,
        job_definitions,
        container_root: a
            .container_root
            .clone()
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
    let submitted = submit_spec(&aws, &ctx, &spec, None)?;
    output::json(&SubmitOutput {
        run_id: spec.run_id,
        array_size: submitted.array_size,
        jobs: submitted.jobs,
    })
}

/// Submits `spec` and adds the submission to the run's job record.
fn submit_spec(
    aws: &Aws,
    ctx: &RunContext,
    spec: &SubmitSpec,
    index_map: Option<String>,
) -> Result<Submission> {
    batch::check_spec(spec)?;
    if !spec.bucket.starts_with("s3://") {
        crate::note!(
            "tandem: warning: the run's bucket is {}; Batch containers write there only if they mount it",
            spec.bucket
        );
    }
    let root = ctx.layout.root();
    let store = ctx.store.as_ref();
    // Read before submitting, so a record that cannot be read stops nothing half way.
    let mut record = load_record(Some(root), Some(store), &spec.run_id)?.unwrap_or(JobRecord {
        run_id: spec.run_id.clone(),
        submissions: vec![],
    });
    let client = aws_sdk_batch_client(aws);
    let jobs = aws.block_on(batch::submit(&client, spec))?;
    let submission = Submission {
        array_size: spec.array_size,
        index_map,
        jobs,
    };
    record.submissions.push(submission.clone());
    save_record(&record, root, store)?;
    Ok(submission)
}

#[derive(Serialize)]
struct RerunOnAws {
    run_id: RunId,
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
    // Watch names the original children through the bucket's copy.
    tandem_core::index_map::publish(ctx.store.as_ref(), &run_id, &map, &indices)?;
    let mut spec = base_spec(&ctx, &a.run, &target, indices.len() as u32);
    spec.attempts = a.exec.attempts;
    spec.extra_env = vec![("TANDEM_INDEX_MAP".into(), map.clone())];
    spec.name_suffix = format!("-rerun-{stamp}");
    let submitted = submit_spec(&aws, &ctx, &spec, Some(map.clone()))?;
    output::json(&RerunOnAws {
        run_id,
        indices,
        index_map: Some(map),
        jobs: submitted.jobs,
    })
}

/// `tandem rerun --stack NAME`: the repair runs inside the deployment. The state
/// machine starts in rerun mode: its prepare step, which mounts the volume, finds the
/// lost children with verify's check of every object and submits one compact array
/// per stage over them; the operator needs no volume.
pub fn rerun_in_deployment(a: RerunArgs) -> Result<()> {
    let aws = Aws::from_env()?;
    let name = a.target.stack.as_deref().unwrap_or_default();
    let arn = pipeline_stack(&aws, name)?.state_machine_arn;
    let input = serde_json::json!({ "rerun": a.run.run_id });
    run_execution(&aws, &arn, &input, None, &a.follow, a.json)
}

fn aws_sdk_batch_client(aws: &Aws) -> tandem_aws::batch::Client {
    tandem_aws::batch::client(aws.config())
}

#[derive(Serialize)]
struct WatchOutput<'a> {
    #[serde(flatten)]
    report: &'a WatchReport,
    timed_out: bool,
    /// With --costs: where the run's time went and what it cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    costs: Option<&'a tandem_core::cost::Measured>,
}

/// What the finished run `run` cost: every child of `jobs` as Batch described it,
/// priced by the cost model with the run's workload (its manifest).
fn run_costs(
    aws: &Aws,
    client: &tandem_aws::batch::Client,
    jobs: &[(Stage, String)],
    run: &RunRecords,
    region: Option<&str>,
    rerun: bool,
) -> Result<tandem_core::cost::Measured> {
    let manifest = match (&run.root, &run.store) {
        (Some(root), _) => {
            tandem_core::manifest::Manifest::load(&tandem_core::layout::RunLayout::new(root, &run.run_id))?
        }
        (None, Some(store)) => tandem_core::manifest::Manifest::fetch(store.as_ref(), &run.run_id)?,
        (None, None) => bail!(
            "--costs needs run {}'s manifest (its workload): it is neither on the volume nor in a known bucket (give --stack)",
            run.run_id
        ),
    };
    let mut observed = Vec::new();
    let mut fargate = true;
    for (stage, id) in jobs {
        let d = aws.block_on(batch::observed_children(client, *stage, id))?;
        if d.missing > 0 {
            crate::note!(
                "tandem: --costs: Batch no longer describes {} of {stage}'s children (it keeps finished jobs about a week): they are not counted",
                d.missing
            );
        }
        fargate &= d.fargate;
        observed.extend(d.children);
    }
    // The workers' own start times, from the completion records in the results (a
    // rerun's arrays are numbered apart from the run's: not matched).
    if let (Some(store), false) = (&run.store, rerun) {
        let view = tandem_core::stage::RunView {
            manifest: manifest.clone(),
            store: store.clone(),
            layout: None,
        };
        match tandem_core::report::collect(&view, 32) {
            Ok((children, _)) => {
                let started: std::collections::HashMap<(Stage, u32), f64> = children
                    .iter()
                    .flat_map(|c| {
                        c.history
                            .iter()
                            .map(move |t| ((t.stage, c.index), t.start_us as f64 / 1e6))
                    })
                    .collect();
                for o in &mut observed {
                    o.worker_started_s = started.get(&(o.stage, o.index)).copied();
                }
            }
            Err(e) => crate::note!(
                "tandem: --costs: the workers' start times are not in the breakdown (their results could not be read: {})",
                tandem_core::error::chain(&e)
            ),
        }
    }
    let Some(region) = region
        .map(str::to_string)
        .or_else(|| aws.config().region().map(|r| r.to_string()))
    else {
        bail!("--costs needs the region whose prices apply: give --price-region or set AWS_REGION");
    };
    let table = tandem_core::cost::PriceTable::committed();
    let compute = if fargate {
        tandem_core::cost::Compute::Fargate
    } else {
        tandem_core::cost::Compute::Ec2
    };
    let inputs = tandem_core::cost::Inputs {
        records: manifest.plan.records,
        ids_per_node: manifest.plan.ids_per_node,
        prices: table.region(&region)?.clone(),
        prices_as_of: table.as_of.clone(),
        region,
        platform: tandem_core::cost::Platform::stack_default(compute),
        rate: tandem_core::cost::WorkRate::measured(),
    };
    Ok(tandem_core::cost::measured(&inputs, &observed))
}

/// What run `view` cost on the deployed pipeline stack `stack`: its newest jobs,
/// found by name in the stack's queues, described and priced (`tandem report --costs`).
pub fn stack_run_costs(
    stack: &str,
    view: &tandem_core::stage::RunView,
    region: Option<&str>,
) -> Result<tandem_core::cost::Measured> {
    let aws = Aws::from_env()?;
    let outputs = pipeline_stack(&aws, stack)?;
    let client = aws_sdk_batch_client(&aws);
    let run_id = &view.manifest.run_id;
    let found = aws
        .block_on(batch::find_jobs(&client, &outputs.queues, run_id))
        .with_context(|| format!("finding run {run_id}'s jobs in stack {stack}'s queues"))?;
    if found.jobs.iter().any(|(_, id)| id.is_empty()) || found.jobs.is_empty() {
        bail!(
            "stack {stack}'s queues hold no jobs of run {run_id} (Batch forgets finished jobs after about a week)"
        );
    }
    let records = RunRecords {
        run_id: run_id.clone(),
        root: None,
        store: Some(view.store.clone()),
    };
    run_costs(
        &aws,
        &client,
        &found.jobs,
        &records,
        region,
        found.index_map().is_some(),
    )
}

/// The cost section of `tandem watch --costs`, for people.
pub fn costs_text(m: &tandem_core::cost::Measured) -> String {
    let mut s = format!(
        "on Batch, {:.0} s from the first job created to the last attempt's end\n",
        m.wall_s
    );
    s.push_str(&output::times_table(&m.stages, true));
    s.push_str(&format!(
        "cost: at least ${:.4} (the image pulls and instance boots are not in Batch's job descriptions)",
        m.costs.total
    ));
    for (name, v, share) in m.costs.parts() {
        s.push_str(&format!(", {name} ${v:.4} ({:.0}%)", share * 100.0));
    }
    s.push('\n');
    s
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
            format!(
                "{}: {} ({})",
                s.stage,
                s.status.as_str().to_lowercase(),
                counts.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The jobs a watch follows, the rerun index map that names their children, and the
/// run they belong to (where the full list of failed children goes).
struct Watched {
    jobs: Vec<(Stage, String)>,
    map: Option<Vec<u32>>,
    run: Option<RunRecords>,
}

/// Where a run's records are: the volume (when this machine has the run) and the
/// bucket (when known: the stack's, or the one the run's manifest names).
struct RunRecords {
    run_id: RunId,
    root: Option<PathBuf>,
    store: Option<std::sync::Arc<dyn ObjectStore>>,
}

impl RunRecords {
    fn index_map(&self, file: &str, array_size: u32) -> Result<Vec<u32>> {
        if let Some(root) = &self.root {
            let layout = tandem_core::layout::RunLayout::new(root, &self.run_id);
            return Ok(tandem_core::index_map::load(&layout, file, array_size)?);
        }
        match &self.store {
            Some(store) => Ok(tandem_core::index_map::fetch(
                store.as_ref(),
                &self.run_id,
                file,
                array_size,
            )?),
            None => bail!(
                "the index map {file} of run {} is neither on the volume nor in a known bucket",
                self.run_id
            ),
        }
    }
}

/// What to watch: `--jobs`, or run `--run`'s newest submission from its job record
/// (the volume's, else the bucket's), or, for a run the state machine started (no
/// record), its jobs found by name in the stack's queues.
fn watched(aws: &Aws, a: &WatchArgs) -> Result<Watched> {
    let run = match (&a.jobs, &a.run_id) {
        (Some(ids), _) => {
            let jobs = ids.iter().map(|(stage, id)| (stage, id.clone())).collect();
            return Ok(Watched {
                jobs,
                map: None,
                run: None,
            });
        }
        (None, Some(run)) => run,
        (None, None) => bail!("give --jobs ID1,ID2,ID3 or --run RUN_ID"),
    };
    let stack = a.stack.as_deref().map(|s| pipeline_stack(aws, s)).transpose()?;
    let layout = tandem_core::layout::RunLayout::new(&a.location.root, run);
    let on_volume = layout.manifest().is_file();
    let bucket = match (&stack, on_volume) {
        (Some(o), _) => Some(o.bucket_url.clone()),
        (None, true) => Some(tandem_core::manifest::Manifest::load(&layout)?.bucket),
        (None, false) => None,
    };
    let records = RunRecords {
        run_id: run.clone(),
        root: on_volume.then(|| a.location.root.clone()),
        store: bucket.as_deref().map(tandem_aws::open_store).transpose()?,
    };
    // With the stack, its queues hold the newest submission (the state machine's, a
    // rerun's, or submit's), found by the jobs' names; Batch forgets finished jobs
    // after about a week, and then the record names them.
    let by_name = match &stack {
        Some(o) => {
            let client = aws_sdk_batch_client(aws);
            match aws.block_on(batch::find_jobs(&client, &o.queues, run)) {
                Ok(found) => Some(found),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e.into()),
            }
        }
        None => None,
    };
    let (jobs, map_file) = match by_name {
        Some(found) => {
            let map = found.index_map();
            (found.jobs, map)
        }
        None => {
            let record = load_record(records.root.as_deref(), records.store.as_deref(), run)?;
            let Some(last) = record.and_then(|r| r.submissions.last().cloned()) else {
                bail!(
                    "no Batch jobs recorded for run {run} (on the volume at {}{}){}: was it submitted?",
                    record_path(&a.location.root, run).display(),
                    if records.store.is_some() {
                        ", or in its bucket"
                    } else {
                        ""
                    },
                    if stack.is_some() {
                        ", nor any of its jobs in the stack's queues"
                    } else {
                        ""
                    }
                );
            };
            let jobs = last.jobs.into_iter().map(|j| (j.stage, j.job_id)).collect();
            (jobs, last.index_map)
        }
    };
    let map = match map_file {
        Some(f) => Some(records.index_map(&f, tandem_core::plan::MAX_ARRAY_SIZE)?),
        None => None,
    };
    Ok(Watched {
        jobs,
        map,
        run: Some(records),
    })
}

pub fn watch(a: WatchArgs) -> Result<()> {
    let aws = Aws::from_env()?;
    let Watched { jobs, map, run } = watched(&aws, &a)?;
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
    let (mut report, mut failed, timed_out) = match outcome {
        Ok(p) => (p.report, p.failed, false),
        Err(stalled) => (stalled.last, Vec::new(), true),
    };
    if let Some(map) = &map {
        // A rerun's arrays: name the children they stand for.
        batch::map_to_original(&mut report, &mut failed, map);
        report.summarize_line();
    }
    // The report is bounded; the full list goes next to the run, in the bucket and on
    // the volume, wherever this machine can reach.
    if let (Some(run), false) = (&run, failed.is_empty()) {
        if let Some(store) = &run.store {
            match batch::publish_failed_list(store.as_ref(), &run.run_id, &failed) {
                Ok(url) => report.failed_list = Some(url),
                Err(e) => crate::note!(
                    "tandem: warning: could not publish the full list of failed children: {}",
                    tandem_core::error::chain(&e)
                ),
            }
        }
        if let Some(root) = &run.root {
            match batch::write_failed_list(&root.join(&run.run_id), &failed) {
                Ok(path) => {
                    report.failed_list = report.failed_list.take().or(Some(path.display().to_string()))
                }
                Err(e) => crate::note!(
                    "tandem: warning: could not write the full list of failed children: {}",
                    tandem_core::error::chain(&e)
                ),
            }
        }
    }
    // The costs add to the watch's verdict and never replace it: when Batch or the
    // prices cannot give them, the report still prints, and the note says why.
    let costs = match (&run, a.costs && report.finished) {
        (Some(run), true) => {
            match run_costs(
                &aws,
                &client,
                &jobs,
                run,
                a.price_region.as_deref(),
                map.is_some(),
            ) {
                Ok(m) => Some(m),
                Err(e) => {
                    crate::note!("tandem: --costs: {e:#}");
                    None
                }
            }
        }
        _ => None,
    };
    if a.costs && !report.finished {
        crate::note!("tandem: --costs: the run has not finished; its costs come once it has");
    }
    if a.json {
        output::json(&WatchOutput {
            report: &report,
            timed_out,
            costs: costs.as_ref(),
        })?;
    } else {
        output::text(&watch_text(&report))?;
        if let Some(m) = &costs {
            output::text(&costs_text(m))?;
        }
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
    // The execution input is the prepare step's event: only what was given, the
    // prepare step's defaults for the rest.
    let workload = tandem_core::workload::WorkloadInput {
        records: a.records,
        ids_per_node: a.ids_per_node,
        seed: a.seed,
        first_id: a.first_id,
    };
    // The state machine would refuse it in its prepare step; say so now.
    workload.plan()?;
    let input = serde_json::to_value(workload)?;
    let follow = crate::args::FollowArgs {
        no_wait: a.no_wait,
        interval: a.interval,
        max_interval: a.max_interval,
        timeout: a.timeout,
    };
    run_execution(&aws, &arn, &input, a.name.as_deref(), &follow, a.json)
}

/// Starts an execution of state machine `arn` with `input` and follows it to its end
/// (unless `--no-wait`): `tandem start`, and `tandem rerun --stack`.
fn run_execution(
    aws: &Aws,
    arn: &str,
    input: &serde_json::Value,
    name: Option<&str>,
    follow: &crate::args::FollowArgs,
    json: bool,
) -> Result<()> {
    let client = tandem_aws::sfn::client(aws.config());
    let execution = aws.block_on(tandem_aws::sfn::start(&client, arn, input, name))?;
    crate::note!("tandem: started {execution}");
    if follow.no_wait {
        return output::json(&serde_json::json!({ "execution_arn": execution }));
    }
    let opts = tandem_aws::sfn::FollowOptions {
        interval: follow.interval,
        max_interval: follow.max_interval,
        stall_timeout: follow.timeout,
    };
    let quiet = json;
    let outcome = aws.block_on(tandem_aws::sfn::follow(&client, &execution, opts, |r| {
        if !quiet {
            crate::note!(
                "{}: {}{}",
                r.status.as_str().to_lowercase(),
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
    if json {
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
            follow.timeout.unwrap_or_default().as_secs_f64(),
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
