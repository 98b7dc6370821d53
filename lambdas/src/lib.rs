//! tandem's Lambda handlers, as library functions tests call directly; each binary
//! in `src/bin/` is a few lines of `main` over one of them (`lambda_runtime`).
//!
//! - [`prepare`]: the Step Functions entry step. Prepares a run on the EFS mount and
//!   returns its id and array size (also as the original's `step_fn_id` and
//!   `total_nodes`).
//! - [`watch`]: one look at a run's three Batch jobs, shaped for a Choice state:
//!   `{finished, succeeded, stages, failed_indices}`.
//! - [`product_api`]: the product API router over DynamoDB, run by `lambda_http`.
//! - [`post_backup`]: after the scheduled backup: check it, copy it to the second
//!   region, expire old recovery points, report.
//! - [`reap`]: the watch function's other event: terminates the jobs of an execution
//!   that was stopped, timed out or failed outside its own wind-down.

pub mod post_backup;
pub mod prepare;
pub mod product_api;
pub mod reap;
pub mod watch;

/// Logs as JSON lines to stdout (CloudWatch), filtered by `RUST_LOG` (default info).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .without_time()
        .with_ansi(false)
        .init();
}
