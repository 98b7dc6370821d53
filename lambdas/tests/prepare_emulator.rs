//! The prepare function against the local emulator's S3, as the Lambda runtime runs
//! it, with every AWS call it makes recorded and checked against its IAM contract.
//! One test in this file: the call log is the process's.

use tandem_aws::calls::{self, CallLog, contract};
use tandem_lambdas::prepare::{Config, PrepareEvent, handle_async};

#[test]
#[ignore = "needs the emulator"]
fn prepares_from_the_lambda_runtime_with_an_s3_bucket_inside_its_contract() {
    let aws = tandem_aws::fixtures::emulator();
    let bucket = tandem_aws::fixtures::bucket(&aws, "tandem-lambda-prepare");
    let log = CallLog::memory();
    calls::record_process(log.clone());
    calls::set_component("prepare function");
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        root: dir.path().join("efs"),
        bucket: format!("{bucket}/runs"),
    };
    let event = PrepareEvent {
        workload: tandem_core::workload::WorkloadInput {
            records: Some(1000),
            ..Default::default()
        },
        ..Default::default()
    };
    // As in the function: the handler runs on a multi-threaded runtime.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = rt.block_on(handle_async(config, event)).unwrap();
    assert_eq!(out.array_size, 25);
    let recorded = log.calls();
    assert!(
        !recorded.is_empty(),
        "the prepare function made no AWS call: nothing was recorded"
    );
    contract::assert_within(
        &recorded,
        &[
            ("ResultsBucket", "tandem-lambda-prepare"),
            ("ResultsPrefix", "runs"),
        ],
    );
}
