//! Lambda `watch` (provided.al2023; ship this binary as `bootstrap`).
//!
//! Two events: the state machine's watch (`{jobs, run_id, ...}`), and the EventBridge
//! rule's `{"abandoned_execution": ...}` for an execution that ended without winding
//! its run down (its jobs are terminated).
use lambda_runtime::{Error, LambdaEvent, service_fn};
use tandem_lambdas::reap::{self, AbandonedEvent};
use tandem_lambdas::watch::{Config, WatchEvent, handle};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tandem_lambdas::init_tracing();
    tandem_aws::calls::set_component("watch function");
    let sdk = tandem_aws::load_config().await;
    let client = &tandem_aws::batch::client(&sdk);
    let sfn = &tandem_aws::sfn::client(&sdk);
    let config = &Config::from_env()?;
    lambda_runtime::run(service_fn(move |e: LambdaEvent<serde_json::Value>| async move {
        if e.payload.get("abandoned_execution").is_some() {
            let event: AbandonedEvent = serde_json::from_value(e.payload)?;
            let queues = reap::queues_from_env()?;
            return Ok::<_, Error>(serde_json::to_value(
                reap::handle(client, sfn, &queues, event).await?,
            )?);
        }
        let event: WatchEvent = serde_json::from_value(e.payload)?;
        Ok(serde_json::to_value(handle(client, config, event).await?)?)
    }))
    .await
}
