//! What a run costs and how long it takes on AWS Batch, before it runs: one model
//! whose inputs are shown with its answer.
//!
//! A run of N records at K IDs per child has ceil(N / K) children and three stages,
//! so 3 x ceil(N / K) container starts. On Fargate each task is billed per second
//! from the start of its image pull to its end, with a one-minute minimum
//! (<https://aws.amazon.com/fargate/pricing/>); a child's own work takes milliseconds,
//! so the start-up and the minimum decide the bill, and K decides how many of them
//! there are. On EC2 the compute environment's instances are billed while the queue
//! drains. The model, per stage task:
//!
//! - work: `work_ms_per_child + work_ms_per_id x K` (defaults measured by `tandem
//!   loadtest` on disk, where a child's file work is real);
//! - run time: `startup_s + work` (scheduling, image pull and container start: an
//!   assumption, shown, overridable);
//! - wall time: the tasks in waves of the stack's concurrency (its `maxvCpus` over a
//!   task's vCPUs), and never less than one child's three stages one after another;
//! - compute: Fargate, every task's run time rounded up to the second and to at least
//!   a minute, at its vCPU and memory; EC2, the vCPUs the queue keeps busy (up to
//!   `maxvCpus`) for the wall time plus an instance's boot, at the instance's price
//!   per vCPU;
//! - S3: one PUT per child (its result), one GET per child (verify), a LIST per
//!   thousand; EFS: three stage files written and read per child
//!   (`file_bytes_fixed + file_bytes_per_id x K` each, measured); Step Functions: the
//!   run's state transitions; Lambda: the prepare and watch functions.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::names::Stage;

/// The price table committed with tandem (`core/data/prices.json`).
pub const PRICES_JSON: &str = include_str!("../data/prices.json");

/// Where the containers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compute {
    Fargate,
    Ec2,
}

impl Compute {
    pub fn name(self) -> &'static str {
        match self {
            Compute::Fargate => "fargate",
            Compute::Ec2 => "ec2",
        }
    }
}

/// One region's prices, USD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionPrices {
    pub fargate_vcpu_hour: f64,
    pub fargate_gb_hour: f64,
    pub ec2_instance: String,
    pub ec2_instance_vcpus: u32,
    pub ec2_instance_hour: f64,
    pub s3_put_per_1000: f64,
    pub s3_get_per_1000: f64,
    pub s3_list_per_1000: f64,
    pub efs_read_per_gb: f64,
    pub efs_write_per_gb: f64,
    pub sfn_transition_per_1000: f64,
    pub lambda_gb_second: f64,
    pub lambda_request_per_million: f64,
}

/// The price table: per region, with the date and the pages it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    #[serde(default)]
    pub about: String,
    pub as_of: String,
    #[serde(default)]
    pub sources: std::collections::BTreeMap<String, String>,
    pub regions: std::collections::BTreeMap<String, RegionPrices>,
}

impl PriceTable {
    /// The committed table.
    pub fn committed() -> Self {
        Self::parse(PRICES_JSON, "core/data/prices.json").unwrap_or_else(|e| panic!("{e}"))
    }

    /// A table read from `text` (named `source` in errors): every price finite and
    /// not negative.
    pub fn parse(text: &str, source: &str) -> Result<Self> {
        let t: PriceTable = serde_json::from_str(text)
            .map_err(|e| Error::InvalidInput(format!("price table {source}: {e}")))?;
        for (region, p) in &t.regions {
            let prices = [
                ("fargate_vcpu_hour", p.fargate_vcpu_hour),
                ("fargate_gb_hour", p.fargate_gb_hour),
                ("ec2_instance_hour", p.ec2_instance_hour),
                ("s3_put_per_1000", p.s3_put_per_1000),
                ("s3_get_per_1000", p.s3_get_per_1000),
                ("s3_list_per_1000", p.s3_list_per_1000),
                ("efs_read_per_gb", p.efs_read_per_gb),
                ("efs_write_per_gb", p.efs_write_per_gb),
                ("sfn_transition_per_1000", p.sfn_transition_per_1000),
                ("lambda_gb_second", p.lambda_gb_second),
                ("lambda_request_per_million", p.lambda_request_per_million),
            ];
            if let Some((name, v)) = prices.iter().find(|(_, v)| !v.is_finite() || *v < 0.0) {
                return Err(Error::InvalidInput(format!(
                    "price table {source}: {region}.{name} is {v}: a price is a number of dollars, 0 or more"
                )));
            }
            if p.ec2_instance_vcpus == 0 {
                return Err(Error::InvalidInput(format!(
                    "price table {source}: {region}.ec2_instance_vcpus is 0"
                )));
            }
        }
        Ok(t)
    }

    /// `over` on top of this table: its regions replace these, the rest stay.
    pub fn overridden_by(mut self, over: PriceTable) -> Self {
        self.regions.extend(over.regions);
        self.as_of = over.as_of;
        self.sources.extend(over.sources);
        self
    }

    /// The prices of `region`, or an error naming the regions the table has.
    pub fn region(&self, region: &str) -> Result<&RegionPrices> {
        self.regions.get(region).ok_or_else(|| {
            Error::InvalidInput(format!(
                "the price table has no region {region:?}: it has {}; add it with --prices FILE",
                self.regions.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }
}

/// What the stack runs the containers on (infra/: the pipeline stack's defaults).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Platform {
    pub compute: Compute,
    /// The compute environment's most vCPUs (`tandem:maxvCpus`, 256).
    pub max_vcpus: f64,
    /// One task's vCPUs and memory (Fargate 0.25 vCPU and 0.5 GiB; EC2 1 vCPU).
    pub task_vcpus: f64,
    pub task_memory_gb: f64,
    /// Scheduling, image pull and container start, per task (an assumption: Fargate
    /// tasks take tens of seconds to start; a container on a running instance a few).
    pub startup_s: f64,
    /// EC2: an instance's boot before the first task runs on it.
    pub instance_boot_s: f64,
    /// The account's vCPU quota for this compute (Fargate On-Demand vCPUs, or EC2
    /// On-Demand Standard vCPUs), when it is below `max_vcpus`; `None`: assumed not
    /// to bind. The default Fargate quota of a new account is 6 vCPUs.
    pub vcpu_quota: Option<f64>,
}

/// Fargate starts at most 100 tasks at once and then 20 a second (Amazon ECS
/// throttling quotas, "Fargate task launch rate").
pub const FARGATE_LAUNCH_BURST: f64 = 100.0;
pub const FARGATE_LAUNCHES_PER_SECOND: f64 = 20.0;
/// EFS Elastic Throughput meters a data read or write at 32 KiB at least and a
/// metadata operation at 4 KiB (Amazon EFS, "metered sizes").
pub const EFS_MIN_DATA_BYTES: f64 = 32.0 * 1024.0;
pub const EFS_METADATA_BYTES: f64 = 4.0 * 1024.0;
/// Metadata operations per stage file (create, open, stat, rename), metered as reads.
pub const EFS_METADATA_OPS_PER_FILE: f64 = 4.0;

impl Platform {
    /// The stack's defaults for `compute`.
    pub fn stack_default(compute: Compute) -> Self {
        match compute {
            Compute::Fargate => Platform {
                compute,
                max_vcpus: 256.0,
                task_vcpus: 0.25,
                task_memory_gb: 0.5,
                startup_s: 40.0,
                instance_boot_s: 0.0,
                vcpu_quota: None,
            },
            Compute::Ec2 => Platform {
                compute,
                max_vcpus: 256.0,
                task_vcpus: 1.0,
                task_memory_gb: 0.5,
                startup_s: 5.0,
                instance_boot_s: 120.0,
                vcpu_quota: None,
            },
        }
    }

    /// Tasks that run at once: the compute environment's vCPUs, or the account's
    /// quota when lower, over a task's.
    pub fn concurrency(&self) -> u64 {
        let vcpus = self.vcpu_quota.map_or(self.max_vcpus, |q| q.min(self.max_vcpus));
        ((vcpus / self.task_vcpus).floor() as u64).max(1)
    }
}

/// A stage child's work and files, as a function of K.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkRate {
    pub work_ms_per_child: f64,
    pub work_ms_per_id: f64,
    pub file_bytes_fixed: f64,
    pub file_bytes_per_id: f64,
}

impl WorkRate {
    /// Measured on the project's VM (`tandem loadtest` on disk, two workers: 4.59 s
    /// for 30,000 stage children at K=40, 7.56 s for 30,000 at K=1000; stage files of
    /// 2.0 KB at K=40, 7.9 KB at K=400, 66.9 KB at K=4000).
    pub fn measured() -> Self {
        WorkRate {
            work_ms_per_child: 0.298,
            work_ms_per_id: 0.000_206,
            file_bytes_fixed: 1400.0,
            file_bytes_per_id: 16.4,
        }
    }
}

/// Everything an estimate depends on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inputs {
    pub records: u64,
    pub ids_per_node: u64,
    pub region: String,
    pub platform: Platform,
    pub rate: WorkRate,
    pub prices: RegionPrices,
    pub prices_as_of: String,
}

/// Dollars per part of the bill.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Costs {
    pub compute: f64,
    pub s3: f64,
    pub efs: f64,
    pub step_functions: f64,
    pub lambda: f64,
    pub total: f64,
}

impl Costs {
    fn summed(mut self) -> Self {
        self.total = self.compute + self.s3 + self.efs + self.step_functions + self.lambda;
        self
    }

    /// Each part: its name, dollars and share of the total, in the order compute, S3,
    /// EFS, Step Functions, Lambda (a share is 0 when the total is 0).
    pub fn parts(&self) -> [(&'static str, f64, f64); 5] {
        let part = |name, v: f64| (name, v, if self.total > 0.0 { v / self.total } else { 0.0 });
        [
            part("compute", self.compute),
            part("s3", self.s3),
            part("efs", self.efs),
            part("step_functions", self.step_functions),
            part("lambda", self.lambda),
        ]
    }
}

/// The model's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub children: u64,
    pub container_starts: u64,
    pub concurrency: u64,
    /// One stage task's own work, seconds.
    pub work_s: f64,
    /// One stage task from its start to its end (start-up and work), seconds.
    pub task_s: f64,
    /// What one task is billed for (Fargate: rounded up, at least a minute).
    pub billed_s_per_task: f64,
    /// Every task's run time added up, seconds.
    pub task_seconds: f64,
    pub wall_s: f64,
    pub costs: Costs,
}

/// Step Functions transitions of one run (Prepare, CollectJobs, the choice, three
/// submissions, Watch, the verdict and its end: the waits are `.sync` tasks).
pub const RUN_TRANSITIONS: f64 = 12.0;
/// The prepare function (1 GiB) writes every child's ID file; the watch function
/// (512 MiB) reads the jobs once: their seconds, as the model takes them.
pub const PREPARE_S_FIXED: f64 = 1.0;
pub const PREPARE_S_PER_CHILD: f64 = 0.002;
pub const WATCH_S: f64 = 5.0;

/// The estimate of `i`.
pub fn estimate(i: &Inputs) -> Result<Estimate> {
    if i.records == 0 || i.ids_per_node == 0 {
        return Err(Error::InvalidInput(format!(
            "records {} and IDs per child {} must both be at least 1",
            i.records, i.ids_per_node
        )));
    }
    let p = &i.prices;
    let pf = &i.platform;
    let k = i.ids_per_node.min(i.records) as f64;
    let children = i.records.div_ceil(i.ids_per_node);
    let starts = 3 * children;
    let concurrency = pf.concurrency();
    let work_s = (i.rate.work_ms_per_child + i.rate.work_ms_per_id * k) / 1000.0;
    let task_s = pf.startup_s + work_s;
    let task_seconds = starts as f64 * task_s;
    let waves = starts.div_ceil(concurrency) as f64;
    // Fargate launches 100 tasks at once, then 20 a second: 30,000 starts take 25
    // minutes to launch whatever the concurrency.
    let launching = match pf.compute {
        Compute::Fargate => {
            (starts as f64 - FARGATE_LAUNCH_BURST).max(0.0) / FARGATE_LAUNCHES_PER_SECOND + task_s
        }
        Compute::Ec2 => 0.0,
    };
    let wall_s = (waves * task_s).max(3.0 * task_s).max(launching) + pf.instance_boot_s;

    let (billed_s_per_task, compute) = match pf.compute {
        Compute::Fargate => {
            let billed = fargate_billed_s(task_s);
            (billed, starts as f64 * billed * fargate_per_second(pf, p))
        }
        Compute::Ec2 => {
            // The instances Batch starts for the runnable jobs: a child's later stage
            // waits PENDING for its earlier one, so at most one task per child runs,
            // up to the concurrency, on whole instances.
            let busy_vcpus = children.min(concurrency) as f64 * pf.task_vcpus;
            let instances = (busy_vcpus / f64::from(p.ec2_instance_vcpus)).ceil();
            (
                task_s.ceil(),
                instances * wall_s.max(60.0) * p.ec2_instance_hour / 3600.0,
            )
        }
    };
    Ok(Estimate {
        children,
        container_starts: starts,
        concurrency,
        work_s,
        task_s,
        billed_s_per_task,
        task_seconds,
        wall_s,
        costs: run_costs(i, children, compute),
    })
}

/// Fargate's bill for a task that ran `s` seconds: per second, at least a minute.
fn fargate_billed_s(s: f64) -> f64 {
    s.ceil().max(60.0)
}

/// A second of one task's vCPUs and memory on Fargate, dollars.
fn fargate_per_second(pf: &Platform, p: &RegionPrices) -> f64 {
    (pf.task_vcpus * p.fargate_vcpu_hour + pf.task_memory_gb * p.fargate_gb_hour) / 3600.0
}

/// What a run of `children` costs: `compute`, and its S3, EFS, Step Functions and
/// Lambda, summed.
fn run_costs(i: &Inputs, children: u64, compute: f64) -> Costs {
    let p = &i.prices;
    let k = i.ids_per_node.min(i.records) as f64;
    // Each stage file is written once and read once, each metered at 32 KiB at least,
    // and created, opened, stat'ed and renamed (metadata, metered as 4 KiB reads).
    let file = (i.rate.file_bytes_fixed + i.rate.file_bytes_per_id * k).max(EFS_MIN_DATA_BYTES);
    let written_gb = file / 1e9;
    let read_gb = (file + EFS_METADATA_OPS_PER_FILE * EFS_METADATA_BYTES) / 1e9;
    let s3 = children as f64 * (p.s3_put_per_1000 + p.s3_get_per_1000) / 1000.0
        + children.div_ceil(1000) as f64 * p.s3_list_per_1000 / 1000.0;
    let efs = 3.0 * children as f64 * (written_gb * p.efs_write_per_gb + read_gb * p.efs_read_per_gb);
    let step_functions = RUN_TRANSITIONS * p.sfn_transition_per_1000 / 1000.0;
    let lambda_gb_s = PREPARE_S_FIXED + PREPARE_S_PER_CHILD * children as f64 + 0.5 * WATCH_S;
    let lambda = lambda_gb_s * p.lambda_gb_second + 2.0 * p.lambda_request_per_million / 1e6;
    Costs {
        compute,
        s3,
        efs,
        step_functions,
        lambda,
        total: 0.0,
    }
    .summed()
}

/// One stage child as AWS Batch saw it, in seconds since the epoch: when its job was
/// created, each attempt's start and stop (Batch's `startedAt`, when the container
/// started running, and `stoppedAt`), and the worker's own first timestamp when known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedChild {
    pub stage: Stage,
    pub index: u32,
    pub created_s: f64,
    pub attempts: Vec<(f64, f64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_started_s: Option<f64>,
}

/// Where one stage's time went, summed over its children, seconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageTimes {
    pub stage: Stage,
    pub children: u64,
    /// Children with no attempt that started (cancelled, never scheduled).
    pub never_started: u64,
    pub attempts: u64,
    /// From ready (created, or its previous stage done) to its first attempt's start.
    pub waiting_s: f64,
    /// From an attempt's start to the worker's first timestamp (0 when unknown).
    pub starting_s: f64,
    /// The rest of the attempts: the worker's own time.
    pub working_s: f64,
    /// What Fargate bills for the attempts (per second, a minute at least); on EC2
    /// the attempts' own seconds.
    pub billed_s: f64,
}

/// A run as it happened, priced with the same model as [`estimate`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measured {
    pub stages: Vec<StageTimes>,
    /// First job created to the last attempt's stop.
    pub wall_s: f64,
    pub costs: Costs,
}

/// The measured times and cost of a run of `i` from what Batch recorded of its
/// children. On Fargate each attempt is billed from its start (the image pull before
/// Batch's `startedAt` is not seen, so this is the least the bill can be); on EC2 the
/// instances are the running attempts' vCPUs rounded up to whole instances, over time.
pub fn measured(i: &Inputs, observed: &[ObservedChild]) -> Measured {
    let pf = &i.platform;
    let p = &i.prices;
    let (stages, wall_s) = stage_times(observed, Some(pf.compute));
    let compute = match pf.compute {
        Compute::Fargate => stages.iter().map(|s| s.billed_s).sum::<f64>() * fargate_per_second(pf, p),
        Compute::Ec2 => ec2_instance_seconds(pf, p, observed) * p.ec2_instance_hour / 3600.0,
    };
    let children = observed
        .iter()
        .map(|c| c.index)
        .max()
        .map_or(0, |m| u64::from(m) + 1);
    Measured {
        stages,
        wall_s,
        costs: run_costs(i, children, compute),
    }
}

/// Where each stage's time went (and, with `billing`, what each attempt is billed),
/// and the wall time: the same breakdown for a run on Batch and one on this machine.
pub fn stage_times(observed: &[ObservedChild], billing: Option<Compute>) -> (Vec<StageTimes>, f64) {
    use std::collections::HashMap;
    let done: HashMap<(Stage, u32), f64> = observed
        .iter()
        .filter_map(|c| c.attempts.last().map(|a| ((c.stage, c.index), a.1)))
        .collect();
    let mut stages: Vec<StageTimes> = Stage::ALL
        .iter()
        .map(|&stage| StageTimes {
            stage,
            children: 0,
            never_started: 0,
            attempts: 0,
            waiting_s: 0.0,
            starting_s: 0.0,
            working_s: 0.0,
            billed_s: 0.0,
        })
        .collect();
    let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
    for c in observed {
        let Some(st) = stages.iter_mut().find(|s| s.stage == c.stage) else {
            continue;
        };
        st.children += 1;
        first = first.min(c.created_s);
        let Some(&(start, _)) = c.attempts.first() else {
            st.never_started += 1;
            continue;
        };
        let ready = c
            .stage
            .prev()
            .and_then(|prev| done.get(&(prev, c.index)).copied())
            .map_or(c.created_s, |d| d.max(c.created_s));
        st.waiting_s += (start - ready).max(0.0);
        for (n, &(a, b)) in c.attempts.iter().enumerate() {
            st.attempts += 1;
            last = last.max(b);
            // A retry waits again: from the attempt before's end to its start.
            if n > 0 {
                st.waiting_s += (a - c.attempts[n - 1].1).max(0.0);
            }
            let run = (b - a).max(0.0);
            // The worker's timestamp belongs to its last attempt.
            let starting = match c.worker_started_s {
                Some(w) if n + 1 == c.attempts.len() => (w - a).clamp(0.0, run),
                _ => 0.0,
            };
            st.starting_s += starting;
            st.working_s += run - starting;
            st.billed_s += match billing {
                Some(Compute::Fargate) => fargate_billed_s(run),
                Some(Compute::Ec2) => run.ceil(),
                None => 0.0,
            };
        }
    }
    (stages, if last > first { last - first } else { 0.0 })
}

/// The instance-seconds a run kept: at every moment the running attempts' vCPUs
/// rounded up to whole instances, and at least a minute of each instance it needed.
fn ec2_instance_seconds(pf: &Platform, p: &RegionPrices, observed: &[ObservedChild]) -> f64 {
    let mut events: Vec<(f64, i64)> = observed
        .iter()
        .flat_map(|c| c.attempts.iter().flat_map(|&(a, b)| [(a, 1), (b, -1)]))
        .collect();
    // Stops before starts at the same instant: a slot handed on is not two.
    events.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    let per_instance = f64::from(p.ec2_instance_vcpus);
    let (mut running, mut at, mut seconds, mut peak) = (0i64, 0.0, 0.0, 0.0f64);
    for (t, d) in events {
        if running > 0 {
            let instances = (running as f64 * pf.task_vcpus / per_instance).ceil();
            peak = peak.max(instances);
            seconds += instances * (t - at);
        }
        running += d;
        at = t;
    }
    seconds.max(peak * 60.0)
}

/// The K (IDs per child) whose run costs least within `within_s` of wall time, among
/// those that keep the children within AWS Batch's 10,000 array size; `None` when no
/// K finishes in time. Ties go to the shorter run.
pub fn cheapest_within(base: &Inputs, within_s: f64) -> Result<Option<(u64, Estimate)>> {
    let smallest = base
        .records
        .div_ceil(u64::from(crate::plan::MAX_ARRAY_SIZE))
        .max(1);
    let mut best: Option<(u64, Estimate)> = None;
    for k in candidates(smallest, base.records) {
        let e = estimate(&Inputs {
            ids_per_node: k,
            ..base.clone()
        })?;
        if e.wall_s > within_s {
            continue;
        }
        let better = match &best {
            None => true,
            Some((_, b)) => {
                e.costs.total < b.costs.total - 1e-12
                    || ((e.costs.total - b.costs.total).abs() <= 1e-12 && e.wall_s < b.wall_s)
            }
        };
        if better {
            best = Some((k, e));
        }
    }
    Ok(best)
}

/// The K worth trying from `lo` to `hi`: every K that changes the number of
/// children, thinned to about 200 spread evenly on a log scale, both ends included.
fn candidates(lo: u64, hi: u64) -> Vec<u64> {
    let mut ks = vec![lo, hi];
    let steps = 200;
    let (a, b) = ((lo as f64).ln(), (hi.max(lo) as f64).ln());
    for s in 0..=steps {
        let k = (a + (b - a) * s as f64 / steps as f64).exp().round() as u64;
        ks.push(k.clamp(lo, hi.max(lo)));
    }
    ks.sort_unstable();
    ks.dedup();
    ks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(records: u64, k: u64, compute: Compute) -> Inputs {
        let table = PriceTable::committed();
        Inputs {
            records,
            ids_per_node: k,
            region: "us-east-2".into(),
            platform: Platform::stack_default(compute),
            rate: WorkRate::measured(),
            prices: table.region("us-east-2").unwrap().clone(),
            prices_as_of: table.as_of.clone(),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    /// The reference workload on Fargate at K=40, by hand: 10,000 children, 30,000
    /// starts; a task runs 40 s + 0.306 ms, billed 60 s; a second of 0.25 vCPU and
    /// 0.5 GB costs (0.25 x 0.04048 + 0.5 x 0.004445) / 3600 = $3.428472e-6, so the
    /// compute is 30,000 x 60 x 3.428472e-6 = $6.17125; 1,024 tasks at once would make
    /// 30 waves of 40.000306 s (1,200 s), but Fargate launches 100 and then 20 a
    /// second: (30,000 - 100) / 20 = 1,495 s, and the last task's 40.000306 s.
    #[test]
    fn the_reference_workload_on_fargate_by_hand() {
        let e = estimate(&inputs(400_000, 40, Compute::Fargate)).unwrap();
        assert_eq!(
            (e.children, e.container_starts, e.concurrency),
            (10_000, 30_000, 1024)
        );
        assert!(close(e.work_s, 0.000_306_24), "{}", e.work_s);
        assert_eq!(e.billed_s_per_task, 60.0);
        assert!(close(
            e.costs.compute,
            30_000.0 * 60.0 * (0.25 * 0.04048 + 0.5 * 0.004445) / 3600.0
        ));
        assert!(close(e.costs.compute, 6.17125), "{}", e.costs.compute);
        assert!(close(e.wall_s, 1495.0 + 40.0 + 0.000_306_24), "{}", e.wall_s);
        // With the default quota of a new account (6 vCPUs: 24 tasks at once) the waves
        // decide: 1,250 of them.
        let mut quota = inputs(400_000, 40, Compute::Fargate);
        quota.platform.vcpu_quota = Some(6.0);
        let q = estimate(&quota).unwrap();
        assert_eq!(q.concurrency, 24);
        assert!(close(q.wall_s, 1250.0 * (40.0 + 0.000_306_24)), "{}", q.wall_s);
        // S3: 10,000 PUTs and GETs and 10 LISTs: 10 x 0.005 + 10 x 0.0004 + 10 x 0.000005.
        assert!(close(e.costs.s3, 0.05 + 0.004 + 0.00005), "{}", e.costs.s3);
        // EFS: 30,000 files of 1,400 + 16.4 x 40 = 2,056 B, each metered as 32 KiB
        // written (0.06 $/GB) and 32 KiB read plus four 4 KiB metadata reads (0.03 $/GB).
        let efs = 30_000.0 * (32_768.0 * 0.06 + (32_768.0 + 16_384.0) * 0.03) / 1e9;
        assert!(close(e.costs.efs, efs), "{} {efs}", e.costs.efs);
        assert!(close(e.costs.step_functions, 12.0 * 0.025 / 1000.0));
        assert!(close(
            e.costs.total,
            e.costs.compute + e.costs.s3 + e.costs.efs + e.costs.step_functions + e.costs.lambda
        ));
        let shares: f64 = e.costs.parts().iter().map(|(_, _, s)| s).sum();
        assert!(close(shares, 1.0));
        assert!(e.costs.parts()[0].2 > 0.95, "compute is nearly all of it");
    }

    /// On EC2 the instances are billed for the run: at K=40, 30,000 one-vCPU tasks of
    /// 5.000306 s on 256 vCPUs take 118 waves (590.04 s) plus a 120 s boot, on 64
    /// c6i.xlarge (4 vCPUs) at 0.17 $ an hour each.
    #[test]
    fn the_reference_workload_on_ec2_by_hand() {
        let e = estimate(&inputs(400_000, 40, Compute::Ec2)).unwrap();
        assert_eq!(e.concurrency, 256);
        let task = 5.0 + 0.000_306_24;
        assert!(close(e.wall_s, 118.0 * task + 120.0), "{}", e.wall_s);
        assert!(
            close(e.costs.compute, 64.0 * e.wall_s * 0.17 / 3600.0),
            "{}",
            e.costs.compute
        );
        // A run with four children runs at most four tasks at once (a later stage waits
        // PENDING for the earlier one): one instance, not 64.
        let small = estimate(&inputs(160, 40, Compute::Ec2)).unwrap();
        assert!(close(small.costs.compute, small.wall_s * 0.17 / 3600.0));
        assert!(
            close(small.wall_s, 3.0 * task + 120.0),
            "one child's three stages in a row"
        );
    }

    #[test]
    fn fewer_children_cost_less_and_the_minimum_bills_a_short_task_a_minute() {
        let k40 = estimate(&inputs(400_000, 40, Compute::Fargate)).unwrap();
        let k400 = estimate(&inputs(400_000, 400, Compute::Fargate)).unwrap();
        let k4000 = estimate(&inputs(400_000, 4000, Compute::Fargate)).unwrap();
        assert_eq!((k400.container_starts, k4000.container_starts), (3000, 300));
        assert!(k40.costs.total > k400.costs.total && k400.costs.total > k4000.costs.total);
        // Ten times fewer starts, nearly ten times less compute: the minute dominates.
        assert!(close(k400.costs.compute * 10.0, k40.costs.compute));
        // A task past the minute is billed its seconds, rounded up.
        let mut slow = inputs(400_000, 40, Compute::Fargate);
        slow.platform.startup_s = 61.2;
        assert_eq!(estimate(&slow).unwrap().billed_s_per_task, 62.0);
    }

    #[test]
    fn the_cheapest_k_within_a_target_and_none_when_nothing_fits() {
        let base = inputs(400_000, 40, Compute::Fargate);
        let (k, e) = cheapest_within(&base, 3600.0).unwrap().unwrap();
        // Every K finishes in time here (work is milliseconds): one child is cheapest.
        assert_eq!(k, 400_000);
        assert_eq!(e.children, 1);
        // Work heavy enough that one child would take hours: the target splits it.
        let mut heavy = base.clone();
        heavy.rate.work_ms_per_id = 10.0; // 400,000 IDs x 10 ms = 4,000 s in one child
        let (k, e) = cheapest_within(&heavy, 1800.0).unwrap().unwrap();
        assert!(e.wall_s <= 1800.0, "{e:?}");
        assert!((40..400_000).contains(&k), "{k}");
        let slower = estimate(&Inputs {
            ids_per_node: k * 2,
            ..heavy.clone()
        })
        .unwrap();
        assert!(slower.wall_s > 1800.0 || slower.costs.total >= e.costs.total);
        assert!(
            cheapest_within(&heavy, 30.0).unwrap().is_none(),
            "no K starts and ends in 30 s"
        );
    }

    #[test]
    fn a_price_table_that_cannot_be_right_is_refused_naming_the_price() {
        let bad = PRICES_JSON.replacen("\"s3_put_per_1000\": 0.005", "\"s3_put_per_1000\": -1", 1);
        let e = PriceTable::parse(&bad, "mine.json").unwrap_err().to_string();
        assert!(
            e.contains("mine.json") && e.contains("s3_put_per_1000 is -1"),
            "{e}"
        );
        let e = PriceTable::parse("{", "mine.json").unwrap_err().to_string();
        assert!(e.contains("price table mine.json"), "{e}");
        let t = PriceTable::committed();
        let e = t.region("eu-west-9").unwrap_err().to_string();
        assert!(e.contains("eu-west-9") && e.contains("us-east-2"), "{e}");
        // An override replaces its regions and keeps the others.
        let mut over = t.clone();
        over.regions.retain(|r, _| r == "us-east-1");
        over.regions.get_mut("us-east-1").unwrap().fargate_vcpu_hour = 1.0;
        let merged = t.clone().overridden_by(over);
        assert_eq!(merged.region("us-east-1").unwrap().fargate_vcpu_hour, 1.0);
        assert_eq!(
            merged.region("us-east-2").unwrap(),
            t.region("us-east-2").unwrap()
        );
        assert!(
            estimate(&Inputs {
                records: 0,
                ..inputs(1, 1, Compute::Fargate)
            })
            .is_err()
        );
    }
}
