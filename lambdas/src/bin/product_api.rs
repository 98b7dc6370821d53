//! Lambda `product-api` (provided.al2023; ship this binary as `bootstrap`).
use lambda_http::Error;
use tandem_lambdas::product_api::{Config, service, state};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tandem_lambdas::init_tracing();
    let config = Config::from_env();
    let client = aws_sdk_dynamodb::Client::new(&tandem_aws::load_config().await);
    lambda_http::run(service(state(&config, client))).await
}
