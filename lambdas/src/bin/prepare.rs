//! Lambda `prepare` (provided.al2023; ship this binary as `bootstrap`).
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tandem_lambdas::prepare::{Config, PrepareEvent, handle_async};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tandem_lambdas::init_tracing();
    tandem_aws::calls::set_component("prepare function");
    let config = Config::from_env()?;
    lambda_runtime::run(service_fn(move |e: LambdaEvent<PrepareEvent>| {
        handle_async(config.clone(), e.payload)
    }))
    .await
}
