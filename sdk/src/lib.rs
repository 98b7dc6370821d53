//! tandem-sdk: what every tandem crate that calls AWS shares, and nothing else (no
//! S3, Batch or Parquet): the SDK configuration from the standard environment
//! ([`load_config`]), the service's own words for an SDK error ([`sdk_message`]),
//! and [`calls`], which records each call as the IAM actions and resources it needs
//! and checks them against the IAM contract (`iam/contract.json`).

pub mod calls;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;

pub use aws_config::SdkConfig;

/// Loads the SDK configuration from the standard AWS environment (`AWS_REGION`,
/// `AWS_ENDPOINT_URL`, the credentials chain).
///
/// Requests are retried with the SDK's standard strategy (exponential backoff with
/// jitter on throttling, 5xx and transient errors), up to 8 attempts.
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(8))
        .load()
        .await
}

/// The service's own words for an SDK error: `Code: message` for a service error,
/// the whole error chain otherwise (timeouts, DNS, TLS, a response that does not
/// parse).
pub fn sdk_message<E, R>(e: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> String
where
    E: std::error::Error + aws_smithy_types::error::metadata::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    use aws_smithy_types::error::display::DisplayErrorContext;
    match e.as_service_error() {
        Some(s) => match (s.code(), s.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            _ => DisplayErrorContext(s).to_string(),
        },
        None => DisplayErrorContext(e).to_string(),
    }
}

/// An SDK error as tandem reports it: the service's own words ([`sdk_message`]) as
/// its message, the SDK's error kept whole as its source.
#[derive(Debug)]
pub struct ServiceError {
    message: String,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl<E, R> From<aws_smithy_runtime_api::client::result::SdkError<E, R>> for ServiceError
where
    E: std::error::Error + aws_smithy_types::error::metadata::ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    fn from(e: aws_smithy_runtime_api::client::result::SdkError<E, R>) -> Self {
        Self {
            message: sdk_message(&e),
            source: Box::new(e),
        }
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ServiceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}
