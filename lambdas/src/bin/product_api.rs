//! Lambda `product-api` (provided.al2023; ship this binary as `bootstrap`).
use lambda_http::Error;
use tandem_lambdas::product_api::{Config, service, state};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tandem_lambdas::init_tracing();
    tandem_aws::calls::set_component("product-api function");
    let config = Config::from_env();
    let client = tandem_dr::calls::dynamodb_client(&tandem_aws::load_config().await, None);
    lambda_http::run(service(state(&config, client))).await
}
