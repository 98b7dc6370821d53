//! `tandem api serve` and `tandem dr-drill`.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tandem_dr::api::{ApiState, router};
use tandem_dr::backup::{Backups, EmbeddedBackupCreator};

use tandem_dr::drill::aws::{AwsBackend, BackupSetup};
use tandem_dr::drill::embedded::EmbeddedBackend;
use tandem_dr::drill::{self, Cleanup, DrillBackend, DrillOptions, DrillReport, Method, Waiter};
use tandem_dr::embedded::Region;
use tandem_dr::region::RegionName;

use crate::args::{ApiServeArgs, DrBackend, DrDrillArgs};
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
    let limits = Limits::of(a.backend);
    let methods = if a.methods.is_empty() {
        Method::ALL.to_vec()
    } else {
        a.methods.clone()
    };
    let mut opts = DrillOptions {
        primary_region: a.primary_region.clone(),
        recovery_region: a.region.clone().unwrap_or_else(|| {
            DEFAULT_RECOVERY_REGION
                .parse()
                .expect("the default region is valid")
        }),
        products: a.products,
        methods,
        rto_target: a.rto_target.unwrap_or(limits.rto_target),
        rpo_target: a.rpo_target,
        pitr_window_days: a.pitr_window_days,
        answer_timeout: a.answer_timeout.unwrap_or(limits.answer_timeout),
        wait_limit: a.wait_limit.unwrap_or(limits.wait_limit),
    };
    if a.region.is_some() {
        opts.check()?;
    }
    let say = |s: String| crate::note!("tandem: {s}");
    let report = runtime()?.block_on(async {
        match a.backend {
            DrBackend::Embedded => {
                opts.check()?;
                let work = WorkDir::claim(a.dir.as_deref())?;
                let backend = EmbeddedBackend::new(&work.regions, opts.pitr_window_days);
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
                        BackupSetup {
                            primary_vault: Some(outputs.primary_vault),
                            recovery_vault_arn: Some(outputs.recovery_vault_arn),
                            role_arn: Some(outputs.backup_role_arn),
                            plan_id: Some(outputs.backup_plan_id),
                        }
                    }
                    None => BackupSetup {
                        primary_vault: a.backup_vault.clone(),
                        recovery_vault_arn: a.recovery_vault_arn.clone(),
                        role_arn: a.backup_role_arn.clone(),
                        plan_id: a.backup_plan_id.clone(),
                    },
                };
                opts.check()?;
                let backend =
                    AwsBackend::from_config(&config, &opts.primary_region, &opts.recovery_region, setup);
                drive(&backend, &opts, &say).await
            }
        }
    })?;
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
