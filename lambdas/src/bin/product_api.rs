//! Lambda `product-api` (provided.al2023; ship this binary as `bootstrap`).
use lambda_http::Error;
use tandem_lambdas::product_api::{Config, service, state};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tandem_lambdas::init_tracing();
    // The primary's function or the standby's (the standby stack sets
    // TANDEM_COMPONENT): the IAM contract's name for its calls.
    let component = std::env::var("TANDEM_COMPONENT").unwrap_or_else(|_| "product-api function".into());
    tandem_aws::calls::set_component(&component);
    let config = Config::from_env();
    let client = tandem_dr::calls::dynamodb_client(&tandem_aws::load_config().await, None);
    lambda_http::run(service(state(&config, client))).await
}
