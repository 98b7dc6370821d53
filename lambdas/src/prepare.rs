//! The prepare handler.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tandem_aws::batch::job_name;
use tandem_core::layout::RunId;
use tandem_core::names::Stage;
use tandem_core::prepare::prepare;
use tandem_core::workload::WorkloadInput;

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

/// The input event, the state machine's execution input: a new run's workload
/// ([`WorkloadInput`]: every field optional, an unknown one refused), or
/// `{"rerun": RUN_ID}` alone, the children of that run whose result does not verify.
#[derive(Debug, Clone, Default)]
pub struct PrepareEvent {
    /// Rerun this run's lost children instead of preparing a new run.
    pub rerun: Option<RunId>,
    /// A new run's workload.
    pub workload: WorkloadInput,
}

impl<'de> Deserialize<'de> for PrepareEvent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut fields = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let rerun = match fields.remove("rerun") {
            None => None,
            Some(serde_json::Value::String(run)) => Some(run.parse::<RunId>().map_err(D::Error::custom)?),
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "\"rerun\" must be a run id, got {other}"
                )));
            }
        };
        if rerun.is_some() && !fields.is_empty() {
            let extra: Vec<&String> = fields.keys().collect();
            return Err(D::Error::custom(format!(
                "a rerun takes the run's own workload: give \"rerun\" alone, not {extra:?}"
            )));
        }
        let workload =
            WorkloadInput::deserialize(serde_json::Value::Object(fields)).map_err(D::Error::custom)?;
        Ok(Self { rerun, workload })
    }
}

/// The output: tandem's names and the original init lambda's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareOutput {
    /// The run id.
    pub run_id: RunId,
    /// Children per stage.
    pub array_size: u32,
    /// The original's name for the run id.
    pub step_fn_id: RunId,
    /// The original's name for the array size.
    pub total_nodes: u32,
    /// `N`.
    pub records: u64,
    /// `K`.
    pub ids_per_node: u64,
    /// The Batch job name of each stage (valid names of at most 128 characters).
    pub job_names: JobNames,
    /// A rerun's index map in the run directory (`TANDEM_INDEX_MAP` of its children):
    /// array child `j` runs original child `map[j]`. Empty for a new run.
    pub index_map: String,
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

/// Prepares a run, or a rerun. Errors are messages for the Step Functions execution
/// history.
pub fn handle(config: &Config, event: PrepareEvent) -> Result<PrepareOutput, String> {
    if let Some(run) = &event.rerun {
        return rerun(config, run);
    }
    let opts = event.workload.prepare_options(&config.root, None, false);
    let store = tandem_aws::open_store(&config.bucket).map_err(|e| tandem_core::error::chain(&e))?;
    let (_, m) = prepare(&opts, store.as_ref()).map_err(|e| tandem_core::error::chain(&e))?;
    Ok(PrepareOutput {
        run_id: m.run_id.clone(),
        array_size: m.plan.array_size,
        step_fn_id: m.run_id.clone(),
        total_nodes: m.plan.array_size,
        records: m.plan.records,
        ids_per_node: m.plan.ids_per_node,
        job_names: JobNames::of(&m.run_id, ""),
        index_map: String::new(),
    })
}

impl JobNames {
    fn of(run_id: &str, suffix: &str) -> Self {
        Self {
            procure: job_name(run_id, Stage::Procure, suffix),
            process: job_name(run_id, Stage::Process, suffix),
            egress: job_name(run_id, Stage::Egress, suffix),
        }
    }
}

/// Readers of the results while finding the lost children (S3 requests overlap).
const RERUN_READERS: usize = 32;

/// The rerun of run `run_id` inside the deployment: the children whose result does
/// not verify (verify's own check of every object, and the stage files on the volume
/// for where each resumes), as one compact array with an index map on the volume
/// (for the workers) and in the bucket (for watch). Nothing lost: an array size of 0,
/// which the state machine ends on.
fn rerun(config: &Config, run_id: &RunId) -> Result<PrepareOutput, String> {
    let chain = |e: tandem_core::Error| tandem_core::error::chain(&e);
    let ctx = tandem_core::stage::RunContext::open_with(&config.root, run_id, None, &tandem_aws::open_store)
        .map_err(chain)?;
    ctx.check_id_file().map_err(chain)?;
    let indices: Vec<u32> = tandem_core::executor::rerun_tasks(&ctx, RERUN_READERS)
        .map_err(chain)?
        .iter()
        .map(|t| t.index)
        .collect();
    let m = &ctx.manifest;
    let (suffix, index_map) = if indices.is_empty() {
        (String::new(), String::new())
    } else {
        let stamp = tandem_core::time::compact_stamp(tandem_core::time::now_micros());
        let file = tandem_core::index_map::write(&ctx.layout, &stamp, &indices).map_err(chain)?;
        tandem_core::index_map::publish(ctx.store.as_ref(), run_id, &file, &indices).map_err(chain)?;
        (format!("-rerun-{stamp}"), file)
    };
    let n = indices.len() as u32;
    Ok(PrepareOutput {
        run_id: m.run_id.clone(),
        array_size: n,
        step_fn_id: m.run_id.clone(),
        total_nodes: n,
        records: m.plan.records,
        ids_per_node: m.plan.ids_per_node,
        job_names: JobNames::of(&m.run_id, &suffix),
        index_map,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rerun_finds_the_lost_children_and_maps_them() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path());
        let out = handle(
            &config,
            PrepareEvent {
                workload: WorkloadInput {
                    records: Some(100),
                    ids_per_node: Some(10),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(out.index_map, "");
        let ctx = tandem_core::stage::RunContext::open(&config.root, &out.run_id, None).unwrap();
        let ex = tandem_core::executor::execute(
            &ctx,
            &tandem_core::executor::all_tasks(10),
            &tandem_core::executor::ExecutorConfig::new(2, 1),
            &|_| {},
        );
        assert!(ex.failures().is_empty());
        let rerun = |run: &str| {
            handle(
                &config,
                PrepareEvent {
                    rerun: Some(run.parse().unwrap()),
                    ..Default::default()
                },
            )
        };
        // Nothing lost: nothing to submit.
        let none = rerun(&out.run_id).unwrap();
        assert_eq!((none.array_size, none.index_map.as_str()), (0, ""));
        for i in [2, 7] {
            ctx.store
                .delete(&tandem_core::names::object_key(&out.run_id, i))
                .unwrap();
        }
        let r = rerun(&out.run_id).unwrap();
        assert_eq!(r.array_size, 2);
        assert!(r.job_names.egress.contains("-egress-rerun-"), "{:?}", r.job_names);
        // The map is on the volume for the workers and in the bucket for watch.
        assert_eq!(
            tandem_core::index_map::load(&ctx.layout, &r.index_map, 10).unwrap(),
            vec![2, 7]
        );
        assert_eq!(
            tandem_core::index_map::fetch(ctx.store.as_ref(), &out.run_id, &r.index_map, 10).unwrap(),
            vec![2, 7]
        );
        // The rerun's children, run as Batch would, repair the run.
        for j in 0..2 {
            let i = tandem_core::index_map::resolve(&ctx.layout, &r.index_map, Some(j), 10).unwrap();
            ctx.run_child(Stage::Egress, i, 1).unwrap();
        }
        assert!(
            tandem_core::verify::verify(&ctx.manifest, ctx.store.as_ref(), 2)
                .unwrap()
                .ok
        );
        let err =
            serde_json::from_str::<PrepareEvent>(&format!(r#"{{"rerun": "{}", "records": 5}}"#, out.run_id))
                .unwrap_err()
                .to_string();
        assert!(err.contains("\"rerun\" alone"), "{err}");
        assert!(rerun("no-such-run").unwrap_err().contains("no-such-run"));
    }

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
            workload: WorkloadInput {
                records: Some(1_000_000),
                ..Default::default()
            },
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
