//! Every AWS call a process makes, as the IAM actions and resources it needs: the
//! recorder and the contract live in [`tandem_sdk::calls`] (re-exported here); the
//! resolvers of the services this crate calls (S3, Batch, Step Functions,
//! CloudFormation) are in [`resolve`].

pub use tandem_sdk::calls::*;

/// The resolvers of the services tandem-aws calls.
pub mod resolve {
    use super::{Need, Operation};

    /// S3 (<https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html>):
    /// HeadBucket and ListObjectsV2 need `s3:ListBucket` on the bucket; the parts of
    /// a multipart upload are `s3:PutObject` on the object.
    pub fn s3(op: &Operation<'_>) -> Option<Vec<Need>> {
        use aws_sdk_s3::operation as o;
        let p = op.partition();
        let bucket = |b: Option<&str>| format!("arn:{p}:s3:::{}", b.unwrap_or_default());
        let object = |b: Option<&str>, k: Option<&str>| {
            format!("arn:{p}:s3:::{}/{}", b.unwrap_or_default(), k.unwrap_or_default())
        };
        let one = |action: &str, resource: String| Some(vec![Need::new(action, resource)]);
        match op.name {
            "HeadBucket" => one(
                "s3:ListBucket",
                bucket(op.input::<o::head_bucket::HeadBucketInput>()?.bucket()),
            ),
            "ListObjectsV2" => one(
                "s3:ListBucket",
                bucket(op.input::<o::list_objects_v2::ListObjectsV2Input>()?.bucket()),
            ),
            "GetObject" => {
                let i = op.input::<o::get_object::GetObjectInput>()?;
                one("s3:GetObject", object(i.bucket(), i.key()))
            }
            "PutObject" => {
                let i = op.input::<o::put_object::PutObjectInput>()?;
                one("s3:PutObject", object(i.bucket(), i.key()))
            }
            "CreateMultipartUpload" => {
                let i = op.input::<o::create_multipart_upload::CreateMultipartUploadInput>()?;
                one("s3:PutObject", object(i.bucket(), i.key()))
            }
            "UploadPart" => {
                let i = op.input::<o::upload_part::UploadPartInput>()?;
                one("s3:PutObject", object(i.bucket(), i.key()))
            }
            "CompleteMultipartUpload" => {
                let i = op.input::<o::complete_multipart_upload::CompleteMultipartUploadInput>()?;
                one("s3:PutObject", object(i.bucket(), i.key()))
            }
            "AbortMultipartUpload" => {
                let i = op.input::<o::abort_multipart_upload::AbortMultipartUploadInput>()?;
                one("s3:AbortMultipartUpload", object(i.bucket(), i.key()))
            }
            "DeleteObject" => {
                let i = op.input::<o::delete_object::DeleteObjectInput>()?;
                one("s3:DeleteObject", object(i.bucket(), i.key()))
            }
            _ => None,
        }
    }

    /// AWS Batch (<https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsbatch.html>):
    /// SubmitJob is authorized on the job queue, the job definition and the job;
    /// DescribeJobs, DescribeJobDefinitions and ListJobs support no resource-level
    /// permissions; TerminateJob
    /// acts on the job.
    pub fn batch(op: &Operation<'_>) -> Option<Vec<Need>> {
        use aws_sdk_batch::operation as o;
        match op.name {
            "SubmitJob" => {
                let i = op.input::<o::submit_job::SubmitJobInput>()?;
                let queue = i.job_queue().unwrap_or_default();
                let definition = i.job_definition().unwrap_or_default();
                // The reference marks the job itself (`job/*`: its id is made by the
                // call) as a required resource type too.
                Some(vec![
                    Need::new(
                        "batch:SubmitJob",
                        op.arn("batch", &format!("job-queue/{queue}"), queue),
                    ),
                    Need::new(
                        "batch:SubmitJob",
                        op.arn("batch", &format!("job-definition/{definition}"), definition),
                    ),
                    Need::new("batch:SubmitJob", op.arn("batch", "job/*", "")),
                ])
            }
            "DescribeJobs" => Some(vec![Need::new("batch:DescribeJobs", "*")]),
            "DescribeJobDefinitions" => Some(vec![Need::new("batch:DescribeJobDefinitions", "*")]),
            "ListJobs" => Some(vec![Need::new("batch:ListJobs", "*")]),
            "TerminateJob" => {
                let id = op
                    .input::<o::terminate_job::TerminateJobInput>()?
                    .job_id()
                    .unwrap_or_default();
                Some(vec![Need::new(
                    "batch:TerminateJob",
                    op.arn("batch", &format!("job/{id}"), id),
                )])
            }
            _ => None,
        }
    }

    /// Step Functions (<https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html>):
    /// StartExecution acts on the state machine, DescribeExecution and
    /// GetExecutionHistory on the execution.
    #[cfg(feature = "sfn")]
    pub fn sfn(op: &Operation<'_>) -> Option<Vec<Need>> {
        use aws_sdk_sfn::operation as o;
        let arn = |a: Option<&str>| a.unwrap_or_default().to_string();
        let (action, resource) = match op.name {
            "StartExecution" => (
                "states:StartExecution",
                arn(op
                    .input::<o::start_execution::StartExecutionInput>()?
                    .state_machine_arn()),
            ),
            "DescribeExecution" => (
                "states:DescribeExecution",
                arn(op
                    .input::<o::describe_execution::DescribeExecutionInput>()?
                    .execution_arn()),
            ),
            "GetExecutionHistory" => (
                "states:GetExecutionHistory",
                arn(op
                    .input::<o::get_execution_history::GetExecutionHistoryInput>()?
                    .execution_arn()),
            ),
            "StopExecution" => (
                "states:StopExecution",
                arn(op
                    .input::<o::stop_execution::StopExecutionInput>()?
                    .execution_arn()),
            ),
            _ => return None,
        };
        Some(vec![Need::new(action, resource)])
    }

    /// CloudFormation (<https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscloudformation.html>):
    /// DescribeStacks acts on the stack (`stack/NAME/ID`).
    #[cfg(feature = "stacks")]
    pub fn cloudformation(op: &Operation<'_>) -> Option<Vec<Need>> {
        use aws_sdk_cloudformation::operation as o;
        match op.name {
            "DescribeStacks" => {
                let name = op
                    .input::<o::describe_stacks::DescribeStacksInput>()?
                    .stack_name()
                    .unwrap_or_default();
                Some(vec![Need::new(
                    "cloudformation:DescribeStacks",
                    op.arn("cloudformation", &format!("stack/{name}/*"), name),
                )])
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::put_object::PutObjectOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    #[test]
    fn a_recorded_call_names_its_action_and_resource() {
        let put = mock!(aws_sdk_s3::Client::put_object).then_output(|| PutObjectOutput::builder().build());
        let log = CallLog::memory();
        let rec = Recorder::new(log.clone(), "test", resolve::s3);
        let client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&put], |c| c
            .region(aws_config::Region::new("eu-west-1"))
            .interceptor(rec.clone()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(client.put_object().bucket("b").key("runs/x").send())
            .unwrap();
        assert_eq!(
            log.calls(),
            vec![Call {
                component: "test".into(),
                service: "S3".into(),
                operation: "PutObject".into(),
                needs: vec![Need::new("s3:PutObject", "arn:aws:s3:::b/runs/x")],
            }]
        );
    }
}
