//! Lambda `watch` (provided.al2023; ship this binary as `bootstrap`).
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tandem_lambdas::watch::{Config, WatchEvent, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tandem_lambdas::init_tracing();
    tandem_aws::calls::set_component("watch function");
    let config = tandem_aws::load_config().await;
    let client = &tandem_aws::batch::client(&config);
    let config = &Config::from_env();
    lambda_runtime::run(service_fn(move |e: LambdaEvent<WatchEvent>| async move {
        handle(client, config, e.payload).await
    }))
    .await
}
