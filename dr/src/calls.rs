//! What IAM must allow for the DynamoDB and AWS Backup calls of the product API, the
//! post-backup function and the drill: the resolvers [`tandem_sdk::calls`] records
//! them with, and the clients built with them.
//!
//! From AWS's Service Authorization Reference:
//! <https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html>,
//! <https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsbackup.html>,
//! and DynamoDB's "Restoring a DynamoDB table" pages, which name the item-level
//! actions a restore performs on its target table.

use tandem_sdk::calls::{Need, Operation};

/// A DynamoDB client on `config` in `region` (or the config's), its calls recorded
/// when the process records them.
pub fn dynamodb_client(config: &aws_config::SdkConfig, region: Option<&str>) -> aws_sdk_dynamodb::Client {
    let mut b = tandem_sdk::instrument!(aws_sdk_dynamodb::config::Builder::from(config), dynamodb);
    if let Some(r) = region {
        b = b.region(aws_config::Region::new(r.to_string()));
    }
    aws_sdk_dynamodb::Client::from_conf(b.build())
}

/// An AWS Backup client on `config` in `region` (or the config's), its calls
/// recorded when the process records them.
pub fn backup_client(config: &aws_config::SdkConfig, region: Option<&str>) -> aws_sdk_backup::Client {
    let mut b = tandem_sdk::instrument!(aws_sdk_backup::config::Builder::from(config), backup);
    if let Some(r) = region {
        b = b.region(aws_config::Region::new(r.to_string()));
    }
    aws_sdk_backup::Client::from_conf(b.build())
}

/// A CloudWatch client on `config` in `region` (or the config's), its calls recorded
/// when the process records them.
#[cfg(feature = "drill-aws")]
pub fn cloudwatch_client(config: &aws_config::SdkConfig, region: Option<&str>) -> aws_sdk_cloudwatch::Client {
    let mut b = tandem_sdk::instrument!(aws_sdk_cloudwatch::config::Builder::from(config), cloudwatch);
    if let Some(r) = region {
        b = b.region(aws_config::Region::new(r.to_string()));
    }
    aws_sdk_cloudwatch::Client::from_conf(b.build())
}

/// The actions a restore performs on the table it creates (DynamoDB's restore
/// documentation: "the IAM policy must allow ... on the target table").
pub const RESTORE_TARGET_ACTIONS: [&str; 7] = [
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:UpdateItem",
];

/// What adding a replica needs in the replica's region.
pub const REPLICA_CREATE_ACTIONS: [&str; 9] = [
    "dynamodb:CreateTable",
    "dynamodb:CreateTableReplica",
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:UpdateItem",
];

/// What removing a replica needs in the replica's region.
pub const REPLICA_DELETE_ACTIONS: [&str; 2] = ["dynamodb:DeleteTable", "dynamodb:DeleteTableReplica"];

/// DynamoDB: table actions act on the table named in the input; backups are
/// `table/NAME/backup/ID`; a restore acts on its source and creates its target.
pub fn dynamodb(op: &Operation<'_>) -> Option<Vec<Need>> {
    use aws_sdk_dynamodb::operation as o;
    let table = |name: Option<&str>| {
        let name = name.unwrap_or_default();
        op.arn("dynamodb", &format!("table/{name}"), name)
    };
    let on_table = |action: &str, name: Option<&str>| Some(vec![Need::new(action, table(name))]);
    let restore_target = |target: String, mut needs: Vec<Need>| {
        needs.extend(
            RESTORE_TARGET_ACTIONS
                .iter()
                .map(|a| Need::new(a, target.clone())),
        );
        Some(needs)
    };
    // The operations that act on the table their input names: the action is the
    // operation's own name.
    macro_rules! on_named_table {
        ($($name:literal => $input:ty),* $(,)?) => {
            match op.name {
                $($name => return on_table(concat!("dynamodb:", $name), op.input::<$input>()?.table_name()),)*
                _ => {}
            }
        };
    }
    on_named_table!(
        "GetItem" => o::get_item::GetItemInput,
        "PutItem" => o::put_item::PutItemInput,
        "UpdateItem" => o::update_item::UpdateItemInput,
        "DeleteItem" => o::delete_item::DeleteItemInput,
        "Scan" => o::scan::ScanInput,
        "Query" => o::query::QueryInput,
        "CreateTable" => o::create_table::CreateTableInput,
        "DescribeTable" => o::describe_table::DescribeTableInput,
        "DeleteTable" => o::delete_table::DeleteTableInput,
        "DescribeContinuousBackups" => o::describe_continuous_backups::DescribeContinuousBackupsInput,
        "UpdateContinuousBackups" => o::update_continuous_backups::UpdateContinuousBackupsInput,
        "CreateBackup" => o::create_backup::CreateBackupInput,
    );
    match op.name {
        "BatchGetItem" => {
            let i = op.input::<o::batch_get_item::BatchGetItemInput>()?;
            let mut tables: Vec<&String> = i.request_items()?.keys().collect();
            tables.sort();
            Some(
                tables
                    .into_iter()
                    .map(|t| Need::new("dynamodb:BatchGetItem", table(Some(t))))
                    .collect(),
            )
        }
        "BatchWriteItem" => {
            let i = op.input::<o::batch_write_item::BatchWriteItemInput>()?;
            let mut tables: Vec<&String> = i.request_items()?.keys().collect();
            tables.sort();
            Some(
                tables
                    .into_iter()
                    .map(|t| Need::new("dynamodb:BatchWriteItem", table(Some(t))))
                    .collect(),
            )
        }
        "UpdateTable" => {
            let i = op.input::<o::update_table::UpdateTableInput>()?;
            let name = i.table_name().unwrap_or_default();
            let mut needs = vec![Need::new("dynamodb:UpdateTable", table(Some(name)))];
            // Adding or removing a replica (global tables version 2019.11.21) acts in
            // the replica's region too: creating one needs CreateTable,
            // CreateTableReplica and the item actions there, removing one DeleteTable
            // and DeleteTableReplica (DynamoDB's "Using IAM with global tables").
            for u in i.replica_updates() {
                let (actions, region): (&[&str], _) = match (u.create(), u.delete()) {
                    (Some(c), _) => (&REPLICA_CREATE_ACTIONS, c.region_name()),
                    (None, Some(d)) => (&REPLICA_DELETE_ACTIONS, d.region_name()),
                    (None, None) => continue,
                };
                let there = op.arn_in(region, "dynamodb", &format!("table/{name}"), "");
                needs.extend(actions.iter().map(|a| Need::new(a, there.clone())));
            }
            Some(needs)
        }
        "DescribeBackup" => Some(vec![Need::new(
            "dynamodb:DescribeBackup",
            op.input::<o::describe_backup::DescribeBackupInput>()?
                .backup_arn()
                .unwrap_or_default(),
        )]),
        "DeleteBackup" => Some(vec![Need::new(
            "dynamodb:DeleteBackup",
            op.input::<o::delete_backup::DeleteBackupInput>()?
                .backup_arn()
                .unwrap_or_default(),
        )]),
        "RestoreTableFromBackup" => {
            let i = op.input::<o::restore_table_from_backup::RestoreTableFromBackupInput>()?;
            let target = table(i.target_table_name());
            restore_target(
                target.clone(),
                vec![
                    Need::new(
                        "dynamodb:RestoreTableFromBackup",
                        i.backup_arn().unwrap_or_default(),
                    ),
                    Need::new("dynamodb:RestoreTableFromBackup", target),
                ],
            )
        }
        "RestoreTableToPointInTime" => {
            let i = op.input::<o::restore_table_to_point_in_time::RestoreTableToPointInTimeInput>()?;
            let source = match i.source_table_arn() {
                Some(arn) => arn.to_string(),
                None => table(i.source_table_name()),
            };
            let target = table(i.target_table_name());
            restore_target(
                target.clone(),
                vec![
                    Need::new("dynamodb:RestoreTableToPointInTime", source),
                    Need::new("dynamodb:RestoreTableToPointInTime", target),
                ],
            )
        }
        _ => None,
    }
}

/// AWS Backup: jobs are started on a vault or a recovery point and pass a role;
/// describing a job and listing copy jobs support no resource-level permissions.
pub fn backup(op: &Operation<'_>) -> Option<Vec<Need>> {
    use aws_sdk_backup::operation as o;
    let vault = |name: Option<&str>| {
        let name = name.unwrap_or_default();
        op.arn("backup", &format!("backup-vault:{name}"), name)
    };
    let point = |arn: Option<&str>| arn.unwrap_or_default().to_string();
    let pass = |role: Option<&str>| Need::new("iam:PassRole", op.role_arn(role.unwrap_or_default()));
    Some(match op.name {
        "StartBackupJob" => {
            let i = op.input::<o::start_backup_job::StartBackupJobInput>()?;
            vec![
                Need::new("backup:StartBackupJob", vault(i.backup_vault_name())),
                pass(i.iam_role_arn()),
            ]
        }
        "StartCopyJob" => {
            let i = op.input::<o::start_copy_job::StartCopyJobInput>()?;
            vec![
                Need::new("backup:StartCopyJob", point(i.recovery_point_arn())),
                pass(i.iam_role_arn()),
            ]
        }
        "StartRestoreJob" => {
            let i = op.input::<o::start_restore_job::StartRestoreJobInput>()?;
            vec![
                Need::new("backup:StartRestoreJob", point(i.recovery_point_arn())),
                pass(i.iam_role_arn()),
            ]
        }
        "DescribeBackupJob" => vec![Need::new("backup:DescribeBackupJob", "*")],
        "DescribeCopyJob" => vec![Need::new("backup:DescribeCopyJob", "*")],
        "DescribeRestoreJob" => vec![Need::new("backup:DescribeRestoreJob", "*")],
        "ListCopyJobs" => vec![Need::new("backup:ListCopyJobs", "*")],
        "ListBackupJobs" => vec![Need::new("backup:ListBackupJobs", "*")],
        "GetBackupPlan" => {
            let id = op
                .input::<o::get_backup_plan::GetBackupPlanInput>()?
                .backup_plan_id()
                .unwrap_or_default();
            vec![Need::new(
                "backup:GetBackupPlan",
                op.arn("backup", &format!("backup-plan:{id}"), id),
            )]
        }
        "ListRecoveryPointsByBackupVault" => vec![Need::new(
            "backup:ListRecoveryPointsByBackupVault",
            vault(
                op.input::<o::list_recovery_points_by_backup_vault::ListRecoveryPointsByBackupVaultInput>()?
                    .backup_vault_name(),
            ),
        )],
        "DescribeRecoveryPoint" => vec![Need::new(
            "backup:DescribeRecoveryPoint",
            point(
                op.input::<o::describe_recovery_point::DescribeRecoveryPointInput>()?
                    .recovery_point_arn(),
            ),
        )],
        "DeleteRecoveryPoint" => vec![Need::new(
            "backup:DeleteRecoveryPoint",
            point(
                op.input::<o::delete_recovery_point::DeleteRecoveryPointInput>()?
                    .recovery_point_arn(),
            ),
        )],
        _ => return None,
    })
}

/// A client of `$service` on `config` in `region` (or the config's), its calls
/// recorded with `$resolver` when the process records them.
#[cfg(feature = "drill-aws")]
macro_rules! client {
    ($name:ident, $service:ident, $resolver:ident) => {
        #[doc = concat!("A ", stringify!($service), " client on `config` in `region` (or the config's), its calls recorded when the process records them.")]
        pub fn $name(config: &aws_config::SdkConfig, region: Option<&str>) -> $service::Client {
            let mut b = tandem_sdk::instrument!($service::config::Builder::from(config), $resolver);
            if let Some(r) = region {
                b = b.region(aws_config::Region::new(r.to_string()));
            }
            $service::Client::from_conf(b.build())
        }
    };
}

#[cfg(feature = "drill-aws")]
client!(lambda_client, aws_sdk_lambda, lambda);
#[cfg(feature = "drill-aws")]
client!(route53_client, aws_sdk_route53, route53);
#[cfg(feature = "drill-aws")]
client!(secrets_client, aws_sdk_secretsmanager, secretsmanager);

/// Lambda (<https://docs.aws.amazon.com/service-authorization/latest/reference/list_awslambda.html>):
/// the failover switches the standby's function on and off by its reserved
/// concurrency, on the function's ARN.
#[cfg(feature = "drill-aws")]
pub fn lambda(op: &Operation<'_>) -> Option<Vec<Need>> {
    use aws_sdk_lambda::operation as o;
    let function = |name: Option<&str>| {
        let name = name.unwrap_or_default();
        op.arn("lambda", &format!("function:{name}"), name)
    };
    let (action, name) = match op.name {
        "PutFunctionConcurrency" => (
            "lambda:PutFunctionConcurrency",
            op.input::<o::put_function_concurrency::PutFunctionConcurrencyInput>()?
                .function_name(),
        ),
        "DeleteFunctionConcurrency" => (
            "lambda:DeleteFunctionConcurrency",
            op.input::<o::delete_function_concurrency::DeleteFunctionConcurrencyInput>()?
                .function_name(),
        ),
        "GetFunctionConcurrency" => (
            "lambda:GetFunctionConcurrency",
            op.input::<o::get_function_concurrency::GetFunctionConcurrencyInput>()?
                .function_name(),
        ),
        _ => return None,
    };
    Some(vec![Need::new(action, function(name))])
}

/// Route 53 (<https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonroute53.html>):
/// health checks are global resources, `arn:aws:route53:::healthcheck/ID`.
#[cfg(feature = "drill-aws")]
pub fn route53(op: &Operation<'_>) -> Option<Vec<Need>> {
    use aws_sdk_route53::operation as o;
    let check = |id: Option<&str>| {
        format!(
            "arn:{}:route53:::healthcheck/{}",
            op.partition(),
            id.unwrap_or_default()
        )
    };
    let (action, id) = match op.name {
        "UpdateHealthCheck" => (
            "route53:UpdateHealthCheck",
            op.input::<o::update_health_check::UpdateHealthCheckInput>()?
                .health_check_id(),
        ),
        "GetHealthCheck" => (
            "route53:GetHealthCheck",
            op.input::<o::get_health_check::GetHealthCheckInput>()?
                .health_check_id(),
        ),
        "GetHealthCheckStatus" => (
            "route53:GetHealthCheckStatus",
            op.input::<o::get_health_check_status::GetHealthCheckStatusInput>()?
                .health_check_id(),
        ),
        _ => return None,
    };
    Some(vec![Need::new(action, check(id))])
}

/// Secrets Manager (<https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssecretsmanager.html>):
/// a secret named by its name is, to IAM, its ARN with the six random characters
/// Secrets Manager appends (`NAME-??????`).
#[cfg(feature = "drill-aws")]
pub fn secretsmanager(op: &Operation<'_>) -> Option<Vec<Need>> {
    use aws_sdk_secretsmanager::operation as o;
    match op.name {
        "GetSecretValue" => {
            let id = op
                .input::<o::get_secret_value::GetSecretValueInput>()?
                .secret_id()
                .unwrap_or_default();
            let arn = if id.starts_with("arn:") {
                id.to_string()
            } else {
                op.arn("secretsmanager", &format!("secret:{id}-??????"), id)
            };
            Some(vec![Need::new("secretsmanager:GetSecretValue", arn)])
        }
        _ => None,
    }
}

/// CloudWatch (<https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatch.html>):
/// PutMetricData supports no resource-level permission (`*`); the policy limits it
/// to the namespace with the `cloudwatch:namespace` condition key.
#[cfg(feature = "drill-aws")]
pub fn cloudwatch(op: &Operation<'_>) -> Option<Vec<Need>> {
    match op.name {
        "PutMetricData" => Some(vec![Need::new("cloudwatch:PutMetricData", "*")]),
        _ => None,
    }
}
