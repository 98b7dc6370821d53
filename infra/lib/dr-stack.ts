// The disaster-recovery stacks of the product API.
//
// - DrRecoveryStack (recovery region, us-east-1 by default): the backup vault copies
//   land in, encrypted with its own KMS key.
// - DisasterRecoveryStack (primary region): the Product table (PITR, a replica in the
//   recovery region), the product API (one Rust function behind a REST API with an API
//   key, usage plan, request validation, access logs and a WAF), AWS Backup (a vault, one
//   plan with the daily rule and a copy action to the recovery vault) and the
//   post-backup function.

import * as cdk from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import { ContractBinding, operatorPolicy } from './contract';
import { acknowledge, arnFinding } from './nag';
import { Removal, TandemConfig, dataRemoval } from './config';
import { TandemFunction } from './rust-lambda';

/** The daily backup: 09:10 UTC, kept 30 days (the seed's rule, once). */
export const BACKUP_SCHEDULE = events.Schedule.cron({ minute: '10', hour: '9' });
/** The safety-net run of the post-backup function: 10:00 UTC, after the backup window. */
export const POST_BACKUP_SCHEDULE = events.Schedule.cron({ minute: '0', hour: '10' });
export const RETENTION_DAYS = 30;
/** Vault names are fixed so the primary region can name the recovery vault's ARN. */
export const PRIMARY_VAULT = 'tandem-dr-primary';
export const RECOVERY_VAULT = 'tandem-dr-recovery';
/** The scratch tables `tandem dr-drill` creates and restores into (dr/src/drill). */
export const DRILL_TABLE_PREFIX = 'Product-drill-';
/** The tables the runbook restores into (docs/dr.md): the backup role may create them. */
export const RESTORED_TABLE_PREFIX = 'Product-restored';

export interface DrStackProps extends cdk.StackProps {
  readonly config: TandemConfig;
}

function vaultKey(scope: Construct, removal: cdk.RemovalPolicy): kms.Key {
  return new kms.Key(scope, 'VaultKey', {
    description: 'tandem DR backup vault',
    enableKeyRotation: true,
    removalPolicy: removal,
    pendingWindow: cdk.Duration.days(7),
  });
}

/** The recovery region's vault. */
export class DrRecoveryStack extends cdk.Stack {
  readonly vault: backup.BackupVault;

  constructor(scope: Construct, id: string, props: DrStackProps) {
    super(scope, id, props);
    const removal = dataRemoval(props.config.removal);
    this.vault = new backup.BackupVault(this, 'Vault', {
      backupVaultName: RECOVERY_VAULT,
      encryptionKey: vaultKey(this, removal),
      removalPolicy: removal,
    });
    new cdk.CfnOutput(this, 'RecoveryVaultName', { value: this.vault.backupVaultName });
    new cdk.CfnOutput(this, 'RecoveryVaultArn', { value: this.vault.backupVaultArn });
  }
}

/** The primary region's part. */
export class DisasterRecoveryStack extends cdk.Stack {
  readonly table: dynamodb.TableV2;
  readonly api: apigw.RestApi;
  /** This stack's part of the IAM contract (iam/contract.json). */
  readonly contract: ContractBinding;

  constructor(scope: Construct, id: string, props: DrStackProps) {
    super(scope, id, props);
    const config = props.config;
    const removal = dataRemoval(config.removal);
    const prod = config.removal === Removal.Prod;
    this.contract = new ContractBinding(this);

    this.table = new dynamodb.TableV2(this, 'Product', {
      partitionKey: { name: 'product_id', type: dynamodb.AttributeType.STRING },
      billing: dynamodb.Billing.onDemand(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true, recoveryPeriodInDays: 35 },
      replicas: [{ region: config.recoveryRegion, pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true, recoveryPeriodInDays: 35 } }],
      deletionProtection: prod,
      encryption: dynamodb.TableEncryptionV2.awsManagedKey(),
      removalPolicy: removal,
    });
    const table = this.table;

    // AWS Backup: a vault here, one plan, one daily rule whose copy action puts every
    // recovery point in the recovery region's vault with its own lifecycle.
    const vault = new backup.BackupVault(this, 'Vault', {
      backupVaultName: PRIMARY_VAULT,
      encryptionKey: vaultKey(this, removal),
      removalPolicy: removal,
    });
    const recoveryVaultArn = this.formatArn({
      service: 'backup',
      region: config.recoveryRegion,
      resource: 'backup-vault',
      resourceName: RECOVERY_VAULT,
      arnFormat: cdk.ArnFormat.COLON_RESOURCE_NAME,
    });
    const recoveryVault = backup.BackupVault.fromBackupVaultArn(this, 'RecoveryVault', recoveryVaultArn);
    const plan = new backup.BackupPlan(this, 'Plan', { backupPlanName: 'tandem-dr' });
    plan.addRule(
      new backup.BackupPlanRule({
        ruleName: 'daily',
        backupVault: vault,
        scheduleExpression: BACKUP_SCHEDULE,
        deleteAfter: cdk.Duration.days(RETENTION_DAYS),
        copyActions: [{ destinationBackupVault: recoveryVault, deleteAfter: cdk.Duration.days(RETENTION_DAYS) }],
      }),
    );
    const backupRole = this.backupRole(table, config.recoveryRegion);
    plan.addSelection('Table', {
      resources: [backup.BackupResource.fromDynamoDbTable(table)],
      role: backupRole,
      disableDefaultBackupPolicy: true,
    });

    // The product API: the same axum router as `tandem api serve`, over the table it
    // serves: the stack's own, or a restored one named by tandem:servedTable (the
    // runbook's last step after a restore), on which alone its role is granted.
    const servedTable = config.servedTable ?? table.tableName;
    const api = new TandemFunction(this, 'ProductApi', {
      binary: 'product_api',
      description: 'tandem product API (the router of tandem api serve) over the Product table',
      environment: { TABLE_NAME: servedTable },
      timeout: cdk.Duration.seconds(10),
      memorySize: 256,
      removalPolicy: removal,
      architecture: config.lambdaArchitecture,
    });
    api.role.addToPolicy(
      new iam.PolicyStatement({
        actions: [
          'dynamodb:GetItem',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:Scan',
          'dynamodb:CreateBackup',
        ],
        resources: [this.formatArn({ service: 'dynamodb', resource: 'table', resourceName: servedTable })],
      }),
    );
    this.api = this.restApi(config, api, removal);

    // After the backup: check it, make sure its copy exists (a safety net for the
    // plan's copy action; idempotent), expire what is past retention.
    const postBackup = new TandemFunction(this, 'PostBackup', {
      binary: 'post_backup',
      description: 'tandem post-backup: checks the daily backup, ensures its cross-region copy, expires old points',
      environment: {
        TABLE_ARN: table.tableArn,
        BACKUP_PLAN_ID: plan.backupPlanId,
        SOURCE_VAULT_NAME: vault.backupVaultName,
        DESTINATION_VAULT_ARN: recoveryVaultArn,
        COPY_ROLE_ARN: backupRole.roleArn,
        RETENTION_DAYS: String(RETENTION_DAYS),
      },
      timeout: cdk.Duration.minutes(2),
      removalPolicy: removal,
      architecture: config.lambdaArchitecture,
    });
    postBackup.role.addToPolicy(
      new iam.PolicyStatement({ actions: ['backup:ListCopyJobs'], resources: ['*'] }),
    );
    postBackup.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['backup:ListRecoveryPointsByBackupVault'],
        resources: [vault.backupVaultArn],
      }),
    );
    postBackup.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['backup:StartCopyJob', 'backup:DeleteRecoveryPoint'],
        resources: [this.formatArn({ service: 'backup', resource: 'recovery-point', resourceName: '*', arnFormat: cdk.ArnFormat.COLON_RESOURCE_NAME })],
      }),
    );
    postBackup.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['iam:PassRole'],
        resources: [backupRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'backup.amazonaws.com' } },
      }),
    );
    acknowledge(postBackup.role, 'AwsSolutions-IAM5', 'AWS Backup supports no resource-level permissions for ListCopyJobs; recovery point ARNs are made by the service.', ['Resource::*', arnFinding(this, 'backup', 'recovery-point:*')]);
    new events.Rule(this, 'BackupCompleted', {
      description: 'Runs the post-backup function when a backup job of the tandem plan completes',
      eventPattern: {
        source: ['aws.backup'],
        detailType: ['Backup Job State Change'],
        detail: { state: ['COMPLETED'], backupVaultName: [PRIMARY_VAULT] },
      },
      targets: [new targets.LambdaFunction(postBackup.fn, { retryAttempts: 2 })],
    });
    new events.Rule(this, 'PostBackupDaily', {
      description: 'Runs the post-backup function daily after the backup window, as a safety net',
      schedule: POST_BACKUP_SCHEDULE,
      targets: [new targets.LambdaFunction(postBackup.fn, { retryAttempts: 2 })],
    });

    this.contract
      .bind({
        DrStack: this.stackName,
        RecoveryRegion: config.recoveryRegion,
        ProductTable: table.tableName,
        ServedTable: servedTable,
        PrimaryVault: vault.backupVaultName,
        RecoveryVault: RECOVERY_VAULT,
        BackupPlan: plan.backupPlanId,
        BackupRole: backupRole.roleName,
        ProductApiLogs: api.logGroup.logGroupName,
        PostBackupLogs: postBackup.logGroup.logGroupName,
        RestApi: this.api.restApiId,
      })
      .principal('product-api-function', api.role)
      .principal('post-backup-function', postBackup.role)
      .principal('backup-role', backupRole);
    const operator = operatorPolicy(this, 'OperatorPolicy', 'dr-operator', this.contract);

    const out = (id: string, value: string, description: string) =>
      new cdk.CfnOutput(this, id, { value, description });
    this.contract.acknowledgeWildcards(this);
    out('OperatorPolicyArn', operator.managedPolicyArn, 'Attach to whoever runs tandem dr-drill --stack against this stack');
    out('ApiUrl', this.api.url, 'The product API (the stage URL)');
    out('TableName', table.tableName, 'The Product table');
    out('TableArn', table.tableArn, 'The Product table ARN');
    out('PrimaryVaultName', vault.backupVaultName, 'AWS Backup vault in the primary region');
    out('RecoveryVaultName', RECOVERY_VAULT, 'AWS Backup vault in the recovery region');
    out('RecoveryVaultArn', recoveryVaultArn, 'AWS Backup vault in the recovery region (ARN)');
    out('RecoveryRegion', config.recoveryRegion, 'Where the replica and the copies are');
    out('BackupPlanId', plan.backupPlanId, 'The AWS Backup plan');
    out('BackupRoleArn', backupRole.roleArn, 'The role AWS Backup assumes (backup, copy, restore); the drill passes it');
  }

  /**
   * The role AWS Backup assumes for the plan's backups and copies and the drill's
   * backups, copies and restores: the DynamoDB statements of AWS's
   * AWSBackupServiceRolePolicyForBackup and ...ForRestores, on the Product table's own
   * ARN and the drill's scratch tables instead of every table.
   */
  private backupRole(table: dynamodb.TableV2, recoveryRegion: string): iam.Role {
    const role = new iam.Role(this, 'BackupRole', {
      assumedBy: new iam.ServicePrincipal('backup.amazonaws.com'),
      description: 'tandem DR: AWS Backup backs up, copies and restores the Product table and the drill tables',
    });
    const drillTables = [this.region, recoveryRegion].map((region) =>
      this.formatArn({ service: 'dynamodb', region, resource: 'table', resourceName: `${DRILL_TABLE_PREFIX}*` }),
    );
    const primaryDrillTables = drillTables[0];
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'Backup',
        actions: ['dynamodb:DescribeTable', 'dynamodb:CreateBackup', 'dynamodb:StartAwsBackupJob', 'dynamodb:ListTagsOfResource'],
        resources: [table.tableArn, primaryDrillTables],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'BackupResources',
        actions: ['dynamodb:DescribeBackup', 'dynamodb:DeleteBackup'],
        resources: [`${table.tableArn}/backup/*`, `${primaryDrillTables}/backup/*`],
      }),
    );
    // Restores land in a new table the drill names (Product-drill-*) or the runbook does
    // (Product-restored*), in either region; a restore is also authorized on the table
    // the recovery point was taken of.
    const restoredTables = [this.region, recoveryRegion].map((region) =>
      this.formatArn({ service: 'dynamodb', region, resource: 'table', resourceName: `${RESTORED_TABLE_PREFIX}*` }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'RestoreSource',
        actions: ['dynamodb:RestoreTableFromAwsBackup'],
        resources: [table.tableArn, this.formatArn({ service: 'dynamodb', region: recoveryRegion, resource: 'table', resourceName: table.tableName })],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'Restore',
        actions: [
          'dynamodb:RestoreTableFromAwsBackup',
          'dynamodb:DescribeTable',
          'dynamodb:BatchWriteItem',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:GetItem',
          'dynamodb:Query',
          'dynamodb:Scan',
        ],
        resources: [...drillTables, ...restoredTables],
      }),
    );
    const vaultArn = (region: string, name: string) =>
      this.formatArn({ service: 'backup', region, resource: 'backup-vault', resourceName: name, arnFormat: cdk.ArnFormat.COLON_RESOURCE_NAME });
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'Copy',
        actions: ['backup:DescribeBackupVault', 'backup:CopyIntoBackupVault'],
        resources: [vaultArn(this.region, PRIMARY_VAULT), vaultArn(recoveryRegion, RECOVERY_VAULT)],
      }),
    );
    role.addToPolicy(new iam.PolicyStatement({ sid: 'CopyFrom', actions: ['backup:CopyFromBackupVault'], resources: ['*'] }));
    const points = [this.region, recoveryRegion].map((region) =>
      this.formatArn({ service: 'backup', region, resource: 'recovery-point', resourceName: '*', arnFormat: cdk.ArnFormat.COLON_RESOURCE_NAME }),
    );
    role.addToPolicy(new iam.PolicyStatement({ sid: 'Tags', actions: ['backup:TagResource'], resources: points }));
    // The vault keys, as AWSBackupServiceRolePolicyForBackup grants them: data keys only
    // through AWS Backup and DynamoDB, the key's description directly (without it a job
    // succeeds and backs nothing up), grants only for AWS resources.
    const keys = [this.region, recoveryRegion].map((region) =>
      this.formatArn({ service: 'kms', region, resource: 'key', resourceName: '*' }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'VaultKeys',
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: keys,
        conditions: { StringLike: { 'kms:ViaService': ['backup.*.amazonaws.com', 'dynamodb.*.amazonaws.com'] } },
      }),
    );
    role.addToPolicy(new iam.PolicyStatement({ sid: 'VaultKeyDescription', actions: ['kms:DescribeKey'], resources: keys }));
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'VaultKeyGrants',
        actions: ['kms:CreateGrant'],
        resources: keys,
        conditions: { Bool: { 'kms:GrantIsForAWSResource': 'true' } },
      }),
    );
    return role;
  }

  private restApi(config: TandemConfig, fn: TandemFunction, removal: cdk.RemovalPolicy): apigw.RestApi {
    // Execution and access logging need the account's API Gateway CloudWatch role, as
    // AWS documents it: a role API Gateway assumes with the managed
    // AmazonAPIGatewayPushToCloudWatchLogs policy. The setting is one per account and
    // region, shared by every REST API there (docs/deploy.md).
    const logsRole = new iam.Role(this, 'ApiGatewayLogsRole', {
      assumedBy: new iam.ServicePrincipal('apigateway.amazonaws.com'),
      description: 'API Gateway execution and access logs (the account-wide API Gateway CloudWatch role of this region)',
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonAPIGatewayPushToCloudWatchLogs')],
    });
    acknowledge(
      logsRole,
      'AwsSolutions-IAM4',
      'AWS documents this managed policy for the account\'s API Gateway CloudWatch role (set-up-logging); API Gateway names and creates its execution log groups itself.',
      ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs'],
    );
    this.contract.principal('api-gateway-logs', logsRole);
    const account = new apigw.CfnAccount(this, 'ApiGatewayAccount', { cloudWatchRoleArn: logsRole.roleArn });
    const accessLogs = new logs.LogGroup(this, 'ApiAccessLogs', {
      retention: logs.RetentionDays.THREE_MONTHS,
      removalPolicy: removal,
    });
    const api = new apigw.RestApi(this, 'Api', {
      restApiName: 'tandem-products',
      description: 'tandem product API (the seed\'s routes)',
      endpointTypes: [apigw.EndpointType.REGIONAL],
      cloudWatchRole: false,
      apiKeySourceType: apigw.ApiKeySourceType.HEADER,
      deployOptions: {
        stageName: config.apiStage,
        accessLogDestination: new apigw.LogGroupLogDestination(accessLogs),
        accessLogFormat: apigw.AccessLogFormat.jsonWithStandardFields(),
        loggingLevel: apigw.MethodLoggingLevel.INFO,
        dataTraceEnabled: false,
        metricsEnabled: true,
        tracingEnabled: true,
        throttlingRateLimit: 100,
        throttlingBurstLimit: 200,
      },
      defaultMethodOptions: { apiKeyRequired: true },
    });
    api.node.addDependency(account);
    this.contract.bind({ ApiAccessLogs: accessLogs.logGroupName });
    const validator = new apigw.RequestValidator(this, 'Validator', {
      restApi: api,
      validateRequestBody: true,
      validateRequestParameters: true,
    });
    const text = (max: number): apigw.JsonSchema => ({ type: apigw.JsonSchemaType.STRING, minLength: 1, maxLength: max });
    const model = (name: string, properties: Record<string, apigw.JsonSchema>) =>
      api.addModel(name, {
        contentType: 'application/json',
        schema: {
          schema: apigw.JsonSchemaVersion.DRAFT4,
          type: apigw.JsonSchemaType.OBJECT,
          properties,
          required: Object.keys(properties),
          additionalProperties: false,
        },
      });
    const addModel = model('AddProduct', { product_category: text(100), product_title: text(500) });
    const updateModel = model('UpdateProduct', { product_id: text(64), product_category: text(100), product_title: text(500) });
    const integration = new apigw.LambdaIntegration(fn.fn);
    const route = (path: string, method: string, options: apigw.MethodOptions = {}) =>
      api.root.addResource(path).addMethod(method, integration, { requestValidator: validator, ...options });
    const id = { 'method.request.querystring.product_id': true };
    route('addProduct', 'POST', { requestModels: { 'application/json': addModel } });
    route('getProduct', 'GET', { requestParameters: id });
    route('getProducts', 'GET', {
      requestParameters: { 'method.request.querystring.limit': false, 'method.request.querystring.cursor': false },
    });
    route('updateProduct', 'PUT', { requestModels: { 'application/json': updateModel } });
    route('deleteProduct', 'DELETE', { requestParameters: id });
    route('createBackup', 'POST');

    const key = api.addApiKey('ApiKey', { description: 'tandem product API client key' });
    const usage = api.addUsagePlan('UsagePlan', {
      description: 'Per-key throttling of the product API',
      throttle: { rateLimit: 50, burstLimit: 100 },
      quota: { limit: 1_000_000, period: apigw.Period.DAY },
      apiStages: [{ api, stage: api.deploymentStage }],
    });
    usage.addApiKey(key);
    new cdk.CfnOutput(this, 'ApiKeyId', { value: key.keyId, description: 'aws apigateway get-api-key --include-value --api-key <id>' });

    // A web ACL in front of the stage: AWS's common and known-bad-input rules and a
    // per-address rate limit.
    const managed = (name: string, priority: number): wafv2.CfnWebACL.RuleProperty => ({
      name,
      priority,
      overrideAction: { none: {} },
      statement: { managedRuleGroupStatement: { vendorName: 'AWS', name } },
      visibilityConfig: { sampledRequestsEnabled: true, cloudWatchMetricsEnabled: true, metricName: name },
    });
    const acl = new wafv2.CfnWebACL(this, 'WebAcl', {
      scope: 'REGIONAL',
      defaultAction: { allow: {} },
      visibilityConfig: { sampledRequestsEnabled: true, cloudWatchMetricsEnabled: true, metricName: 'tandem-products' },
      rules: [
        managed('AWSManagedRulesCommonRuleSet', 1),
        managed('AWSManagedRulesKnownBadInputsRuleSet', 2),
        {
          name: 'RatePerAddress',
          priority: 3,
          action: { block: {} },
          statement: { rateBasedStatement: { limit: 2000, aggregateKeyType: 'IP' } },
          visibilityConfig: { sampledRequestsEnabled: true, cloudWatchMetricsEnabled: true, metricName: 'RatePerAddress' },
        },
      ],
    });
    new wafv2.CfnWebACLAssociation(this, 'WebAclAssociation', {
      resourceArn: api.deploymentStage.stageArn,
      webAclArn: acl.attrArn,
    });
    acknowledge(api, 'AwsSolutions-APIG4', 'The seed\'s contract: callers are services holding an API key (required on every method, throttled per key by the usage plan); there are no end users to authorize.');
    acknowledge(api, 'AwsSolutions-COG4', 'No Cognito user pool: callers are services authenticated by API key (see APIG4).');
    return api;
  }
}
