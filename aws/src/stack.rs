//! The deployed stacks' outputs (`--stack NAME`): what the CDK app in `infra/` exports
//! (queues, job definition, bucket, state machine, table, vaults, roles) read with
//! CloudFormation's `DescribeStacks`, so nobody copies names by hand.

use std::collections::BTreeMap;

pub use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::types::StackStatus;
use tandem_core::names::{PerStage, Stage};
use tandem_core::{Error, Result};

use crate::sdk_message;

/// A CloudFormation client on `config`, in `region` when given (a stack is read in
/// the region it is deployed in).
pub fn client(config: &aws_config::SdkConfig, region: Option<&str>) -> Client {
    let mut b = crate::instrument!(
        aws_sdk_cloudformation::config::Builder::from(config),
        crate::calls::resolve::cloudformation
    );
    if let Some(r) = region {
        b = b.region(aws_sdk_cloudformation::config::Region::new(r.to_string()));
    }
    Client::from_conf(b.build())
}

/// The outputs of one deployed stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackOutputs {
    /// The stack's name.
    pub stack: String,
    /// Output key to value.
    pub outputs: BTreeMap<String, String>,
}

impl StackOutputs {
    /// Reads the outputs of stack `name`. A stack that does not exist, or that is
    /// not in a usable state (being created, rolled back, deleted), is an error that
    /// says so.
    pub async fn load(client: &Client, name: &str) -> Result<Self> {
        let out = client
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| {
                let message = sdk_message(&e);
                if message.contains("does not exist") {
                    Error::NotFound {
                        what: format!("stack {name:?}"),
                        location: format!(
                            "{} (deploy it with `cd infra && npx cdk deploy {name}`, or check AWS_REGION)",
                            client
                                .config()
                                .region()
                                .map(|r| r.to_string())
                                .unwrap_or_default()
                        ),
                    }
                } else {
                    Error::Backend {
                        op: "describe stack",
                        location: name.to_string(),
                        message,
                    }
                }
            })?;
        let stack = out.stacks().first().ok_or_else(|| Error::NotFound {
            what: format!("stack {name:?}"),
            location: "DescribeStacks returned no stack".into(),
        })?;
        let status = stack.stack_status().cloned();
        let usable = matches!(
            status,
            Some(
                StackStatus::CreateComplete
                    | StackStatus::UpdateComplete
                    | StackStatus::UpdateRollbackComplete
                    | StackStatus::ImportComplete
                    | StackStatus::UpdateInProgress
                    | StackStatus::UpdateCompleteCleanupInProgress
            )
        );
        if !usable {
            return Err(Error::InvalidInput(format!(
                "stack {name:?} is {}: its outputs cannot be used until it is deployed",
                status
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "in an unknown state".into())
            )));
        }
        let outputs = stack
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
            .collect();
        Ok(Self {
            stack: name.to_string(),
            outputs,
        })
    }

    /// The value of output `key`; an error naming the stack, the key and the outputs
    /// the stack does have.
    pub fn get(&self, key: &str) -> Result<&str> {
        self.outputs.get(key).map(String::as_str).ok_or_else(|| {
            let have: Vec<&str> = self.outputs.keys().map(String::as_str).collect();
            Error::InvalidInput(format!(
                "stack {:?} has no output {key:?} (it has: {}): is it the right tandem stack?",
                self.stack,
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            ))
        })
    }
}

/// What the pipeline stack exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineOutputs {
    /// Job queue per stage.
    pub queues: PerStage<String>,
    /// The worker's job definition (ARN).
    pub job_definition: String,
    /// Where egress puts results (`s3://BUCKET/runs`).
    pub bucket_url: String,
    /// The run state machine.
    pub state_machine_arn: String,
    /// Where the volume is mounted in the containers and lambdas.
    pub volume_path: String,
}

impl PipelineOutputs {
    /// Picks the pipeline's outputs from a stack's.
    pub fn from_outputs(o: &StackOutputs) -> Result<Self> {
        let queue = |s: Stage| -> Result<String> {
            let key = match s {
                Stage::Procure => "ProcureQueue",
                Stage::Process => "ProcessQueue",
                Stage::Egress => "EgressQueue",
            };
            o.get(key).map(str::to_string)
        };
        Ok(Self {
            queues: PerStage([
                queue(Stage::Procure)?,
                queue(Stage::Process)?,
                queue(Stage::Egress)?,
            ]),
            job_definition: o.get("JobDefinition")?.to_string(),
            bucket_url: o.get("BucketUrl")?.to_string(),
            state_machine_arn: o.get("StateMachineArn")?.to_string(),
            volume_path: o.get("VolumePath")?.to_string(),
        })
    }
}

/// What the disaster-recovery stack exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrOutputs {
    /// The product API's stage URL.
    pub api_url: String,
    /// The production table (never touched by the drill).
    pub table_name: String,
    /// The table the API serves: the production table, or a restored one named by
    /// `tandem:servedTable`.
    pub served_table: String,
    /// The usage plan's requests a second per key (`tandem:apiRatePerSecond`).
    pub api_rate_per_second: u32,
    /// Its ARN.
    pub table_arn: String,
    /// AWS Backup vault in the primary region.
    pub primary_vault: String,
    /// AWS Backup vault in the recovery region (name).
    pub recovery_vault: String,
    /// AWS Backup vault in the recovery region (ARN).
    pub recovery_vault_arn: String,
    /// The recovery region.
    pub recovery_region: String,
    /// The role AWS Backup assumes.
    pub backup_role_arn: String,
    /// The AWS Backup plan (its daily rule copies to the recovery vault).
    pub backup_plan_id: String,
    /// The standby stack's name (deployed in the recovery region).
    pub standby_stack: String,
}

impl DrOutputs {
    /// Picks the DR stack's outputs from a stack's.
    pub fn from_outputs(o: &StackOutputs) -> Result<Self> {
        let get = |k: &str| o.get(k).map(str::to_string);
        let api_url = get("ApiUrl")?;
        let table_name = get("TableName")?;
        Ok(Self {
            api_url,
            // Stacks deployed before the output existed served their own table.
            served_table: get("ServedTable").unwrap_or_else(|_| table_name.clone()),
            // Stacks deployed before the output existed had the default, 50.
            api_rate_per_second: match o.get("ApiRatePerSecond") {
                Err(_) => 50,
                Ok(v) => v.parse().ok().filter(|r| *r > 0).ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "stack {:?}'s output ApiRatePerSecond {v:?} is not a positive whole number",
                        o.stack
                    ))
                })?,
            },
            table_name,
            table_arn: get("TableArn")?,
            primary_vault: get("PrimaryVaultName")?,
            recovery_vault: get("RecoveryVaultName")?,
            recovery_vault_arn: get("RecoveryVaultArn")?,
            recovery_region: get("RecoveryRegion")?,
            backup_role_arn: get("BackupRoleArn")?,
            backup_plan_id: get("BackupPlanId")?,
            standby_stack: get("StandbyStackName")?,
        })
    }
}

/// What the standby stack (in the recovery region) exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandbyOutputs {
    /// `pilot-light` or `warm-standby`.
    pub mode: String,
    /// The standby's product-api function.
    pub function: String,
    /// The standby's API (its stage URL).
    pub api_url: String,
    /// The primary's API (its stage URL).
    pub primary_api_url: String,
    /// The name clients use when the deployment has a hosted zone.
    pub client_url: Option<String>,
    /// The Route 53 health check of the primary's `/health`.
    pub health_check: String,
    /// Whether the failover record follows the health check (a hosted zone).
    pub dns: bool,
    /// The secret holding the API key (replicated here).
    pub api_key_secret: String,
    /// The served table (its replica here).
    pub table_name: String,
}

impl StandbyOutputs {
    /// Picks the standby stack's outputs from a stack's.
    pub fn from_outputs(o: &StackOutputs) -> Result<Self> {
        let get = |k: &str| o.get(k).map(str::to_string);
        let client_url = o.outputs.get("ClientUrl").cloned().filter(|u| !u.is_empty());
        Ok(Self {
            mode: get("StandbyMode")?,
            function: get("StandbyFunctionName")?,
            api_url: get("StandbyApiUrl")?,
            primary_api_url: get("PrimaryApiUrl")?,
            dns: client_url.is_some(),
            client_url,
            health_check: get("HealthCheckId")?,
            api_key_secret: get("ApiKeySecretName")?,
            table_name: get("TableName")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::operation::describe_stacks::{DescribeStacksError, DescribeStacksOutput};
    use aws_sdk_cloudformation::types::{Output, Stack};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn stack(status: StackStatus, outputs: &[(&str, &str)]) -> Stack {
        Stack::builder()
            .stack_name("PipelineStack")
            .stack_status(status)
            .creation_time(aws_smithy_types::DateTime::from_secs(0))
            .set_outputs(Some(
                outputs
                    .iter()
                    .map(|(k, v)| Output::builder().output_key(*k).output_value(*v).build())
                    .collect(),
            ))
            .build()
    }

    fn pipeline_outputs() -> Vec<(&'static str, &'static str)> {
        vec![
            ("ProcureQueue", "q1"),
            ("ProcessQueue", "q2"),
            ("EgressQueue", "q3"),
            ("JobDefinition", "arn:aws:batch:us-east-2:1:job-definition/w:1"),
            ("BucketUrl", "s3://b/runs"),
            ("StateMachineArn", "arn:aws:states:us-east-2:1:stateMachine:run"),
            ("VolumePath", "/mnt/efs"),
        ]
    }

    #[tokio::test]
    async fn a_deployed_pipeline_stack_names_its_queues_and_definition() {
        let d = mock!(Client::describe_stacks).then_output(|| {
            DescribeStacksOutput::builder()
                .stacks(stack(StackStatus::UpdateComplete, &pipeline_outputs()))
                .build()
        });
        let calls = crate::calls::contract::Calls::new("tandem start");
        let client = mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, [&d], |c| c
            .interceptor(calls.recorder(crate::calls::resolve::cloudformation)));
        let o = StackOutputs::load(&client, "PipelineStack").await.unwrap();
        let p = PipelineOutputs::from_outputs(&o).unwrap();
        assert_eq!(p.queues, PerStage(["q1".into(), "q2".into(), "q3".into()]));
        assert_eq!(p.volume_path, "/mnt/efs");
        // The DR stack's outputs are not in it: the error lists what is.
        let err = DrOutputs::from_outputs(&o).unwrap_err().to_string();
        assert!(
            err.contains("no output \"ApiUrl\"") && err.contains("ProcureQueue"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_missing_or_unfinished_stack_is_named() {
        let missing = mock!(Client::describe_stacks).then_error(|| {
            DescribeStacksError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("ValidationError")
                    .message("Stack with id Nope does not exist")
                    .build(),
            )
        });
        let calls = crate::calls::contract::Calls::new("tandem start");
        let client = mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, [&missing], |c| c
            .interceptor(calls.recorder(crate::calls::resolve::cloudformation)));
        let err = StackOutputs::load(&client, "Nope").await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(err.to_string().contains("cdk deploy Nope"), "{err}");
        let rolled_back = mock!(Client::describe_stacks).then_output(|| {
            DescribeStacksOutput::builder()
                .stacks(stack(StackStatus::RollbackComplete, &[]))
                .build()
        });
        let calls = crate::calls::contract::Calls::new("tandem start");
        let client = mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, [&rolled_back], |c| c
            .interceptor(calls.recorder(crate::calls::resolve::cloudformation)));
        let err = StackOutputs::load(&client, "PipelineStack")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("is ROLLBACK_COMPLETE"), "{err}");
    }
}
