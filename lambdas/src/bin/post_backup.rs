//! Lambda `post-backup` (provided.al2023; ship this binary as `bootstrap`).
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tandem_lambdas::post_backup::{Config, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tandem_lambdas::init_tracing();
    tandem_aws::calls::set_component("post-backup function");
    let config = &Config::from_env()?;
    let client = &tandem_dr::calls::backup_client(&tandem_aws::load_config().await, None);
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        handle(client, config, tandem_dr::embedded::now_us()).await
    }))
    .await
}
