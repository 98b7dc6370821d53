//! Fixtures on the local emulator for the tests of this crate and the CLI
//! (feature `fixtures`). They panic on failure: they are test set-up.

use aws_sdk_batch::types::{
    CeType, ComputeEnvironmentOrder, ContainerProperties, JobDefinitionType, JqState, ResourceRequirement,
    ResourceType,
};

use crate::Aws;

/// The AWS context for the emulator; panics unless `AWS_ENDPOINT_URL` points at a
/// loopback emulator (so no test can reach a real account).
pub fn emulator() -> Aws {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|u| u.starts_with("http://127.0.0.1")),
        "these tests talk to the local emulator only: run them with scripts/emulator.sh"
    );
    Aws::from_env().expect("AWS configuration")
}

/// Creates a bucket named after the test and returns its URL.
pub fn bucket(aws: &Aws, name: &str) -> String {
    // Set-up, not a component's call: a client nothing records.
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(aws.config())
            .force_path_style(true)
            .build(),
    );
    aws.block_on(client.create_bucket().bucket(name).send())
        .expect("create bucket");
    format!("s3://{name}")
}

/// Creates an IAM role on the emulator with one unsigned query-protocol request
/// (moto routes by the credential scope and checks no signature), so the tests do not
/// need the IAM SDK just for a fixture. Returns the role ARN.
pub fn emulator_role(name: &str) -> String {
    use std::io::{Read, Write};
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let addr = endpoint.trim_start_matches("http://");
    let body =
        format!("Action=CreateRole&Version=2010-05-08&RoleName={name}&AssumeRolePolicyDocument=%7B%7D");
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20261128/us-east-1/iam/aws4_request, \
         SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    format!("arn:aws:iam::123456789012:role/{name}")
}

/// A compute environment, queue and job definition on the emulator.
pub fn batch_setup(aws: &Aws, name: &str) -> aws_sdk_batch::Client {
    let client = aws_sdk_batch::Client::new(aws.config());
    let ce = aws
        .block_on(
            client
                .create_compute_environment()
                .compute_environment_name(format!("{name}-ce"))
                .r#type(CeType::Unmanaged)
                .service_role(emulator_role(&format!("{name}-role")))
                .send(),
        )
        .unwrap();
    aws.block_on(
        client
            .create_job_queue()
            .job_queue_name(format!("{name}-queue"))
            .state(JqState::Enabled)
            .priority(1)
            .compute_environment_order(
                ComputeEnvironmentOrder::builder()
                    .order(1)
                    .compute_environment(ce.compute_environment_arn().unwrap())
                    .build(),
            )
            .send(),
    )
    .unwrap();
    aws.block_on(
        client
            .register_job_definition()
            .job_definition_name(format!("{name}-worker"))
            .r#type(JobDefinitionType::Container)
            .container_properties(
                ContainerProperties::builder()
                    .image("tandem:latest")
                    .resource_requirements(
                        ResourceRequirement::builder()
                            .r#type(ResourceType::Vcpu)
                            .value("1")
                            .build(),
                    )
                    .resource_requirements(
                        ResourceRequirement::builder()
                            .r#type(ResourceType::Memory)
                            .value("512")
                            .build(),
                    )
                    .command("tandem")
                    .command("worker")
                    .build(),
            )
            .send(),
    )
    .unwrap();
    client
}

/// A CloudFormation stack on the emulator whose outputs are `outputs` (static
/// values; the one resource is a placeholder the emulator can create).
pub fn stack(aws: &Aws, name: &str, outputs: &[(&str, &str)]) {
    let client = aws_sdk_cloudformation::Client::new(aws.config());
    let template = serde_json::json!({
        "Resources": { "Placeholder": { "Type": "AWS::CloudFormation::WaitConditionHandle" } },
        "Outputs": outputs
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!({ "Value": v })))
            .collect::<serde_json::Map<_, _>>(),
    });
    aws.block_on(
        client
            .create_stack()
            .stack_name(name)
            .template_body(template.to_string())
            .send(),
    )
    .expect("create stack");
}

/// A state machine on the emulator that passes its input through (one Pass state),
/// standing in for the run state machine; returns its ARN.
pub fn state_machine(aws: &Aws, name: &str) -> String {
    let client = aws_sdk_sfn::Client::new(aws.config());
    let definition = serde_json::json!({
        "StartAt": "Prepare",
        "States": { "Prepare": { "Type": "Pass", "Result": {"run_id": "r1"}, "ResultPath": "$.run", "End": true } }
    });
    let out = aws
        .block_on(
            client
                .create_state_machine()
                .name(name)
                .definition(definition.to_string())
                .role_arn(emulator_role(&format!("{name}-role")))
                .send(),
        )
        .expect("create state machine");
    out.state_machine_arn().to_string()
}
