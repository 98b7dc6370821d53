//! Lambda `post-backup` (provided.al2023; ship this binary as `bootstrap`).
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tandem_lambdas::post_backup::{Config, handle, outcome};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tandem_lambdas::init_tracing();
    tandem_aws::calls::set_component("post-backup function");
    let config = &Config::from_env()?;
    let client = &tandem_dr::calls::backup_client(&tandem_aws::load_config().await, None);
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        let report = handle(client, config, tandem_dr::embedded::now_us()).await?;
        // The report goes to the log either way; a failed check fails the invocation
        // (the stack alarms on the function's errors and its failure destination).
        match serde_json::to_string(&report) {
            Ok(json) if report.ok => tracing::info!(report = %json, "post-backup checks passed"),
            Ok(json) => tracing::error!(report = %json, "post-backup checks failed"),
            Err(e) => tracing::error!(error = %e, "post-backup report not serializable"),
        }
        outcome(report)
    }))
    .await
}
