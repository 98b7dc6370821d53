//! The prepare handler.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tandem_aws::batch::job_name;
use tandem_core::names::Stage;
use tandem_core::prepare::{PrepareOptions, prepare};
use tandem_core::workload::DEFAULT_SEED;

/// The handler's configuration, read once from the environment.
///
/// - `TANDEM_ROOT`: the EFS mount point in the function (required);
/// - `TANDEM_BUCKET`: the bucket URL egress will write to (required, `s3://...`).
#[derive(Debug, Clone)]
pub struct Config {
    /// The shared volume.
    pub root: PathBuf,
    /// The bucket URL.
    pub bucket: String,
}

impl Config {
    /// Reads `TANDEM_ROOT` and `TANDEM_BUCKET`.
    pub fn from_env() -> Result<Self, String> {
        let get = |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set: the function needs it"));
        Ok(Self {
            root: PathBuf::from(get("TANDEM_ROOT")?),
            bucket: get("TANDEM_BUCKET")?,
        })
    }
}

/// The input event (the state machine's execution input): every field optional,
/// defaulting as the CLI does; an unknown field (a typo such as `record`) is refused
/// rather than silently ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareEvent {
    /// `N` (400,000).
    pub records: Option<u64>,
    /// `K` (40).
    pub ids_per_node: Option<u64>,
    /// Seed (42).
    pub seed: Option<u64>,
    /// First ID (1).
    pub first_id: Option<u64>,
}

/// The output: tandem's names and the original init lambda's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareOutput {
    /// The run id.
    pub run_id: String,
    /// Children per stage.
    pub array_size: u32,
    /// The original's name for the run id.
    pub step_fn_id: String,
    /// The original's name for the array size.
    pub total_nodes: u32,
    /// `N`.
    pub records: u64,
    /// `K`.
    pub ids_per_node: u64,
    /// The Batch job name of each stage (valid names of at most 128 characters).
    pub job_names: JobNames,
}

/// The Batch job names of a run's three stages, by stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobNames {
    /// Stage 1.
    pub procure: String,
    /// Stage 2.
    pub process: String,
    /// Stage 3.
    pub egress: String,
}

/// [`handle`] from async code (the Lambda runtime): prepare writes files and opens
/// the bucket with blocking calls (tandem-aws runs its own runtime for them), so it
/// runs on a blocking thread rather than on the runtime driving the function.
pub async fn handle_async(config: Config, event: PrepareEvent) -> Result<PrepareOutput, String> {
    tokio::task::spawn_blocking(move || handle(&config, event))
        .await
        .map_err(|e| format!("prepare did not finish: {e}"))?
}

/// Prepares a run. Errors are messages for the Step Functions execution history.
pub fn handle(config: &Config, event: PrepareEvent) -> Result<PrepareOutput, String> {
    let opts = PrepareOptions {
        root: config.root.clone(),
        run_id: None,
        records: event.records.unwrap_or(400_000),
        first_id: event.first_id.unwrap_or(1),
        ids_per_node: event.ids_per_node.unwrap_or(40),
        seed: event.seed.unwrap_or(DEFAULT_SEED),
        overwrite: false,
    };
    let store = tandem_aws::open_store(&config.bucket).map_err(|e| tandem_core::error::chain(&e))?;
    let (_, m) = prepare(&opts, store.as_ref()).map_err(|e| tandem_core::error::chain(&e))?;
    Ok(PrepareOutput {
        run_id: m.run_id.clone(),
        array_size: m.plan.array_size,
        step_fn_id: m.run_id.clone(),
        total_nodes: m.plan.array_size,
        records: m.plan.records,
        ids_per_node: m.plan.ids_per_node,
        job_names: JobNames {
            procure: job_name(&m.run_id, Stage::Procure, ""),
            process: job_name(&m.run_id, Stage::Process, ""),
            egress: job_name(&m.run_id, Stage::Egress, ""),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> Config {
        Config {
            root: dir.join("efs"),
            bucket: format!("file://{}", dir.join("bucket").display()),
        }
    }

    #[test]
    fn an_empty_event_prepares_the_default_run() {
        let dir = tempfile::tempdir().unwrap();
        let event: PrepareEvent = serde_json::from_str("{}").unwrap();
        let out = handle(&config(dir.path()), event).unwrap();
        assert_eq!(
            (out.array_size, out.total_nodes, out.records),
            (10_000, 10_000, 400_000)
        );
        assert_eq!(out.step_fn_id, out.run_id);
        assert!(
            dir.path()
                .join("efs")
                .join(&out.run_id)
                .join("ids.arrow")
                .is_file()
        );
        // Step Functions reads the original's field names, and the job names.
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["total_nodes"], 10_000);
        assert_eq!(
            json["job_names"]["egress"],
            format!("tandem-{}-egress", out.run_id)
        );
    }

    #[test]
    fn event_fields_override_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let event: PrepareEvent =
            serde_json::from_str(r#"{"records": 1000, "ids_per_node": 7, "seed": 9}"#).unwrap();
        let out = handle(&config(dir.path()), event).unwrap();
        assert_eq!(out.array_size, 143);
    }

    #[test]
    fn a_plan_over_the_array_limit_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let event = PrepareEvent {
            records: Some(1_000_000),
            ..Default::default()
        };
        let err = handle(&config(dir.path()), event).unwrap_err();
        assert!(err.contains("--ids-per-node 100"), "{err}");
    }

    #[test]
    fn a_mistyped_event_is_refused_by_the_runtime_decoder() {
        assert!(serde_json::from_str::<PrepareEvent>(r#"{"records": "many"}"#).is_err());
        let err = serde_json::from_str::<PrepareEvent>(r#"{"record": 5}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `record`"), "{err}");
    }
}
