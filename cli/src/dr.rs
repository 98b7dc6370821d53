//! `tandem api serve` and `tandem dr-drill`.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tandem_dr::api::{ApiState, router};
use tandem_dr::backup::{Backups, EmbeddedBackupCreator};

use tandem_dr::drill::aws::{AwsBackend, AwsClients, AwsSetup, DeployedStandby, system_clock};
use tandem_dr::drill::embedded::EmbeddedBackend;
use tandem_dr::drill::{self, Cleanup, DrillBackend, DrillOptions, DrillReport, Method, StandbyMode, Waiter};
use tandem_dr::embedded::Region;
use tandem_dr::region::RegionName;
use tandem_dr::standby::{Standby, SwitchClients};

use crate::args::{ApiServeArgs, DrBackend, DrCommand, DrDrillArgs, EmptyVaultsArgs, StandbyArgs};
use crate::output;
use crate::{Failed, Interrupted};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")
}

pub fn serve(a: ApiServeArgs) -> Result<()> {
    if !a.addr.ip().is_loopback() && a.api_key.as_deref().is_none_or(str::is_empty) {
        bail!(
            "refusing to serve on {} without an API key: set --api-key or TANDEM_API_KEY, or listen on 127.0.0.1",
            a.addr
        );
    }
    let region = Arc::new(Region::new(&a.data_dir, a.region.as_str())?);
    let table = region.table("Product", true)?;
    let backups = Backups::new(region.clone())?;
    // Backups a killed server was writing: a minute old at least, so not another's.
    for p in backups.sweep(Duration::from_secs(60))? {
        crate::note!("tandem: removed {} (an interrupted backup)", p.display());
    }
    let state = ApiState {
        store: table.clone(),
        backups: Some(Arc::new(EmbeddedBackupCreator { backups, table })),
        api_key: a.api_key.clone(),
        region: Some(a.region.to_string()),
    };
    let limits = tandem_dr::serve::Limits {
        max_connections: a.max_connections as usize,
        header_timeout: a.header_timeout,
        body_timeout: a.body_timeout,
        ..Default::default()
    };
    runtime()?.block_on(async move {
        let mut signals = Signals::listen()?;
        let listener = tokio::net::TcpListener::bind(a.addr)
            .await
            .with_context(|| format!("listening on {}", a.addr))?;
        crate::note!(
            "tandem: product API on http://{} (region {}, table {}); stop with Ctrl-C or SIGTERM",
            listener.local_addr()?,
            a.region,
            region.dir().join("tables").join("Product.redb").display()
        );
        let shutdown = async move {
            let signal = signals.next().await;
            crate::note!("tandem: {}: finishing the requests in flight", signal.name());
        };
        tandem_dr::serve::serve(listener, router(state), limits, shutdown)
            .await
            .context("serving the API")
    })
}

/// Per-backend defaults of the waits: the embedded store answers in milliseconds,
/// AWS restores take minutes to hours.
struct Limits {
    rto_target: Duration,
    answer_timeout: Duration,
    wait_limit: Duration,
}

impl Limits {
    fn of(backend: DrBackend) -> Self {
        match backend {
            DrBackend::Embedded => Self {
                rto_target: Duration::from_secs(60),
                answer_timeout: Duration::from_secs(30),
                wait_limit: Duration::from_secs(600),
            },
            DrBackend::Dynamodb => Self {
                rto_target: Duration::from_secs(2 * 3600),
                answer_timeout: Duration::from_secs(600),
                wait_limit: Duration::from_secs(2 * 3600),
            },
        }
    }
}

const DEFAULT_RECOVERY_REGION: &str = "us-east-1";

pub fn drill(a: DrDrillArgs) -> Result<()> {
    if a.products == 0 || a.products > 10_000_000 {
        bail!("--products {} is out of range: use 1 to 10000000", a.products);
    }
    match a.backend {
        DrBackend::Embedded if a.stack.is_some() => {
            bail!("--stack is for --backend dynamodb: the embedded drill needs no deployed stack")
        }
        DrBackend::Dynamodb if a.dir.is_some() => {
            bail!("--dir is for --backend embedded: the DynamoDB drill keeps nothing on disk")
        }
        _ => {}
    }
    // The metrics are the deployed stack's (their Stack dimension names it).
    let publish_to = match (a.publish_metrics, a.backend, &a.stack) {
        (false, _, _) => None,
        (true, DrBackend::Dynamodb, Some(stack)) => Some(stack.clone()),
        (true, _, _) => {
            bail!("--publish-metrics is for a deployed stack: use it with --backend dynamodb --stack NAME")
        }
    };
    // A bad URL is refused before the drill, not after an hour of it.
    let reports = a
        .report_to
        .as_deref()
        .map(tandem_aws::open_store)
        .transpose()
        .context("--report-to")?;
    let rt = runtime()?;
    let result = drill_report(&a, &rt);
    // The report is kept first, then the metrics go: a failure of either is said and
    // exits 2 (the game day's task-stopped rule pages on it), never hides the report.
    let mut lost: Vec<anyhow::Error> = Vec::new();
    if let Some(store) = &reports {
        match keep_report(store.as_ref(), a.stack.as_deref(), &result) {
            Ok(at) => crate::note!("tandem: kept the report at {at}"),
            Err(e) => lost.push(e),
        }
    }
    if let Some(stack) = &publish_to {
        let metrics = match &result {
            Ok(report) => drill::metrics::of_report(report),
            Err(_) => drill::metrics::could_not_run(),
        };
        let published = rt.block_on(async {
            let config = tandem_aws::load_config().await;
            let client = tandem_dr::calls::cloudwatch_client(&config, Some(a.primary_region.as_str()));
            drill::publish::put(&client, stack, &metrics, tandem_core::time::now_micros()).await
        });
        match published {
            Ok(()) => crate::note!(
                "tandem: published {} metrics to CloudWatch ({}, Stack={stack})",
                metrics.len(),
                drill::metrics::NAMESPACE
            ),
            Err(e) => lost.push(anyhow::Error::new(e).context("publishing the drill's metrics")),
        }
    }
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            for l in &lost {
                crate::note!("tandem: {l:#}");
            }
            return Err(e);
        }
    };
    let verdict = finish(&a, report);
    match lost.into_iter().next() {
        None => verdict,
        Some(first) => {
            if let Err(e) = verdict {
                crate::note!("tandem: {e:#}");
            }
            Err(first)
        }
    }
}

/// Keeps the drill's report (HTML and JSON), or the error that stopped it
/// (`error.json`), in `store` under `STACK/TIME/` (`YYYYMMDDTHHMMSSZ-xxxxxx`);
/// returns where.
fn keep_report(
    store: &dyn tandem_core::store::ObjectStore,
    stack: Option<&str>,
    result: &Result<DrillReport>,
) -> Result<String> {
    // A run id's stamp and salt: sortable, and two drills ending in the same second
    // (a game day and one started by hand) keep both reports.
    let dir = format!(
        "{}/{}",
        stack.unwrap_or("embedded"),
        tandem_core::layout::RunId::generate()
    );
    let files: Vec<(&str, Vec<u8>)> = match result {
        Ok(report) => vec![
            ("report.html", drill::report::html(report).into_bytes()),
            (
                "report.json",
                serde_json::to_vec_pretty(report).context("encoding the report")?,
            ),
        ],
        Err(e) => vec![(
            "error.json",
            serde_json::to_vec_pretty(&serde_json::json!({"passed": false, "error": format!("{e:#}")}))
                .context("encoding the error")?,
        )],
    };
    for (name, body) in files {
        let key = format!("{dir}/{name}");
        store
            .put(&key, body.into())
            .with_context(|| format!("keeping the report at {}/{key}", store.url()))?;
    }
    Ok(format!("{}/{dir}/", store.url()))
}

/// Runs the drill `a` describes on `rt`.
fn drill_report(a: &DrDrillArgs, rt: &tokio::runtime::Runtime) -> Result<DrillReport> {
    let limits = Limits::of(a.backend);
    let mut opts = DrillOptions {
        primary_region: a.primary_region.clone(),
        recovery_region: a.region.clone().unwrap_or_else(|| {
            DEFAULT_RECOVERY_REGION
                .parse()
                .expect("the default region is valid")
        }),
        products: a.products,
        methods: a.methods.clone(),
        rto_target: a.rto_target.unwrap_or(limits.rto_target),
        rpo_target: a.rpo_target,
        pitr_window_days: a.pitr_window_days,
        answer_timeout: a.answer_timeout.unwrap_or(limits.answer_timeout),
        wait_limit: a.wait_limit.unwrap_or(limits.wait_limit),
    };
    let say = |s: String| crate::note!("tandem: {s}");
    rt.block_on(async {
        match a.backend {
            DrBackend::Embedded => {
                if opts.methods.is_empty() {
                    opts.methods = Method::ALL.to_vec();
                }
                opts.check()?;
                let work = WorkDir::claim(a.dir.as_deref())?;
                let backend = EmbeddedBackend::new(
                    &work.regions,
                    opts.pitr_window_days,
                    &opts.primary_region,
                    &opts.recovery_region,
                );
                let report = drive(&backend, &opts, &say).await;
                drop(backend);
                work.remove()?;
                report
            }
            DrBackend::Dynamodb => {
                let config = tandem_aws::load_config().await;
                let setup = match &a.stack {
                    Some(name) => {
                        let outputs = dr_stack(&config, &opts.primary_region, name).await?;
                        if a.region.is_none() {
                            opts.recovery_region = outputs
                                .recovery_region
                                .parse()
                                .with_context(|| format!("stack {name:?}'s RecoveryRegion output"))?;
                        }
                        let standby =
                            deployed_standby(&config, &opts.recovery_region, &outputs.standby_stack).await?;
                        AwsSetup {
                            api_rate: Some(outputs.api_rate_per_second),
                            served_table: (outputs.served_table != outputs.table_name)
                                .then(|| outputs.served_table.clone()),
                            table: Some(outputs.table_name),
                            primary_vault: Some(outputs.primary_vault),
                            recovery_vault_arn: Some(outputs.recovery_vault_arn),
                            role_arn: Some(outputs.backup_role_arn),
                            plan_id: Some(outputs.backup_plan_id),
                            standby,
                        }
                    }
                    None => AwsSetup {
                        table: None,
                        served_table: None,
                        api_rate: None,
                        primary_vault: a.backup_vault.clone(),
                        recovery_vault_arn: a.recovery_vault_arn.clone(),
                        role_arn: a.backup_role_arn.clone(),
                        plan_id: a.backup_plan_id.clone(),
                        standby: None,
                    },
                };
                if opts.methods.is_empty() {
                    // Every restore method, and the failover of the standby deployed.
                    opts.methods = Method::ALL
                        .into_iter()
                        .filter(|m| match (m.standby(), &setup.standby) {
                            (None, _) => true,
                            (Some(mode), Some(s)) => mode == s.standby.mode,
                            (Some(_), None) => false,
                        })
                        .collect();
                }
                opts.check()?;
                let clients = AwsClients::from_config(&config, &opts.primary_region, &opts.recovery_region);
                let backend = AwsBackend::new(opts.primary_region.clone(), clients, setup, system_clock())?
                    .with_pitr_window(opts.pitr_window_days);
                drive(&backend, &opts, &say).await
            }
        }
    })
}

/// Writes, prints and judges the report of drill `a`.
fn finish(a: &DrDrillArgs, report: DrillReport) -> Result<()> {
    if let Some(path) = &a.report {
        std::fs::write(path, drill::report::html(&report))
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    if a.json {
        output::json(&report)?;
    } else {
        output::text(&drill::report::table(&report))?;
    }
    if report.passed {
        Ok(())
    } else {
        let mut failed: Vec<&str> = report
            .methods
            .iter()
            .filter(|m| !m.passed)
            .map(|m| m.method.name())
            .collect();
        if !report.left_behind.is_empty() {
            failed.push("cleanup (see left_behind)");
        }
        Err(Failed(format!("DR drill failed: {}", failed.join(", "))).into())
    }
}

/// The deployed DR stack's outputs, read in the primary region (where it is deployed).
async fn dr_stack(
    config: &tandem_aws::SdkConfig,
    primary: &RegionName,
    name: &str,
) -> Result<tandem_aws::stack::DrOutputs> {
    let client = tandem_aws::stack::client(config, Some(primary.as_str()));
    let outputs = tandem_aws::stack::StackOutputs::load(&client, name).await?;
    Ok(tandem_aws::stack::DrOutputs::from_outputs(&outputs)?)
}

/// The standby stack's outputs, read in the recovery region; `None` when it is not
/// deployed (the restore methods need it not).
async fn deployed_standby(
    config: &tandem_aws::SdkConfig,
    region: &RegionName,
    name: &str,
) -> Result<Option<DeployedStandby>> {
    let client = tandem_aws::stack::client(config, Some(region.as_str()));
    let outputs = match tandem_aws::stack::StackOutputs::load(&client, name).await {
        Ok(o) => o,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let o = tandem_aws::stack::StandbyOutputs::from_outputs(&outputs)?;
    Ok(Some(DeployedStandby {
        standby: standby_of(&o, region)?,
        primary_api: o.primary_api_url,
        standby_api: o.api_url,
        client_url: o.client_url,
        api_key_secret: o.api_key_secret,
    }))
}

fn standby_of(o: &tandem_aws::stack::StandbyOutputs, region: &RegionName) -> Result<Standby> {
    Ok(Standby {
        region: region.clone(),
        mode: o
            .mode
            .parse::<StandbyMode>()
            .with_context(|| "the standby stack's StandbyMode output")?,
        function: o.function.clone(),
        health_check: o.dns.then(|| o.health_check.clone()),
    })
}

/// `tandem dr empty-vaults`: both vaults of the DR stack, emptied.
fn empty_vaults(a: &EmptyVaultsArgs) -> Result<()> {
    runtime()?.block_on(async {
        let config = tandem_aws::load_config().await;
        let o = dr_stack(&config, &a.primary_region, &a.stack).await?;
        let recovery: RegionName = o
            .recovery_region
            .parse()
            .with_context(|| format!("stack {:?}'s RecoveryRegion output", a.stack))?;
        let vaults = [
            (a.primary_region.clone(), o.primary_vault.clone()),
            (recovery, o.recovery_vault.clone()),
        ];
        let cleanup = Cleanup::new();
        let say = |line: String| crate::note!("tandem: {line}");
        let wait = Waiter::emptying_vaults(&say, &cleanup);
        for (region, vault) in &vaults {
            let client = tandem_dr::calls::backup_client(&config, Some(region.as_str()));
            if a.yes {
                let e = tandem_dr::teardown::empty_vault(&client, vault, &wait).await?;
                println!(
                    "vault {vault} in {region}: empty ({} recovery points deleted)",
                    e.deleted
                );
            } else {
                let n = tandem_dr::teardown::count(&client, vault).await?;
                println!("vault {vault} in {region}: {n} recovery points would be deleted");
            }
        }
        if !a.yes {
            bail!(
                "nothing deleted: run again with --yes to delete them (they cannot be restored afterwards)"
            );
        }
        Ok(())
    })
}

/// `tandem dr failover|failback|status|empty-vaults`.
pub fn standby(command: DrCommand) -> Result<()> {
    let a: &StandbyArgs = match &command {
        DrCommand::Failover(a) | DrCommand::Failback(a) | DrCommand::Status(a) => a,
        DrCommand::EmptyVaults(a) => return empty_vaults(a),
    };
    runtime()?.block_on(async {
        let config = tandem_aws::load_config().await;
        let client = tandem_aws::stack::client(&config, Some(a.region.as_str()));
        let outputs = tandem_aws::stack::StackOutputs::load(&client, &a.stack).await?;
        let o = tandem_aws::stack::StandbyOutputs::from_outputs(&outputs)?;
        let s = standby_of(&o, &a.region)?;
        let clients = SwitchClients::new(&config, &a.region);
        let cleanup = Cleanup::new();
        let say = |line: String| crate::note!("tandem: {line}");
        let wait = Waiter::standby_switch(&say, &cleanup);
        let did = match &command {
            DrCommand::Failover(_) => tandem_dr::standby::failover(&clients, &s, &wait).await?,
            DrCommand::Failback(_) => tandem_dr::standby::failback(&clients, &s, &wait).await?,
            DrCommand::Status(_) | DrCommand::EmptyVaults(_) => Vec::new(),
        };
        let state = tandem_dr::standby::state(&clients, &s).await?;
        if a.json {
            output::json(&serde_json::json!({
                "stack": a.stack,
                "region": a.region.to_string(),
                "mode": s.mode.name(),
                "standby_on": state.standby_on,
                "dns_failover": s.health_check.is_some(),
                "dns_forced": state.dns_forced,
                "primary_api": o.primary_api_url,
                "standby_api": o.api_url,
                "client_url": o.client_url,
                "did": did,
            }))?;
        } else {
            let mut text = String::new();
            for line in &did {
                text.push_str(&format!("{line}\n"));
            }
            let clients = match &o.client_url {
                Some(u) => format!("clients use {u}, which Route 53 answers with the primary or the standby"),
                None => format!(
                    "clients switch URLs: the primary's API is {}, the standby's {}",
                    o.primary_api_url, o.api_url
                ),
            };
            text.push_str(&format!(
                "standby {} in {}: a {}, switched {}{}\n{clients}\n",
                a.stack,
                a.region,
                s.mode.name(),
                if state.standby_on { "on" } else { "off" },
                match state.dns_forced {
                    Some(true) => ", DNS failover forced (the primary's health check is inverted)",
                    Some(false) => ", DNS follows the primary's health check",
                    None => ", no hosted zone (clients switch URLs)",
                }
            ));
            output::text(&text)?;
        }
        Ok(())
    })
}

/// Runs the drill; on SIGINT or SIGTERM stops it, removes what it made (a second
/// signal stops the cleanup and lists what is left), and fails with [`Interrupted`].
async fn drive(backend: &dyn DrillBackend, opts: &DrillOptions, say: drill::Say<'_>) -> Result<DrillReport> {
    // Listening before the drill starts: a signal at any point is ours to handle.
    let mut signals = Signals::listen()?;
    let cleanup = Cleanup::new();
    let signal = tokio::select! {
        report = drill::run(backend, opts, &cleanup, say) => return Ok(report?),
        signal = signals.next() => signal,
    };
    say(format!(
        "{}: stopping the drill and removing what it made",
        signal.name()
    ));
    let wait = Waiter::new(backend, opts, say, &cleanup);
    let left = tokio::select! {
        left = cleanup.release(backend, &wait) => left,
        again = signals.next() => cleanup
            .pending()
            .iter()
            .map(|r| format!("{r}: cleanup stopped by {}", again.name()))
            .collect(),
    };
    for l in &left {
        say(format!("left behind: {l}"));
    }
    Err(Interrupted(signal).into())
}

/// SIGINT and SIGTERM, listened to from creation on.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
            term: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }

    /// The next SIGINT or SIGTERM.
    async fn next(&mut self) -> crate::Signal {
        tokio::select! {
            _ = self.int.recv() => crate::Signal::Int,
            _ = self.term.recv() => crate::Signal::Term,
        }
    }
}

/// The embedded drill's working directory, `DIR/tandem-dr-drill`, held under a lock
/// on DIR so that two drills never share it; one left by a killed drill is removed.
struct WorkDir {
    /// `DIR/tandem-dr-drill`, where the regions go.
    regions: PathBuf,
    /// DIR when the drill made it (no --dir): removed with the regions.
    temporary: Option<PathBuf>,
    _lock: std::fs::File,
}

impl WorkDir {
    fn claim(dir: Option<&Path>) -> Result<Self> {
        let (base, temporary) = match dir {
            Some(d) => {
                std::fs::create_dir_all(d).with_context(|| format!("creating --dir {}", d.display()))?;
                (d.to_path_buf(), None)
            }
            None => {
                let d = std::env::temp_dir().join(format!("tandem-dr-drill-{}", std::process::id()));
                std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
                (d.clone(), Some(d))
            }
        };
        let lock = std::fs::File::open(&base).with_context(|| format!("opening {}", base.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another drill is running in {}: wait for it, or give this one another --dir",
                base.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", base.display()));
            }
        }
        let regions = base.join("tandem-dr-drill");
        if regions.exists() {
            crate::note!(
                "tandem: removing {} left by a drill that did not finish",
                regions.display()
            );
            std::fs::remove_dir_all(&regions).with_context(|| format!("removing {}", regions.display()))?;
        }
        Ok(Self {
            regions,
            temporary,
            _lock: lock,
        })
    }

    fn remove(self) -> Result<()> {
        let target = self.temporary.as_ref().unwrap_or(&self.regions);
        match std::fs::remove_dir_all(target) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing the drill's regions in {}", target.display())),
        }
    }
}
