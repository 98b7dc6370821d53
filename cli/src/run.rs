//! Where a command finds a run: on the shared volume, or, for the commands that only
//! read it (verify, report, watch), in its bucket, where prepare published its
//! manifest, so an operator who cannot mount the volume works from the deployed
//! stack's bucket (`--stack`). Both `commands` and `aws` open runs through here.

use anyhow::Result;
use tandem_aws::Aws;
use tandem_core::stage::{RunContext, RunView};

use crate::args::RunArgs;

/// Opens a run on the volume (the manifest, the mapped ID file, its bucket).
pub(crate) fn open_run(r: &RunArgs) -> Result<RunContext> {
    Ok(RunContext::open_with(
        &r.location.root,
        &r.run_id,
        r.bucket.as_deref(),
        &tandem_aws::open_store,
    )?)
}

/// The outputs of the deployed pipeline stack `name`.
pub(crate) fn pipeline_stack(aws: &Aws, name: &str) -> Result<tandem_aws::stack::PipelineOutputs> {
    let client = tandem_aws::stack::client(aws.config(), None);
    let outputs = aws.block_on(tandem_aws::stack::StackOutputs::load(&client, name))?;
    Ok(tandem_aws::stack::PipelineOutputs::from_outputs(&outputs)?)
}

/// A run opened for reading: its view, and the run on the volume when it is there.
pub(crate) struct Opened {
    pub view: RunView,
    pub ctx: Option<RunContext>,
}

/// Opens a run for reading. With `--stack`, from the stack's bucket (or `--bucket`)
/// alone, whatever the volume holds; without it, from the volume when the run is
/// there, else from `--bucket` when one is given; otherwise the volume's error (which
/// names the runs it does hold).
pub(crate) fn open_view(r: &RunArgs, stack: Option<&str>) -> Result<Opened> {
    let from_bucket = |url: &str| -> Result<Opened> {
        let store = tandem_aws::open_store(url)?;
        Ok(Opened {
            view: RunView::from_bucket(store, &r.run_id)?,
            ctx: None,
        })
    };
    if let Some(name) = stack {
        let url = match &r.bucket {
            Some(u) => u.clone(),
            None => pipeline_stack(&Aws::from_env()?, name)?.bucket_url,
        };
        return from_bucket(&url);
    }
    let on_volume = tandem_core::layout::RunLayout::new(&r.location.root, &r.run_id)
        .manifest()
        .is_file();
    match (&r.bucket, on_volume) {
        (Some(url), false) => from_bucket(url),
        _ => {
            let ctx = open_run(r)?;
            Ok(Opened {
                view: RunView::from_context(&ctx),
                ctx: Some(ctx),
            })
        }
    }
}
