//! `tandem api serve` and `tandem dr-drill`.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tandem_dr::api::{ApiState, router};
use tandem_dr::backup::{Backups, EmbeddedBackupCreator};
use tandem_dr::drill::{self, DrillOptions, Method};
use tandem_dr::embedded::Region;

use crate::Failed;
use crate::args::{ApiServeArgs, DrBackend, DrDrillArgs};
use crate::output;

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
    let region = Arc::new(Region::new(&a.data_dir, &a.region)?);
    let table = region.table("Product", true)?;
    let backups = Backups::new(region.clone())?;
    let state = ApiState {
        store: table.clone(),
        backups: Some(Arc::new(EmbeddedBackupCreator { backups, table })),
        api_key: a.api_key.clone(),
    };
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.addr)
            .await
            .with_context(|| format!("listening on {}", a.addr))?;
        crate::note!(
            "tandem: product API on http://{} (region {}, table {})",
            listener.local_addr()?,
            a.region,
            region.dir().join("tables").join("Product.redb").display()
        );
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("serving the API")
    })
}

pub fn drill(a: DrDrillArgs) -> Result<()> {
    if a.products == 0 || a.products > 10_000_000 {
        bail!("--products {} is out of range: use 1 to 10000000", a.products);
    }
    if a.region == a.primary_region {
        bail!(
            "--region {} is also the primary region: the recovery region must be another one",
            a.region
        );
    }
    let methods = if a.methods.is_empty() {
        Method::ALL.to_vec()
    } else {
        a.methods.clone()
    };
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.join("tandem-dr-drill"),
        None => {
            tmp = std::env::temp_dir().join(format!("tandem-dr-drill-{}", std::process::id()));
            tmp.clone()
        }
    };
    let opts = DrillOptions {
        dir,
        primary_region: a.primary_region.clone(),
        recovery_region: a.region.clone(),
        products: a.products,
        methods,
        rto_target: a.rto_target,
        rpo_target: a.rpo_target,
        pitr_window_days: a.pitr_window_days,
        answer_timeout: a.answer_timeout,
    };
    opts.check()?;
    let report = runtime()?.block_on(async {
        match a.backend {
            DrBackend::Embedded => drill::run(&opts).await,
            DrBackend::Dynamodb => {
                let config = tandem_aws::load_config().await;
                let (primary, recovery) =
                    tandem_dr::drill_dynamodb::clients(&config, &opts.primary_region, &opts.recovery_region);
                tandem_dr::drill_dynamodb::run(&opts, primary, recovery).await
            }
        }
    })?;
    if let Some(path) = &a.report {
        std::fs::write(path, tandem_dr::drill_report::html(&report))
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    if a.json {
        output::json(&report)?;
    } else {
        output::text(&tandem_dr::drill_report::table(&report))?;
    }
    if report.passed {
        Ok(())
    } else {
        let failed: Vec<&str> = report
            .methods
            .iter()
            .filter(|m| !m.passed)
            .map(|m| m.method.name())
            .collect();
        Err(Failed(format!("DR drill failed: {}", failed.join(", "))).into())
    }
}
