//! tandem-aws: the AWS backends of tandem, through the official AWS SDK for Rust.
//!
//! - [`s3::S3Store`]: the `s3://BUCKET/PREFIX` object store egress writes to;
//! - [`batch`]: submitting a run's three stages as AWS Batch array jobs chained
//!   N_TO_N, and watching them until they succeed or fail (naming the failed
//!   children);
//! - [`stack`]: the outputs of the deployed stacks (`--stack NAME`);
//! - [`sfn`]: starting the run state machine and following an execution.
//!
//! The SDK is async; tandem-core is not. [`Aws`] owns one small tokio runtime per
//! process and one `SdkConfig` loaded from the standard environment
//! (`AWS_ENDPOINT_URL`, `AWS_REGION`, the credentials chain), and the sync
//! [`tandem_core::store::ObjectStore`] methods block on it. Async callers (the
//! lambdas) use the async functions directly.

pub mod batch;
pub mod calls;
#[cfg(feature = "fixtures")]
pub mod fixtures;
pub mod s3;
#[cfg(feature = "sfn")]
pub mod sfn;
#[cfg(feature = "stacks")]
pub mod stack;

use std::sync::{Arc, OnceLock};

use tandem_core::store::ObjectStore;
use tandem_core::{Error, Result};

/// One process's AWS access: a runtime and the SDK configuration.
#[derive(Debug, Clone)]
pub struct Aws {
    runtime: Arc<tokio::runtime::Runtime>,
    config: aws_config::SdkConfig,
    s3_endpoint_override: bool,
}

impl Aws {
    /// Starts the runtime and loads the SDK configuration ([`load_config`]).
    ///
    /// Environment read here (once): everything the SDK's default chain reads, and
    /// whether S3 requests go to a compatible endpoint instead of AWS
    /// (`AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_S3`), which are then path-style.
    pub fn from_env() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tandem-aws")
            .enable_all()
            .build()
            .map_err(|e| Error::io("start the AWS runtime", "tokio", e))?;
        let config = runtime.block_on(load_config());
        let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        let s3_endpoint_override = config.endpoint_url().is_some() || set("AWS_ENDPOINT_URL_S3");
        Ok(Self {
            runtime: Arc::new(runtime),
            config,
            s3_endpoint_override,
        })
    }

    /// True when S3 is reached through a compatible endpoint rather than AWS.
    pub fn s3_endpoint_override(&self) -> bool {
        self.s3_endpoint_override
    }

    /// The SDK configuration.
    pub fn config(&self) -> &aws_config::SdkConfig {
        &self.config
    }

    /// Runs a future to completion on this process's AWS runtime (from sync code).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

pub use tandem_sdk::{SdkConfig, instrument, load_config, sdk_message};

/// Opens any bucket URL tandem knows: `s3://BUCKET[/PREFIX]` here, everything else
/// through [`tandem_core::store::open`] (`file://DIR`). The AWS configuration is
/// loaded on the first `s3://` URL only, so local runs never touch it.
pub fn open_store(url: &str) -> Result<Arc<dyn ObjectStore>> {
    static AWS: OnceLock<Aws> = OnceLock::new();
    if url.starts_with("s3://") {
        // A malformed URL is refused before the AWS configuration is loaded (which
        // may query the instance metadata service for a region or credentials).
        s3::S3Url::parse(url)?;
        let aws = match AWS.get() {
            Some(a) => a.clone(),
            None => {
                let a = Aws::from_env()?;
                AWS.get_or_init(|| a).clone()
            }
        };
        return Ok(Arc::new(s3::S3Store::open(&aws, url)?));
    }
    tandem_core::store::open(url)
}
