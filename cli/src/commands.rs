//! The subcommands. Each validates its arguments into a checked configuration
//! before any work starts, then calls tandem-core.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tandem_core::exchange::Completion;
use tandem_core::executor::{self, ChildRunner, Execution, ExecutorConfig, Task};
use tandem_core::layout::RunId;
use tandem_core::names::{PerStage, Stage};
use tandem_core::prepare::{PrepareOptions, prepare, remove_run};
use tandem_core::report::{self, ChildTimes, StageStats};
use tandem_core::stage::RunContext;
use tandem_core::store::ObjectStore;
use tandem_core::verify::{VerifyReport, verify};

use crate::Failed;
use crate::args::*;
use crate::output::{self, ms};
use crate::progress::Progress;
use crate::run::{open_run, open_view};

/// Default bucket for a new run.
const DEFAULT_BUCKET: &str = "file://tandem-data/bucket";

pub fn run(cli: Cli) -> Result<()> {
    // The component its AWS calls are recorded as (TANDEM_AWS_CALL_LOG, iam/contract.json).
    tandem_aws::calls::set_component(component(&cli.command));
    match cli.command {
        Command::Loadtest(a) => loadtest(a),
        Command::Prepare(a) => prepare_cmd(a),
        Command::Worker(a) => worker(a),
        Command::Verify(a) => verify_cmd(a),
        Command::Rerun(a) => rerun(a),
        Command::Report(a) => report_cmd(a),
        Command::Submit(a) => crate::aws::submit(a),
        Command::Watch(a) => crate::aws::watch(a),
        Command::Start(a) => crate::aws::start(a),
        Command::Plan(a) => crate::plan::plan(a),
        Command::Api {
            command: ApiCommand::Serve(a),
        } => crate::dr::serve(a),
        Command::DrDrill(a) => crate::dr::drill(a),
        Command::Dr { command } => crate::dr::standby(command),
    }
}

/// The IAM contract's name for what `command` runs as.
fn component(command: &Command) -> &'static str {
    match command {
        Command::Loadtest(_) => "tandem loadtest",
        Command::Prepare(_) => "tandem prepare",
        Command::Worker(_) => "tandem worker",
        Command::Verify(_) => "tandem verify",
        Command::Rerun(a) if a.on() == RerunOn::Aws => "tandem rerun --on aws",
        Command::Rerun(a) if a.on() == RerunOn::Deployment => "tandem rerun --stack",
        Command::Rerun(_) => "tandem rerun",
        Command::Report(_) => "tandem report",
        Command::Submit(_) => "tandem submit",
        Command::Watch(_) => "tandem watch",
        Command::Start(_) => "tandem start",
        Command::Plan(_) => "tandem plan",
        Command::Api { .. } => "tandem api serve",
        // The game day's flags: the task's role (the drill's calls and its own).
        Command::DrDrill(a) if a.publish_metrics || a.report_to.is_some() => "tandem dr game day",
        Command::DrDrill(_) => "tandem dr-drill",
        Command::Dr {
            command: crate::args::DrCommand::EmptyVaults(_),
        } => "tandem dr empty-vaults",
        Command::Dr { .. } => "tandem dr failover",
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Reader threads for visiting every child's object: local reads are CPU-bound (one
/// per core); S3 reads wait on the network, so more of them overlap.
fn reader_threads(store_url: &str) -> usize {
    if store_url.starts_with("s3://") {
        32
    } else {
        cores()
    }
}

/// Checked executor settings plus the faults to inject.
struct ExecConfig {
    config: ExecutorConfig,
    faults: HashMap<(Stage, u32), u32>,
}

fn check_exec(a: &ExecArgs) -> ExecConfig {
    let workers = a.workers.map_or_else(cores, usize::from);
    let mut config = ExecutorConfig::new(workers, a.attempts.unwrap_or(1));
    if let Some(caps) = a.stage_concurrency {
        config.stage_concurrency = caps;
    }
    let faults = a
        .inject_failure
        .iter()
        .map(|f| ((f.stage, f.index), f.failing_attempts))
        .collect();
    ExecConfig { config, faults }
}

/// Fails chosen children on chosen attempts, then runs the real stage.
struct FaultInjector<'a> {
    inner: &'a RunContext,
    faults: &'a HashMap<(Stage, u32), u32>,
}

impl ChildRunner for FaultInjector<'_> {
    fn run(&self, stage: Stage, index: u32, attempt: u32) -> tandem_core::Result<Completion> {
        if self.faults.get(&(stage, index)).is_some_and(|&n| attempt <= n) {
            return Err(tandem_core::Error::Child {
                stage: stage.to_string(),
                index,
                message: format!("injected failure (attempt {attempt})"),
            });
        }
        self.inner.run_child(stage, index, attempt)
    }
}

fn check_faults(faults: &HashMap<(Stage, u32), u32>, array_size: u32) -> Result<()> {
    for (stage, index) in faults.keys() {
        if *index >= array_size {
            bail!(
                "--inject-failure {stage}:{index}: the run has {array_size} children (0..={})",
                array_size - 1
            );
        }
    }
    Ok(())
}

fn execute(ctx: &RunContext, tasks: &[Task], exec: &ExecConfig, progress_enabled: bool) -> Execution {
    let mut totals = PerStage::<u64>::default();
    for t in tasks {
        for s in Stage::ALL.into_iter().filter(|s| *s >= t.from) {
            totals[s] += 1;
        }
    }
    let progress = Progress::new(progress_enabled, totals);
    let runner = FaultInjector {
        inner: ctx,
        faults: &exec.faults,
    };
    let ex = executor::execute(&runner, tasks, &exec.config, &|e| progress.observe(e));
    progress.finish();
    ex
}

/// The options of a new run and its opened bucket.
fn prepare_options(location: &Location, w: &WorkloadArgs) -> Result<(PrepareOptions, Arc<dyn ObjectStore>)> {
    // Open the bucket first: a bad URL or a missing bucket fails before anything is
    // written, and the manifest records its absolute form.
    let store = tandem_aws::open_store(w.bucket.as_deref().unwrap_or(DEFAULT_BUCKET))?;
    let opts = w
        .input()
        .prepare_options(&location.root, w.run_id.clone(), w.overwrite);
    Ok((opts, store))
}

/// `tandem prepare` output: the run, under our names and the original's.
#[derive(Serialize)]
struct PrepareOutput {
    run_id: RunId,
    array_size: u32,
    /// The original init lambda's name for the run id.
    step_fn_id: RunId,
    /// The original init lambda's name for the array size.
    total_nodes: u32,
    records: u64,
    first_id: u64,
    ids_per_node: u64,
    seed: u64,
    run_dir: String,
    bucket: String,
}

fn prepare_cmd(a: PrepareArgs) -> Result<()> {
    let (opts, store) = prepare_options(&a.location, &a.workload)?;
    let (layout, m) = prepare(&opts, store.as_ref())?;
    output::json(&PrepareOutput {
        run_id: m.run_id.clone(),
        array_size: m.plan.array_size,
        step_fn_id: m.run_id.clone(),
        total_nodes: m.plan.array_size,
        records: m.plan.records,
        first_id: m.first_id,
        ids_per_node: m.plan.ids_per_node,
        seed: m.seed,
        run_dir: layout.dir().display().to_string(),
        bucket: m.bucket,
    })
}

fn worker(a: WorkerArgs) -> Result<()> {
    if a.attempt == 0 {
        bail!("--attempt must be 1 or more (AWS_BATCH_JOB_ATTEMPT is 1-based), got 0");
    }
    let ctx = RunContext::open_with(
        &a.location.root,
        &a.run_id,
        a.bucket.as_deref(),
        &tandem_aws::open_store,
    )?;
    let array_size = ctx.manifest.plan.array_size;
    // The state machine sets TANDEM_INDEX_MAP on every child, empty for a run's own.
    let index_map = a.index_map.as_deref().filter(|m| !m.is_empty());
    let index = match (index_map, a.index) {
        (Some(map), i) => tandem_core::index_map::resolve(&ctx.layout, map, i, array_size)?,
        (None, Some(i)) => i,
        (None, None) if array_size == 1 => 0,
        (None, None) => bail!(
            "no array index: run {} has {array_size} children; pass --index or set AWS_BATCH_JOB_ARRAY_INDEX",
            a.run_id
        ),
    };
    // A rerun child skips a stage whose output already verifies.
    if index_map.is_some()
        && let Ok(done) = ctx.check_output(a.stage, index)
    {
        crate::note!(
            "tandem: {} child {index} of run {} is already complete; skipped",
            a.stage,
            a.run_id
        );
        if a.json {
            output::json(&done)?;
        }
        return Ok(());
    }
    let completion = ctx.run_child(a.stage, index, a.attempt).with_context(|| {
        format!(
            "{} child {index} of run {} (attempt {})",
            a.stage, a.run_id, a.attempt
        )
    })?;
    if a.json {
        output::json(&completion)?;
    }
    Ok(())
}

fn verify_text(v: &VerifyReport) -> String {
    if v.ok {
        format!(
            "verified run {}: {} rows, every ID exactly once, checksum {} matches\n",
            v.run_id, v.rows, v.checksum
        )
    } else {
        let mut s = format!("run {} FAILED verification:\n", v.run_id);
        for p in v.problems() {
            s.push_str(&format!("  - {p}\n"));
        }
        s
    }
}

fn verify_cmd(a: VerifyArgs) -> Result<()> {
    let run = open_view(&a.run, a.stack.as_deref())?;
    // On the volume, the ID file is checked too; from the bucket, the results are
    // checked against the manifest's range, which is all verify needs.
    if let Some(ctx) = &run.ctx {
        ctx.check_id_file()?;
    }
    let store = &run.view.store;
    let threads = a
        .threads
        .map_or_else(|| reader_threads(&store.url()), usize::from);
    let v = verify(&run.view.manifest, store.as_ref(), threads)?;
    if a.json {
        output::json(&v)?;
    } else {
        output::text(&verify_text(&v))?;
    }
    if v.ok {
        Ok(())
    } else {
        Err(Failed(format!("run {} did not verify", v.run_id)).into())
    }
}

/// Machine-readable summary of an execution (loadtest and rerun).
#[derive(Serialize)]
struct ExecSummary {
    succeeded: PerStage<usize>,
    failed: PerStage<usize>,
    dependency_failed: PerStage<usize>,
    retries: u32,
    failures: Vec<FailureOut>,
}

#[derive(Serialize)]
struct FailureOut {
    index: u32,
    stage: Stage,
    error: String,
}

fn exec_summary(ex: &Execution) -> ExecSummary {
    let c = ex.counts();
    ExecSummary {
        succeeded: c.map(|_, c| c.succeeded),
        failed: c.map(|_, c| c.failed),
        dependency_failed: c.map(|_, c| c.dependency_failed),
        retries: ex.retries(),
        failures: ex
            .failures()
            .into_iter()
            .map(|(index, stage, error)| FailureOut { index, stage, error })
            .collect(),
    }
}

fn failures_text(ex: &Execution) -> String {
    let f = ex.failures();
    if f.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "{} children failed (later stages of the same index failed as dependencies):\n",
        f.len()
    );
    for (index, stage, error) in f.iter().take(20) {
        s.push_str(&format!("  - {stage} child {index}: {error}\n"));
    }
    if f.len() > 20 {
        s.push_str(&format!("  ... and {} more\n", f.len() - 20));
    }
    s
}

#[derive(Serialize)]
struct Timings {
    prepare_ms: f64,
    execute_ms: f64,
    verify_ms: f64,
    total_ms: f64,
    cleanup_ms: f64,
}

#[derive(Serialize)]
struct LoadtestOutput {
    ok: bool,
    run_id: RunId,
    records: u64,
    first_id: u64,
    ids_per_node: u64,
    seed: u64,
    array_size: u32,
    workers: usize,
    attempts: u32,
    root: String,
    bucket: String,
    kept: bool,
    timings: Timings,
    records_per_second: f64,
    stages: Vec<StageStats>,
    /// Per stage, summed over its children: waiting for the executor and working
    /// (the breakdown `tandem watch --costs` gives for a run on Batch).
    time: Vec<tandem_core::cost::StageTimes>,
    execution: ExecSummary,
    verify: Option<VerifyReport>,
    report: Option<String>,
}

fn write_report(
    path: &std::path::Path,
    m: &tandem_core::manifest::Manifest,
    children: &[ChildTimes],
    failures: &[report::ChildFailure],
    outcome: Result<(), &str>,
    batch: Option<&tandem_core::cost::Measured>,
) -> Result<()> {
    let rows = vec![
        ("run".to_string(), m.run_id.to_string()),
        ("records".to_string(), m.plan.records.to_string()),
        ("ids per node".to_string(), m.plan.ids_per_node.to_string()),
        ("array size".to_string(), m.plan.array_size.to_string()),
        ("children with timings".to_string(), children.len().to_string()),
        ("failed children".to_string(), failures.len().to_string()),
        ("prepared".to_string(), m.created_at.clone()),
    ];
    let html = report::render_html(&report::ReportInput {
        title: &format!("tandem run {}", m.run_id),
        rows: &rows,
        children,
        failures,
        outcome,
        batch,
    });
    std::fs::write(path, html).with_context(|| format!("writing the report to {}", path.display()))
}

/// "1 child" / "3 children".
fn count_children(n: usize) -> String {
    format!("{n} {}", if n == 1 { "child" } else { "children" })
}

fn loadtest(a: LoadtestArgs) -> Result<()> {
    let exec = check_exec(&a.exec);
    let (opts, store) = prepare_options(&a.location, &a.workload)?;
    // Check the plan before creating anything.
    let plan = tandem_core::plan::PartitionPlan::new(opts.records, opts.ids_per_node)?;
    check_faults(&exec.faults, plan.array_size)?;

    let t0 = Instant::now();
    let (layout, _) = prepare(&opts, store.as_ref())?;
    // The bucket is already open (and checked): hand it over rather than open it again.
    let ctx = RunContext::open_with(layout.root(), layout.run_id(), None, &|_| Ok(store.clone()))?;
    let t_prepare = t0.elapsed();

    let tasks = executor::all_tasks(ctx.manifest.plan.array_size);
    let ex = execute(&ctx, &tasks, &exec, !a.json);
    let t_exec = ex.elapsed;

    let t1 = Instant::now();
    let v = verify(
        &ctx.manifest,
        ctx.store.as_ref(),
        reader_threads(&ctx.store.url()),
    )?;
    let t_verify = t1.elapsed();
    let total = t0.elapsed();

    let children = report::from_execution(&ex);
    let failures = report::failures_from_execution(&ex);
    let ok = v.ok && failures.is_empty();
    if let Some(path) = &a.report {
        let why = if !failures.is_empty() {
            format!("{} failed", count_children(failures.len()))
        } else {
            format!("verification failed: {}", v.problems().join("; "))
        };
        let outcome = if ok { Ok(()) } else { Err(why.as_str()) };
        write_report(path, &ctx.manifest, &children, &failures, outcome, None)?;
    }
    let keep = a.keep || !ok;
    let t2 = Instant::now();
    if !keep {
        remove_run(&layout, ctx.store.as_ref())?;
    }
    let t_cleanup = if keep { Duration::ZERO } else { t2.elapsed() };

    let m = &ctx.manifest;
    let stats = report::stage_stats(&children);
    let rps = m.plan.records as f64 / total.as_secs_f64().max(1e-9);
    if a.json {
        output::json(&LoadtestOutput {
            ok,
            run_id: m.run_id.clone(),
            records: m.plan.records,
            first_id: m.first_id,
            ids_per_node: m.plan.ids_per_node,
            seed: m.seed,
            array_size: m.plan.array_size,
            workers: exec.config.workers,
            attempts: exec.config.attempts,
            root: layout.root().display().to_string(),
            bucket: m.bucket.clone(),
            kept: keep,
            timings: Timings {
                prepare_ms: ms(t_prepare),
                execute_ms: ms(t_exec),
                verify_ms: ms(t_verify),
                total_ms: ms(total),
                cleanup_ms: ms(t_cleanup),
            },
            records_per_second: rps,
            stages: stats,
            time: report::time_breakdown(&children),
            execution: exec_summary(&ex),
            verify: Some(v.clone()),
            report: a.report.as_ref().map(|p| p.display().to_string()),
        })?;
    } else {
        let mut s = format!(
            "run {}: {} records, {} per node, {} children, {} workers, {} attempt(s)\n\n",
            m.run_id,
            m.plan.records,
            m.plan.ids_per_node,
            m.plan.array_size,
            exec.config.workers,
            exec.config.attempts
        );
        s.push_str(&format!(
            "prepare {:>10.1} ms\nstages  {:>10.1} ms  (procure, process, egress N_TO_N)\nverify  {:>10.1} ms\ntotal   {:>10.1} ms  ({:.0} records/s)\n",
            ms(t_prepare),
            ms(t_exec),
            ms(t_verify),
            ms(total),
            rps
        ));
        if !keep {
            s.push_str(&format!(
                "cleanup {:>10.1} ms  (run removed; --keep keeps it)\n",
                ms(t_cleanup)
            ));
        }
        s.push('\n');
        s.push_str(&output::stats_table(&stats));
        s.push_str(&output::times_table(&report::time_breakdown(&children), false));
        s.push_str(&output::slowest_table(&report::slowest(&children, 5)));
        s.push_str(&format!("retries: {}\n\n", ex.retries()));
        s.push_str(&failures_text(&ex));
        s.push_str(&verify_text(&v));
        if keep {
            s.push_str(&format!(
                "kept: run directory {}, results in {}/{}/results/\n",
                layout.dir().display(),
                m.bucket,
                m.run_id
            ));
        }
        if let Some(p) = &a.report {
            s.push_str(&format!("report: {}\n", p.display()));
        }
        output::text(&s)?;
    }
    if ok {
        Ok(())
    } else if !ex.failures().is_empty() {
        Err(Failed(format!(
            "{} children failed; after fixing the cause, run: tandem rerun --root {} --run {}",
            ex.failures().len(),
            layout.root().display(),
            m.run_id
        ))
        .into())
    } else {
        Err(Failed(format!("run {} did not verify", m.run_id)).into())
    }
}

#[derive(Serialize)]
struct RerunOutput {
    ok: bool,
    run_id: RunId,
    children_rerun: usize,
    from_stage: PerStage<usize>,
    skipped: u32,
    execute_ms: f64,
    execution: ExecSummary,
}

fn rerun(a: RerunArgs) -> Result<()> {
    match a.on() {
        RerunOn::Aws => return crate::aws::rerun(a),
        RerunOn::Deployment => {
            if a.target.stack.is_none() {
                bail!("--on deployment needs --stack NAME (the deployed pipeline stack)");
            }
            return crate::aws::rerun_in_deployment(a);
        }
        RerunOn::Local => {}
    }
    let exec = check_exec(&a.exec);
    let ctx = open_run(&a.run)?;
    check_faults(&exec.faults, ctx.manifest.plan.array_size)?;
    ctx.check_id_file()?;
    let tasks = executor::rerun_tasks(&ctx, reader_threads(&ctx.store.url()))?;
    let mut from = PerStage::<usize>::default();
    for t in &tasks {
        from[t.from] += 1;
    }
    let ex = if tasks.is_empty() {
        Execution::default()
    } else {
        execute(&ctx, &tasks, &exec, !a.json)
    };
    let ok = ex.failures().is_empty();
    let skipped = ctx.manifest.plan.array_size - tasks.len() as u32;
    if a.json {
        output::json(&RerunOutput {
            ok,
            run_id: ctx.manifest.run_id.clone(),
            children_rerun: tasks.len(),
            from_stage: from,
            skipped,
            execute_ms: ms(ex.elapsed),
            execution: exec_summary(&ex),
        })?;
    } else {
        let mut s = format!(
            "run {}: {} children already complete, {} rerun (from procure {}, process {}, egress {}) in {:.1} ms\n",
            ctx.manifest.run_id,
            skipped,
            tasks.len(),
            from[Stage::Procure],
            from[Stage::Process],
            from[Stage::Egress],
            ms(ex.elapsed)
        );
        s.push_str(&failures_text(&ex));
        output::text(&s)?;
    }
    if ok {
        Ok(())
    } else {
        let n = ex.failures().len();
        Err(Failed(format!(
            "{n} {} still {}",
            if n == 1 { "child" } else { "children" },
            if n == 1 { "fails" } else { "fail" }
        ))
        .into())
    }
}

#[derive(Serialize)]
struct ReportOutput<'a> {
    /// With --costs: where the run's time went on Batch and what it cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    costs: Option<&'a tandem_core::cost::Measured>,
    run_id: RunId,
    children_with_timings: usize,
    array_size: u32,
    failed: Vec<report::ChildFailure>,
    stages: Vec<StageStats>,
    time: Vec<tandem_core::cost::StageTimes>,
    slowest: Vec<report::SlowChild>,
    output: String,
}

fn report_cmd(a: ReportArgs) -> Result<()> {
    let run = open_view(&a.run, a.stack.as_deref())?;
    if let Some(ctx) = &run.ctx {
        ctx.check_id_file()?;
    }
    let ctx = &run.view;
    let (children, failures) = report::collect(ctx, reader_threads(&ctx.store.url()))?;
    let why = format!("{} without a complete result", count_children(failures.len()));
    let outcome = if failures.is_empty() {
        Ok(())
    } else {
        Err(why.as_str())
    };
    let costs = match (&a.stack, a.costs) {
        (Some(stack), true) => Some(crate::aws::stack_run_costs(
            stack,
            ctx,
            a.price_region.as_deref(),
        )?),
        _ => None,
    };
    write_report(
        &a.output,
        &ctx.manifest,
        &children,
        &failures,
        outcome,
        costs.as_ref(),
    )?;
    let stats = report::stage_stats(&children);
    if a.json {
        output::json(&ReportOutput {
            costs: costs.as_ref(),
            run_id: ctx.manifest.run_id.clone(),
            children_with_timings: children.len(),
            array_size: ctx.manifest.plan.array_size,
            failed: failures,
            stages: stats,
            time: report::time_breakdown(&children),
            slowest: report::slowest(&children, 10),
            output: a.output.display().to_string(),
        })
    } else {
        let mut s = output::stats_table(&stats);
        s.push_str(&output::times_table(&report::time_breakdown(&children), false));
        s.push_str(&output::slowest_table(&report::slowest(&children, 5)));
        if let Some(m) = &costs {
            s.push_str(&crate::aws::costs_text(m));
        }
        s.push_str(&format!(
            "{} of {} children have timings; report written to {}\n",
            children.len(),
            ctx.manifest.plan.array_size,
            a.output.display()
        ));
        output::text(&s)
    }
}
