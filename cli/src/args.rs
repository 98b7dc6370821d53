//! Command-line arguments (clap derive; the doc comments are the help text).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tandem_core::layout::RunId;
use tandem_core::names::{PerStage, Stage};
use tandem_core::workload;

/// tandem: array pipelines with AWS Batch semantics, on one machine or on AWS.
///
/// A run splits a range of IDs across up to 10,000 array children; three stages
/// (procure, process, egress) run N_TO_N, exchanging Parquet on a shared volume,
/// and egress puts one result object per child in a bucket.
#[derive(Debug, Parser)]
#[command(name = "tandem", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prepare, run all three stages N_TO_N on this machine, verify, and summarise.
    Loadtest(LoadtestArgs),
    /// Create a run: its directory, its ID file and its manifest. Prints JSON.
    Prepare(PrepareArgs),
    /// Run one child of one stage (the AWS Batch entrypoint).
    Worker(WorkerArgs),
    /// Check a run's results: rows, every ID exactly once, checksum.
    Verify(VerifyArgs),
    /// Re-execute only the failed or missing children of a run.
    Rerun(RerunArgs),
    /// Write a self-contained HTML report of a run's timings.
    Report(ReportArgs),
    /// Submit a prepared run's three stages to AWS Batch, chained N_TO_N. Prints JSON.
    Submit(SubmitArgs),
    /// Watch a run's AWS Batch jobs until they succeed or fail, naming failed children.
    Watch(WatchArgs),
    /// Before a run: its children, container starts, wall time and cost on AWS Batch,
    /// and with --within, the IDs per child that cost least in that time.
    Plan(PlanArgs),
    /// Start the deployed run state machine and follow the execution to its end.
    Start(StartArgs),
    /// The product API.
    Api {
        #[command(subcommand)]
        command: ApiCommand,
    },
    /// Prove every recovery method of the product API works, measuring RTO and RPO.
    DrDrill(DrDrillArgs),
    /// The deployed standby region: fail over to it, fail back, or show its switch.
    Dr {
        #[command(subcommand)]
        command: DrCommand,
    },
}

/// What `tandem dr` does to the deployed standby. Each reads the standby stack in the
/// recovery region only: it works when the primary region does not answer.
#[derive(Debug, Subcommand)]
pub enum DrCommand {
    /// Switch the standby on (a pilot light) and move clients to it (with a hosted
    /// zone: the primary's passing health check is inverted). Idempotent.
    Failover(StandbyArgs),
    /// Move clients back to the primary and switch a pilot light off again.
    Failback(StandbyArgs),
    /// Show the standby's mode and switch.
    Status(StandbyArgs),
    /// Delete every recovery point in the DR stack's two vaults, so that `cdk destroy`
    /// of a dev deployment can delete them (AWS Backup deletes only an empty vault).
    /// Without --yes, says what it would delete and deletes nothing.
    EmptyVaults(EmptyVaultsArgs),
}

#[derive(Debug, Args)]
pub struct EmptyVaultsArgs {
    /// The DR stack (deployed in the primary region).
    #[arg(long, default_value = "DisasterRecoveryStack", value_name = "NAME")]
    pub stack: String,
    /// The primary region, where the DR stack is deployed.
    #[arg(long, default_value = "us-east-2", value_parser = parse_region)]
    pub primary_region: tandem_dr::region::RegionName,
    /// Delete: the recovery points are gone for good.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct StandbyArgs {
    /// The standby stack (deployed in the recovery region).
    #[arg(
        long,
        env = "TANDEM_DR_STANDBY_STACK",
        default_value = "DisasterRecoveryStandbyStack",
        value_name = "NAME"
    )]
    pub stack: String,
    /// The recovery region, where the standby stack is deployed.
    #[arg(long, default_value = "us-east-1", value_parser = parse_region)]
    pub region: tandem_dr::region::RegionName,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Serve the product API on the embedded store.
    Serve(ApiServeArgs),
}

#[derive(Debug, Args)]
pub struct ApiServeArgs {
    /// Address to listen on; anything but loopback needs --api-key.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// The region (a directory under --data-dir) whose Product table is served.
    #[arg(long, default_value = "us-east-2", value_parser = parse_region)]
    pub region: tandem_dr::region::RegionName,
    /// Where the embedded regions live.
    #[arg(
        long,
        env = "TANDEM_DR_DIR",
        default_value = "tandem-data/dr",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// Key required in x-api-key on writes.
    #[arg(long, env = "TANDEM_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Most connections served at once; more wait to be accepted.
    #[arg(long, default_value_t = 256, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_connections: u32,
    /// How long a client may take to send a request's headers (and how long an idle
    /// connection stays open).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: std::time::Duration,
    /// How long a client may take to send a request's body.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub body_timeout: std::time::Duration,
}

fn parse_region(s: &str) -> Result<tandem_dr::region::RegionName, String> {
    s.parse().map_err(|e: tandem_dr::store::Error| e.to_string())
}

/// Which product store the drill exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DrBackend {
    /// The embedded store (redb files per region directory).
    Embedded,
    /// DynamoDB, through the standard AWS environment (AWS_ENDPOINT_URL for an emulator).
    Dynamodb,
}

#[derive(Debug, Args)]
pub struct DrDrillArgs {
    /// The product store to drill.
    #[arg(long, value_enum, default_value_t = DrBackend::Embedded)]
    pub backend: DrBackend,
    /// The recovery region, where the replica and copied backups live (default: the
    /// --stack's RecoveryRegion, else us-east-1).
    #[arg(long, value_parser = parse_region)]
    pub region: Option<tandem_dr::region::RegionName>,
    /// The primary region.
    #[arg(long, default_value = "us-east-2", value_parser = parse_region)]
    pub primary_region: tandem_dr::region::RegionName,
    /// With --backend dynamodb: the deployed DisasterRecoveryStack, whose vaults,
    /// backup role and plan the scheduled and cross-region methods use.
    #[arg(long, env = "TANDEM_DR_STACK", value_name = "NAME")]
    pub stack: Option<String>,
    /// Products seeded for each method.
    #[arg(long, default_value_t = 10_000)]
    pub products: usize,
    /// Methods to run, comma-separated: pitr, backup, scheduled, cross-region,
    /// pilot-light, warm-standby (default: all).
    #[arg(long, value_name = "M1,M2", value_delimiter = ',', value_parser = parse_method)]
    pub methods: Vec<tandem_dr::drill::Method>,
    /// Every method's RTO must be within this (default: 60s embedded, 2h on DynamoDB,
    /// where restores take minutes to hours).
    #[arg(long, value_parser = parse_duration)]
    pub rto_target: Option<std::time::Duration>,
    /// The replica methods' RPO must be within this.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub rpo_target: std::time::Duration,
    /// PITR window in days (1..=35): the embedded tables' and, on DynamoDB, the
    /// scratch tables' RecoveryPeriodInDays.
    #[arg(long, default_value_t = 35)]
    pub pitr_window_days: u32,
    /// How long to wait for a correct answer from the recovered API before a method
    /// fails (default: 30s embedded, 10m on DynamoDB).
    #[arg(long, value_parser = parse_duration)]
    pub answer_timeout: Option<std::time::Duration>,
    /// How long any one wait (a restore, a backup, a replica, a deletion) may take
    /// (default: 10m embedded, 2h on DynamoDB).
    #[arg(long, value_parser = parse_duration)]
    pub wait_limit: Option<std::time::Duration>,
    /// With --backend dynamodb and no --stack: the plan's AWS Backup vault in the
    /// primary region (the scheduled and cross-region methods back up into it).
    #[arg(long, env = "TANDEM_BACKUP_VAULT", value_name = "NAME")]
    pub backup_vault: Option<String>,
    /// With --backend dynamodb and no --stack: the recovery region's vault (ARN).
    #[arg(long, env = "TANDEM_RECOVERY_VAULT_ARN", value_name = "ARN")]
    pub recovery_vault_arn: Option<String>,
    /// With --backend dynamodb and no --stack: the role AWS Backup assumes.
    #[arg(long, env = "TANDEM_BACKUP_ROLE_ARN", value_name = "ARN")]
    pub backup_role_arn: Option<String>,
    /// With --backend dynamodb and no --stack: the backup plan the scheduled method
    /// checks.
    #[arg(long, env = "TANDEM_BACKUP_PLAN_ID", value_name = "ID")]
    pub backup_plan_id: Option<String>,
    /// Working directory for the embedded drill's regions (it makes DIR/tandem-dr-drill
    /// and removes it afterwards; default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Also write the HTML report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Also keep the report, HTML and JSON, in a bucket: URL/STACK/TIME/report.html
    /// and report.json (file://DIR or s3://BUCKET[/PREFIX]; the game day's).
    #[arg(long, value_name = "URL")]
    pub report_to: Option<String>,
    /// With --backend dynamodb and --stack: publish the verdict, RTO and RPO of every
    /// method to CloudWatch (namespace tandem/DR, dimension Stack), as the game day
    /// does; a drill that cannot run publishes DrillPassed 0.
    #[arg(long)]
    pub publish_metrics: bool,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Where runs and results live.
#[derive(Debug, Clone, Args)]
pub struct Location {
    /// The shared volume (an EFS mount on AWS).
    #[arg(
        long,
        env = "TANDEM_ROOT",
        default_value = "tandem-data/volume",
        value_name = "DIR"
    )]
    pub root: PathBuf,
}

/// Workload parameters of a new run.
#[derive(Debug, Clone, Args)]
pub struct WorkloadArgs {
    /// How many IDs the run processes (N).
    #[arg(long, default_value_t = workload::DEFAULT_RECORDS, value_name = "N")]
    pub records: u64,
    /// First ID of the range.
    #[arg(long, default_value_t = workload::DEFAULT_FIRST_ID, value_name = "ID")]
    pub first_id: u64,
    /// The most IDs one array child handles (K); the array size is ceil(N / K).
    #[arg(long, default_value_t = workload::DEFAULT_IDS_PER_NODE, value_name = "K")]
    pub ids_per_node: u64,
    /// Workload seed.
    #[arg(long, default_value_t = workload::DEFAULT_SEED)]
    pub seed: u64,
    /// Use this run id instead of a generated one.
    #[arg(long, value_name = "RUN_ID")]
    pub run_id: Option<RunId>,
    /// Where egress puts results: file://DIR or s3://BUCKET[/PREFIX] (default:
    /// file://tandem-data/bucket).
    #[arg(long, env = "TANDEM_BUCKET", value_name = "URL")]
    pub bucket: Option<String>,
    /// Replace an existing run of the same --run-id: its directory on the volume
    /// and its results in the bucket (without it, either is refused).
    #[arg(long)]
    pub overwrite: bool,
}

impl WorkloadArgs {
    /// The workload these flags ask for.
    pub fn input(&self) -> workload::WorkloadInput {
        workload::WorkloadInput {
            records: Some(self.records),
            ids_per_node: Some(self.ids_per_node),
            seed: Some(self.seed),
            first_id: Some(self.first_id),
        }
    }
}

/// How the local executor runs children.
#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// Worker threads, 1 to 1024 (default: the number of cores).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
    /// Tries per child and stage, including the first, as Batch's retry strategy (1..=10;
    /// locally 1 by default; with --on aws, the job definition's unless given, keeping its
    /// rules of what is retried).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10))]
    pub attempts: Option<u32>,
    /// Cap on concurrent children per stage, as procure,process,egress (e.g. 2,2,1).
    #[arg(long, value_name = "A,B,C", value_parser = parse_stage_caps)]
    pub stage_concurrency: Option<PerStage<usize>>,
    /// Make a child fail, to rehearse failure handling: STAGE:INDEX fails every attempt,
    /// STAGE:INDEX:N fails the first N attempts. Repeatable.
    #[arg(long, value_name = "STAGE:INDEX[:N]", value_parser = parse_injected_failure)]
    pub inject_failure: Vec<InjectedFailure>,
}

/// A child made to fail on purpose (`--inject-failure`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectedFailure {
    /// The stage.
    pub stage: Stage,
    /// The child.
    pub index: u32,
    /// How many of its first attempts fail (`u32::MAX`: every attempt).
    pub failing_attempts: u32,
}

/// `A,B,C`: three caps of at least 1.
fn parse_stage_caps(s: &str) -> Result<PerStage<usize>, String> {
    let bad = || {
        format!(
            "{s:?} is not valid: give three numbers of at least 1, as procure,process,egress (e.g. 2,2,1)"
        )
    };
    let caps: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>().ok().filter(|n| *n >= 1))
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    let caps: [usize; 3] = caps.try_into().map_err(|_| bad())?;
    Ok(PerStage(caps))
}

/// One name for all three stages, or three as procure,process,egress.
fn parse_one_or_three(s: &str) -> Result<PerStage<String>, String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    match parts.as_slice() {
        [one] if !one.is_empty() => Ok(PerStage::splat(one.to_string())),
        _ => parse_three(s).map_err(|_| {
            format!("{s:?} is not valid: give one name for all stages or three as procure,process,egress")
        }),
    }
}

/// Exactly three values, as procure,process,egress.
fn parse_three(s: &str) -> Result<PerStage<String>, String> {
    PerStage::parse_three(s)
        .ok_or_else(|| format!("{s:?} is not valid: give the three as procure,process,egress"))
}

/// `STAGE:INDEX` or `STAGE:INDEX:N`.
fn parse_injected_failure(s: &str) -> Result<InjectedFailure, String> {
    let bad =
        || format!("{s:?} is not valid: use STAGE:INDEX or STAGE:INDEX:N (e.g. process:17 or egress:3:1)");
    let parts: Vec<&str> = s.split(':').collect();
    let (stage, index, n) = match parts.as_slice() {
        [stage, index] => (*stage, *index, None),
        [stage, index, n] => (*stage, *index, Some(*n)),
        _ => return Err(bad()),
    };
    let stage: Stage = stage
        .parse()
        .map_err(|e: tandem_core::Error| format!("{s:?}: {e}"))?;
    let index: u32 = index.parse().map_err(|_| bad())?;
    let failing_attempts = match n {
        None => u32::MAX,
        Some(n) => n.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(bad)?,
    };
    Ok(InjectedFailure {
        stage,
        index,
        failing_attempts,
    })
}

#[derive(Debug, Args)]
pub struct LoadtestArgs {
    #[command(flatten)]
    pub location: Location,
    #[command(flatten)]
    pub workload: WorkloadArgs,
    #[command(flatten)]
    pub exec: ExecArgs,
    /// Keep the run (stage files, results) instead of removing it after a successful verify.
    #[arg(long)]
    pub keep: bool,
    /// Also write the HTML timing report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print one JSON document instead of the summary table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PrepareArgs {
    #[command(flatten)]
    pub location: Location,
    #[command(flatten)]
    pub workload: WorkloadArgs,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub location: Location,
    /// The stage to run.
    #[arg(long, env = "TANDEM_STAGE", value_parser = parse_stage)]
    pub stage: Stage,
    /// The run.
    #[arg(long = "run", env = "TANDEM_RUN_ID", value_name = "RUN_ID")]
    pub run_id: RunId,
    /// The child's array index (Batch sets AWS_BATCH_JOB_ARRAY_INDEX; a run of one
    /// child, submitted as a plain job, defaults to 0).
    #[arg(long, env = "AWS_BATCH_JOB_ARRAY_INDEX", value_name = "I")]
    pub index: Option<u32>,
    /// The attempt number (Batch sets AWS_BATCH_JOB_ATTEMPT), recorded in the output.
    #[arg(long, env = "AWS_BATCH_JOB_ATTEMPT", default_value_t = 1, value_name = "N")]
    pub attempt: u32,
    /// Override the bucket recorded at prepare.
    #[arg(long, env = "TANDEM_BUCKET", value_name = "URL")]
    pub bucket: Option<String>,
    /// A rerun's index map (set by `tandem rerun --on aws`): the array index selects
    /// an entry, which is the child to run; a stage whose output already verifies is
    /// skipped.
    #[arg(long, env = "TANDEM_INDEX_MAP", value_name = "FILE")]
    pub index_map: Option<String>,
    /// Print the child's completion record as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Where rerun executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RerunOn {
    /// On this machine, with the local executor.
    Local,
    /// On AWS Batch: one compact array per stage, chained N_TO_N.
    Aws,
    /// Inside the deployed stack (--stack): the state machine's rerun mode.
    Deployment,
}

impl RerunArgs {
    /// Where this rerun executes: `--on`, else inside the deployment with --stack, else here.
    pub fn on(&self) -> RerunOn {
        self.on.unwrap_or(if self.target.stack.is_some() {
            RerunOn::Deployment
        } else {
            RerunOn::Local
        })
    }
}

/// Selects an existing run.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub location: Location,
    /// The run.
    #[arg(long = "run", env = "TANDEM_RUN_ID", value_name = "RUN_ID")]
    pub run_id: RunId,
    /// Override the bucket recorded at prepare.
    #[arg(long, env = "TANDEM_BUCKET", value_name = "URL")]
    pub bucket: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Read the run from the deployed pipeline stack's bucket (its BucketUrl output),
    /// where prepare published the manifest: no volume needed.
    #[arg(long, env = "TANDEM_STACK", value_name = "NAME")]
    pub stack: Option<String>,
    /// Reader threads, 1 to 256 (default: the number of cores; 32 for an s3:// bucket).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// Print the verification report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RerunArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub exec: ExecArgs,
    /// Where to execute the children: here (local, the default), on AWS Batch from this
    /// machine (aws; needs the volume), or inside the deployed stack (deployment: its
    /// state machine finds the lost children and submits them; the default with --stack,
    /// needs no volume).
    #[arg(long, value_enum)]
    pub on: Option<RerunOn>,
    /// With --on aws or deployment: the stack, queues and job definition.
    #[command(flatten)]
    pub target: BatchTargetArgs,
    #[command(flatten)]
    pub follow: FollowArgs,
    /// Print one JSON document instead of the summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Read the run from the deployed pipeline stack's bucket (its BucketUrl output):
    /// no volume needed.
    #[arg(long, env = "TANDEM_STACK", value_name = "NAME")]
    pub stack: Option<String>,
    /// The HTML file to write.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// With --stack: where the run's time went on Batch (waiting, starting, working,
    /// billed, per stage) and what it cost, from its jobs' descriptions (docs/cost.md).
    #[arg(long, requires = "stack")]
    pub costs: bool,
    /// With --costs: the region whose prices apply (default: the SDK's region).
    #[arg(long, value_name = "REGION", requires = "costs")]
    pub price_region: Option<String>,
    /// Print the statistics as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_method(s: &str) -> Result<tandem_dr::drill::Method, String> {
    tandem_dr::drill::Method::parse(s.trim()).map_err(|e| e.to_string())
}

fn parse_stage(s: &str) -> Result<Stage, String> {
    s.parse::<Stage>().map_err(|e| e.to_string())
}

/// Where AWS Batch runs a run's children (`submit`, `rerun --on aws`): queues and
/// job definitions from the flags, or from a deployed pipeline stack.
#[derive(Debug, Args)]
pub struct BatchTargetArgs {
    /// Job queue(s): one for all stages, or three as procure,process,egress
    /// (default: the --stack's).
    #[arg(long = "queue", env = "TANDEM_QUEUES", value_name = "Q[,Q2,Q3]", value_parser = parse_one_or_three)]
    pub queues: Option<PerStage<String>>,
    /// Job definition(s) whose container runs `tandem worker`: one, or three
    /// (default: the --stack's).
    #[arg(
        long = "job-definition",
        env = "TANDEM_JOB_DEFINITIONS",
        value_name = "D[,D2,D3]",
        value_parser = parse_one_or_three
    )]
    pub job_definitions: Option<PerStage<String>>,
    /// The deployed pipeline stack whose queues, job definition and volume path to
    /// use (CloudFormation outputs); explicit flags win.
    #[arg(long, env = "TANDEM_STACK", value_name = "NAME")]
    pub stack: Option<String>,
    /// The shared volume's path inside the containers (default: the --stack's
    /// VolumePath, else --root).
    #[arg(long, value_name = "DIR")]
    pub container_root: Option<String>,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub target: BatchTargetArgs,
    /// Batch retry attempts per child (1..=10; default: the job definition's).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10))]
    pub attempts: Option<u32>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The three job ids (procure,process,egress), as printed by submit.
    #[arg(
        long,
        value_name = "ID1,ID2,ID3",
        conflicts_with = "run_id",
        required_unless_present = "run_id"
    ,
        value_parser = parse_three
    )]
    pub jobs: Option<PerStage<String>>,
    /// Watch the jobs `tandem submit` recorded for this run (or, with --stack, the
    /// jobs the state machine submitted for it, found by name in the stack's queues).
    #[arg(long = "run", value_name = "RUN_ID")]
    pub run_id: Option<RunId>,
    /// The deployed pipeline stack whose queues to look in for --run.
    #[arg(long, env = "TANDEM_STACK", value_name = "NAME")]
    pub stack: Option<String>,
    #[command(flatten)]
    pub location: Location,
    /// First interval between polls (doubles while nothing changes).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// Longest interval between polls.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub max_interval: std::time::Duration,
    /// Give up when nothing has changed for this long (e.g. 30m).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Once the run has finished: every child's times from Batch (waiting, running,
    /// billed, per stage) and what the run cost, by the model of `tandem plan`
    /// (docs/cost.md). Needs --run, for the run's workload.
    #[arg(long, requires = "run_id")]
    pub costs: bool,
    /// With --costs: the region whose prices apply (default: the SDK's region).
    #[arg(long, value_name = "REGION", requires = "costs")]
    pub price_region: Option<String>,
    /// Print the final report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `250ms`, `30s`, `5m`, `2h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: use e.g. 500ms, 30s, 5m or 2h"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?} has unknown unit {unit:?}: use ms, s, m or h")),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 7.0 * 86400.0 {
        return Err(format!(
            "{s:?} is out of range: use more than 0 and at most 7 days"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The deployed pipeline stack (its StateMachineArn output).
    #[arg(
        long,
        env = "TANDEM_STACK",
        value_name = "NAME",
        required_unless_present = "state_machine"
    )]
    pub stack: Option<String>,
    /// The state machine to start, instead of the --stack's.
    #[arg(long, value_name = "ARN", conflicts_with = "stack")]
    pub state_machine: Option<String>,
    /// How many IDs the run processes (default: the prepare step's, 400000).
    #[arg(long, value_name = "N")]
    pub records: Option<u64>,
    /// The most IDs one array child handles (default 40).
    #[arg(long, value_name = "K")]
    pub ids_per_node: Option<u64>,
    /// Workload seed (default 42).
    #[arg(long)]
    pub seed: Option<u64>,
    /// First ID of the range (default 1).
    #[arg(long, value_name = "ID")]
    pub first_id: Option<u64>,
    /// The execution's name (default: generated by Step Functions).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Print the execution ARN and return without following it.
    #[arg(long)]
    pub no_wait: bool,
    /// First interval between polls (doubles while nothing changes).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// Longest interval between polls.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub max_interval: std::time::Duration,
    /// Give up following when nothing has changed for this long (the execution goes on).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Print the final report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How a command that starts an execution follows it.
#[derive(Debug, Clone, Args)]
pub struct FollowArgs {
    /// With --stack: print the execution ARN and return without following it.
    #[arg(long)]
    pub no_wait: bool,
    /// First interval between polls of the execution (doubles while nothing changes).
    #[arg(long = "poll-interval", default_value = "10s", value_parser = parse_duration)]
    pub interval: std::time::Duration,
    /// Longest interval between polls of the execution.
    #[arg(long = "max-poll-interval", default_value = "2m", value_parser = parse_duration)]
    pub max_interval: std::time::Duration,
    /// Stop following when the execution has not changed for this long (it goes on).
    #[arg(long = "follow-timeout", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
}

/// Where `tandem plan` runs the containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanCompute {
    /// AWS Batch on Fargate (the stack's default): 0.25 vCPU and 0.5 GiB a task.
    Fargate,
    /// AWS Batch on a managed EC2 compute environment: 1 vCPU a task.
    Ec2,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// How many IDs the run processes (N).
    #[arg(long, default_value_t = workload::DEFAULT_RECORDS, value_name = "N")]
    pub records: u64,
    /// IDs per child (K); the array size is ceil(N / K), at most 10,000.
    #[arg(long, default_value_t = workload::DEFAULT_IDS_PER_NODE, value_name = "K")]
    pub ids_per_node: u64,
    /// Where the containers run.
    #[arg(long, value_enum, default_value_t = PlanCompute::Fargate)]
    pub compute: PlanCompute,
    /// The region whose prices apply.
    #[arg(long, default_value = "us-east-2")]
    pub region: String,
    /// Also find the IDs per child that cost least with the run done within this
    /// (30m, 2h, 90s).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub within: Option<std::time::Duration>,
    /// The stack's tandem:maxvCpus (default 256).
    #[arg(long, default_value_t = 256)]
    pub max_vcpus: u32,
    /// The account's vCPU quota for the compute (Fargate On-Demand vCPUs, or EC2
    /// On-Demand Standard vCPUs) when it is below --max-vcpus: a new account's Fargate
    /// quota is 6 (default: assumed not to bind).
    #[arg(long, value_name = "VCPUS")]
    pub vcpu_quota: Option<u32>,
    /// Seconds a task takes to be scheduled, pull its image and start (default: 40 on
    /// Fargate, 5 on EC2; an assumption, shown with the answer).
    #[arg(long, value_name = "SECONDS")]
    pub startup: Option<f64>,
    /// Milliseconds of work per ID per stage (default: measured by tandem loadtest).
    #[arg(long, value_name = "MS")]
    pub work_ms_per_id: Option<f64>,
    /// A price table to use instead of the committed one (same shape as
    /// core/data/prices.json; its regions replace the committed ones).
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}
