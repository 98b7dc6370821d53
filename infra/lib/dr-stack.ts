// The disaster-recovery stacks of the product API.
//
// - DrRecoveryStack (recovery region, us-east-1 by default): the backup vault copies
//   land in, encrypted with its own KMS key.
// - DisasterRecoveryStack (primary region): the Product table (PITR, a replica in the
//   recovery region), the product API (product-api.ts), the API key's secret
//   (replicated to the recovery region), the health check of the API's /health, AWS
//   Backup (a vault, one plan with the daily rule and a copy action to the recovery
//   vault) and the post-backup function.
// - DrStandbyStack (recovery region, after the primary): the product API over the
//   table's replica, with the same key: answering (warm standby) or switched off until
//   `tandem dr failover` (pilot light); with a hosted zone, the DNS failover record
//   pair that sends clients to it when the primary's health check fails.

import * as cdk from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as backup from 'aws-cdk-lib/aws-backup';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { ContractBinding, operatorPolicy } from './contract';
import { acknowledge, arnFinding } from './nag';
import { Removal, Standby, TandemConfig, dataRemoval } from './config';
import { TandemFunction } from './rust-lambda';
import { ProductApi, productApi } from './product-api';
import { GameDay } from './game-day';

/** The daily backup: 09:10 UTC, kept 30 days (the seed's rule, once). */
export const BACKUP_SCHEDULE = events.Schedule.cron({ minute: '10', hour: '9' });
/**
 * The backup job must start within an hour of 09:10 (AWS Backup's minimum; its
 * default is 8 hours) and complete within two hours of starting: by 12:10 UTC.
 */
export const BACKUP_START_WINDOW = cdk.Duration.hours(1);
export const BACKUP_COMPLETION_WINDOW = cdk.Duration.hours(2);
/**
 * The daily run of the post-backup function: 14:00 UTC, after the backup's latest
 * completion (12:10) and the hour its copy job may take to be listed.
 */
export const POST_BACKUP_SCHEDULE = events.Schedule.cron({ minute: '0', hour: '14' });
export const RETENTION_DAYS = 30;
/**
 * A name CloudFormation has not given before: `base` and 20 hex digits of the stack's
 * id, which is new every time the stack is created. The id is a version-1 UUID: its
 * last 12 digits name the host that made it, so they may repeat; the first 8 are the
 * time it was made.
 * What `removal: prod` retains (the vaults, the key's secret) keeps its name after a
 * destroy, and Secrets Manager holds a deleted secret's name for its recovery window,
 * so the next deploy of the same stack must not reuse them (AlreadyExists).
 */
export function uniqueName(stack: cdk.Stack, base: string): string {
  const parts = cdk.Fn.split('-', cdk.Fn.select(2, cdk.Fn.split('/', stack.stackId)));
  return `${base}-${cdk.Fn.select(0, parts)}${cdk.Fn.select(4, parts)}`;
}

/** A backup vault's name: 2 to 50 of letters, digits, - and _ (AWS Backup). */
function vaultName(stack: cdk.Stack): string {
  return uniqueName(stack, stack.stackName.slice(0, 29));
}
/** The scratch tables `tandem dr-drill` creates and restores into (dr/src/drill). */
export const DRILL_TABLE_PREFIX = 'Product-drill-';
/** The tables the runbook restores into (docs/dr.md): the backup role may create them. */
export const RESTORED_TABLE_PREFIX = 'Product-restored';

export interface DrStackProps extends cdk.StackProps {
  readonly config: TandemConfig;
}

export interface DrRecoveryStackProps extends DrStackProps {
  /** The primary DR stack's name: it reads the vault's ARN. */
  readonly primaryStackName: string;
}

export interface DisasterRecoveryStackProps extends DrStackProps {
  /** The standby stack's name (it is deployed after this one, in the recovery region). */
  readonly standbyStackName: string;
  /** The recovery region's vault (DrRecoveryStack's): the plan copies into it. */
  readonly recoveryVault: backup.IBackupVault;
}

/** The standby's function, named after the primary stack so both stacks know it. */
export function standbyFunctionName(drStack: string): string {
  return `${drStack}-standby-api`;
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
  readonly contract: ContractBinding;

  constructor(scope: Construct, id: string, props: DrRecoveryStackProps) {
    // The primary stack reads the vault's ARN (crossRegionReferences).
    super(scope, id, { ...props, crossRegionReferences: true });
    const removal = dataRemoval(props.config.removal);
    this.contract = new ContractBinding(this);
    this.vault = new backup.BackupVault(this, 'Vault', {
      backupVaultName: vaultName(this),
      encryptionKey: vaultKey(this, removal),
      removalPolicy: removal,
    });
    new cdk.CfnOutput(this, 'RecoveryVaultName', { value: this.vault.backupVaultName });
    new cdk.CfnOutput(this, 'RecoveryVaultArn', { value: this.vault.backupVaultArn });
    this.contract
      .bind({ PrimaryRegion: props.config.primaryRegion, DrStack: props.primaryStackName })
      .cdkProviderRole(this, 'recovery-export-writer', 'Custom::CrossRegionExportWriter');
    this.contract.acknowledgeWildcards(this);
  }
}

/** The primary region's part. */
export class DisasterRecoveryStack extends cdk.Stack {
  readonly table: dynamodb.TableV2;
  readonly api: apigw.RestApi;
  readonly productApi: ProductApi;
  /** Route 53's health check of the API's /health (the DNS failover follows it). */
  /** Where failures go: the post-backup check's alarm and failure destination, failed jobs. */
  readonly alerts: sns.Topic;
  readonly healthCheck: route53.HealthCheck;
  /** This stack's part of the IAM contract (iam/contract.json). */
  readonly contract: ContractBinding;
  /** The secret holding the clients' API key, replicated to the recovery region. */
  readonly apiKeySecretName: string;

  constructor(scope: Construct, id: string, props: DisasterRecoveryStackProps) {
    super(scope, id, { ...props, crossRegionReferences: true });
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
      backupVaultName: vaultName(this),
      encryptionKey: vaultKey(this, removal),
      removalPolicy: removal,
    });
    const recoveryVault = props.recoveryVault;
    const recoveryVaultArn = recoveryVault.backupVaultArn;
    const plan = new backup.BackupPlan(this, 'Plan', { backupPlanName: this.stackName });
    plan.addRule(
      new backup.BackupPlanRule({
        ruleName: 'daily',
        backupVault: vault,
        scheduleExpression: BACKUP_SCHEDULE,
        startWindow: BACKUP_START_WINDOW,
        completionWindow: BACKUP_COMPLETION_WINDOW,
        deleteAfter: cdk.Duration.days(RETENTION_DAYS),
        copyActions: [{ destinationBackupVault: recoveryVault, deleteAfter: cdk.Duration.days(RETENTION_DAYS) }],
      }),
    );
    const backupRole = this.backupRole(table, config.recoveryRegion, vault, recoveryVault);
    plan.addSelection('Table', {
      resources: [backup.BackupResource.fromDynamoDbTable(table)],
      role: backupRole,
      disableDefaultBackupPolicy: true,
    });

    // The clients' API key, the same in both regions: generated once into a secret
    // replicated to the recovery region, where the standby's key reads it.
    const keySecret = new secretsmanager.Secret(this, 'ApiKeySecret', {
      secretName: uniqueName(this, `tandem/${this.stackName}/api-key`),
      description: 'The product API key of both regions (x-api-key)',
      generateSecretString: { excludePunctuation: true, passwordLength: 40 },
      replicaRegions: [{ region: config.recoveryRegion }],
      removalPolicy: removal,
    });
    this.apiKeySecretName = keySecret.secretName;
    acknowledge(keySecret, 'AwsSolutions-SMG4', 'An API key held by clients: it is rotated by putting a new value and redeploying both DR stacks with tandem:apiKeyVersion naming it (docs/dr.md), not by a rotation function that would change it under them.');

    // The product API: the same axum router as `tandem api serve`, over the table it
    // serves: the stack's own, or a restored one named by tandem:servedTable (the
    // runbook's last step after a restore), on which alone its role is granted.
    const servedTable = config.servedTable ?? table.tableName;
    this.productApi = productApi(this, {
      config,
      removal,
      contract: this.contract,
      names: {
        functionPrincipal: 'product-api-function',
        logsPrincipal: 'api-gateway-logs',
        functionLogs: 'ProductApiLogs',
        accessLogs: 'ApiAccessLogs',
        restApi: 'RestApi',
      },
      table: servedTable,
      apiKey: cdk.SecretValue.secretsManager(keySecret.secretArn, { versionId: config.apiKeyVersion }),
      description: 'tandem product API (the router of tandem api serve) over the Product table',
    });
    this.api = this.productApi.api;

    // Route 53 checks the API's /health from its checkers around the world; the DNS
    // failover record follows it, and `tandem dr failover` inverts it for a planned
    // failover.
    this.healthCheck = new route53.HealthCheck(this, 'ApiHealth', {
      type: route53.HealthCheckType.HTTPS,
      fqdn: `${this.api.restApiId}.execute-api.${this.region}.${this.urlSuffix}`,
      resourcePath: `/${config.apiStage}/health`,
      port: 443,
      requestInterval: cdk.Duration.seconds(30),
      failureThreshold: 3,
    });
    if (config.apiDomain && this.productApi.domain) {
      failoverRecord(this, config, this.productApi.domain, route53.Failover.PRIMARY, this.healthCheck);
    }

    // Where failures go: one topic, subscribed by tandem:alertEmail or by hand.
    // CloudWatch alarms and EventBridge cannot publish to a topic encrypted with
    // the AWS managed SNS key, and the messages carry no data (names, states).
    this.alerts = new sns.Topic(this, 'Alerts', { displayName: 'tandem DR alerts', enforceSSL: true });
    acknowledge(this.alerts, 'AwsSolutions-SNS2', 'Alarm and job-state notifications carry no data; CloudWatch alarms and EventBridge cannot publish to a topic encrypted with the AWS managed SNS key.');
    if (config.alertEmail) {
      this.alerts.addSubscription(new subscriptions.EmailSubscription(config.alertEmail));
    }

    // After the backup: check it and its copy (the plan's copy action is the one
    // path that makes it), expire what is past retention. A failed check fails
    // the invocation.
    const postBackup = new TandemFunction(this, 'PostBackup', {
      binary: 'post_backup',
      description: 'tandem post-backup: checks the daily backup and its cross-region copy, expires old points',
      environment: {
        TABLE_ARN: table.tableArn,
        BACKUP_PLAN_ID: plan.backupPlanId,
        SOURCE_VAULT_NAME: vault.backupVaultName,
        DESTINATION_VAULT_ARN: recoveryVaultArn,
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
        actions: ['backup:DeleteRecoveryPoint'],
        resources: [this.formatArn({ service: 'backup', resource: 'recovery-point', resourceName: '*', arnFormat: cdk.ArnFormat.COLON_RESOURCE_NAME })],
      }),
    );
    // EventBridge invokes it asynchronously. A failed check fails the same way when
    // tried again, so there are no retries: the failed invocation (its event and
    // error) goes to a queue at once, and the queue's alarm pages once.
    const failures = new sqs.Queue(this, 'PostBackupFailures', {
      retentionPeriod: cdk.Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      removalPolicy: removal,
    });
    acknowledge(failures, 'AwsSolutions-SQS3', "This queue is the post-backup function's failure destination itself.");
    postBackup.fn.configureAsyncInvoke({
      retryAttempts: 0,
      // lambda-destinations' SqsDestination also grants GetQueueAttributes and
      // GetQueueUrl, which Lambda does not call: SendMessage alone.
      onFailure: {
        bind: (_scope: Construct, fn: lambda.IFunction) => {
          failures.grant(fn, 'sqs:SendMessage');
          return { destination: failures.queueArn };
        },
      },
    });
    const failed = new cloudwatch.Alarm(this, 'PostBackupFailed', {
      alarmDescription: "The post-backup check failed: today's backup or its copy is missing or incomplete, or an expiry failed. The queue PostBackupFailures holds each failed invocation (its error names the problems, the function's log has the report); purge it once handled.",
      metric: failures.metricApproximateNumberOfMessagesVisible({ period: cdk.Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    failed.addAlarmAction(new cwActions.SnsAction(this.alerts));
    const alarms = [failed];
    // Jobs of the plan that fail say so at once, whatever the function finds later:
    // backup jobs by the plan (the drill's own jobs in the same vault are not the
    // plan's), copy jobs out of the plan's vault.
    new events.Rule(this, 'BackupJobFailed', {
      description: 'Tells the alert topic when a backup job of the tandem plan fails',
      eventPattern: {
        source: ['aws.backup'],
        detailType: ['Backup Job State Change'],
        detail: {
          state: ['FAILED', 'ABORTED', 'EXPIRED', 'PARTIAL'],
          backupVaultName: [vault.backupVaultName],
          createdBy: { backupPlanArn: [plan.backupPlanArn] },
        },
      },
      targets: [new targets.SnsTopic(this.alerts)],
    });
    new events.Rule(this, 'CopyJobFailed', {
      description: "Tells the alert topic when a copy job out of the tandem plan's vault fails",
      eventPattern: {
        source: ['aws.backup'],
        detailType: ['Copy Job State Change'],
        detail: { state: ['FAILED', 'PARTIAL'], sourceBackupVaultArn: [vault.backupVaultArn] },
      },
      targets: [new targets.SnsTopic(this.alerts)],
    });
    acknowledge(postBackup.role, 'AwsSolutions-IAM5', 'AWS Backup supports no resource-level permissions for ListCopyJobs; recovery point ARNs are made by the service.', ['Resource::*', arnFinding(this, 'backup', 'recovery-point:*')]);
    new events.Rule(this, 'BackupCompleted', {
      description: 'Runs the post-backup function when a backup job of the tandem plan completes',
      eventPattern: {
        source: ['aws.backup'],
        detailType: ['Backup Job State Change'],
        // The plan's jobs only: the drill's backups into the same vault would run the
        // check before the plan's backup exists and page for nothing.
        detail: { state: ['COMPLETED'], backupVaultName: [vault.backupVaultName], createdBy: { backupPlanArn: [plan.backupPlanArn] } },
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
        RecoveryVault: recoveryVault.backupVaultName,
        BackupPlan: plan.backupPlanId,
        BackupRole: backupRole.roleName,
        PostBackupLogs: postBackup.logGroup.logGroupName,
        StandbyStack: props.standbyStackName,
        StandbyFunction: standbyFunctionName(this.stackName),
        HealthCheck: this.healthCheck.healthCheckId,
        ApiKeySecret: keySecret.secretName,
        AlertsTopic: this.alerts.topicName,
        PostBackupFailures: failures.queueName,
      })
      .principal('post-backup-function', postBackup.role)
      .cdkProviderRole(this, 'cdk-cross-region-export-writer', 'Custom::CrossRegionExportWriter')
      .cdkProviderRole(this, 'primary-export-reader', 'Custom::CrossRegionExportReader')
      .principal('backup-role', backupRole);
    const operator = operatorPolicy(this, 'OperatorPolicy', 'dr-operator', this.contract);

    // The game day (off unless tandem:gameDaySchedule): the drill against this stack,
    // on a schedule, its metrics and reports kept, its failures alarmed.
    if (config.gameDaySchedule) {
      const gameDay = new GameDay(this, 'GameDay', {
        config,
        schedule: config.gameDaySchedule,
        contract: this.contract,
        alerts: this.alerts,
      });
      alarms.push(gameDay.failed, gameDay.notStarted);
    }
    // CloudWatch publishes with its service principal: the topic's policy (which
    // replaces SNS's default once CDK writes one) must allow it, for these alarms.
    this.alerts.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AlarmPublishes',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.alerts.topicArn],
        conditions: {
          ArnLike: { 'aws:SourceArn': alarms.map((a) => a.alarmArn) },
          StringEquals: { 'aws:SourceAccount': this.account },
        },
      }),
    );

    const out = (id: string, value: string, description: string) =>
      new cdk.CfnOutput(this, id, { value, description });
    this.contract.acknowledgeWildcards(this);
    out('OperatorPolicyArn', operator.managedPolicyArn, 'Attach to whoever runs tandem dr-drill --stack against this stack');
    out('ApiUrl', this.api.url, 'The product API (the stage URL)');
    out('TableName', table.tableName, 'The Product table');
    out('ServedTable', servedTable, "The table the API serves: the Product table, or a restored one (tandem:servedTable)");
    out('TableArn', table.tableArn, 'The Product table ARN');
    out('PrimaryVaultName', vault.backupVaultName, 'AWS Backup vault in the primary region');
    out('RecoveryVaultName', recoveryVault.backupVaultName, 'AWS Backup vault in the recovery region');
    out('RecoveryVaultArn', recoveryVaultArn, 'AWS Backup vault in the recovery region (ARN)');
    out('RecoveryRegion', config.recoveryRegion, 'Where the replica and the copies are');
    out('BackupPlanId', plan.backupPlanId, 'The AWS Backup plan');
    out('BackupRoleArn', backupRole.roleArn, 'The role AWS Backup assumes (backup, copy, restore); the drill passes it');
    out('ApiRatePerSecond', String(config.apiRatePerSecond), 'Requests a second per API key (the usage plan); the drill paces itself to an eighth of it');
    out('AlertsTopicArn', this.alerts.topicArn, 'Where failures go (the post-backup check, failed backup and copy jobs): subscribe to it');
    out('StandbyStackName', props.standbyStackName, 'The standby stack, in the recovery region (tandem dr failover --stack)');
    out('HealthCheckId', this.healthCheck.healthCheckId, "Route 53's health check of the API's /health");
    out('ApiKeySecretName', keySecret.secretName, 'The secret holding the API key (the same in both regions)');
    if (config.apiDomain) {
      out('ClientUrl', `https://${config.apiDomain.domainName}/`, 'The name clients use: Route 53 answers with the primary while it is healthy, else the standby');
    }
  }

  /**
   * The role AWS Backup assumes for the plan's backups and copies and the drill's
   * backups, copies and restores: the DynamoDB statements of AWS's
   * AWSBackupServiceRolePolicyForBackup and ...ForRestores, on the Product table's own
   * ARN and the drill's scratch tables instead of every table.
   */
  private backupRole(
    table: dynamodb.TableV2,
    recoveryRegion: string,
    vault: backup.IBackupVault,
    recoveryVault: backup.IBackupVault,
  ): iam.Role {
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
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'Copy',
        actions: ['backup:DescribeBackupVault', 'backup:CopyIntoBackupVault'],
        resources: [vault.backupVaultArn, recoveryVault.backupVaultArn],
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
}

/**
 * The Route 53 failover record of one region's API: `PRIMARY` follows the health
 * check, `SECONDARY` answers when it fails.
 */
function failoverRecord(
  scope: Construct,
  config: TandemConfig,
  domain: apigw.DomainName,
  failover: route53.Failover,
  healthCheck?: route53.IHealthCheck,
): route53.ARecord {
  const d = config.apiDomain!;
  const zone = route53.HostedZone.fromHostedZoneAttributes(scope, 'FailoverZone', {
    hostedZoneId: d.hostedZoneId,
    zoneName: d.hostedZoneName,
  });
  return new route53.ARecord(scope, 'ApiFailoverRecord', {
    zone,
    recordName: d.domainName,
    // CDK requires evaluateTargetHealth on a failover alias; what moves the record
    // is the primary's health check of /health.
    target: route53.RecordTarget.fromAlias({
      bind: () => ({
        dnsName: domain.domainNameAliasDomainName,
        hostedZoneId: domain.domainNameAliasHostedZoneId,
        evaluateTargetHealth: true,
      }),
    }),
    failover,
    setIdentifier: failover === route53.Failover.PRIMARY ? 'primary' : 'standby',
    healthCheck,
  });
}

export interface DrStandbyStackProps extends DrStackProps {
  /** The primary's stack: the table, the API and its health check. */
  readonly primary: DisasterRecoveryStack;
}

/**
 * The recovery region's product API over the replica of the served table, with the
 * clients' key: a warm standby answers all along; a pilot light's function has a
 * reserved concurrency of 0 (Lambda throttles every call, API Gateway answers 500)
 * until `tandem dr failover` removes it.
 */
export class DrStandbyStack extends cdk.Stack {
  readonly productApi: ProductApi;
  readonly contract: ContractBinding;

  constructor(scope: Construct, id: string, props: DrStandbyStackProps) {
    super(scope, id, { ...props, crossRegionReferences: true });
    const { config, primary } = props;
    const removal = dataRemoval(config.removal);
    this.contract = new ContractBinding(this);
    // The standby serves the replica of the stack's own global table. A restored
    // table named by tandem:servedTable has no replica here: while the primary
    // serves one, the standby would serve stale data, and the drill's failover
    // methods refuse (docs/dr.md: copy the items back instead).
    const servedTable = primary.table.tableName;
    if (config.servedTable) {
      cdk.Annotations.of(this).addWarningV2(
        'tandem:standby-serves-global-table',
        `the primary's API serves ${config.servedTable} (tandem:servedTable), which has no replica in ${config.recoveryRegion}: this standby serves the global table's replica, which no longer receives the API's writes. Copy the restored items back into the global table and redeploy without tandem:servedTable.`,
      );
    }
    this.productApi = productApi(this, {
      config,
      removal,
      contract: this.contract,
      names: {
        functionPrincipal: 'standby-api-function',
        logsPrincipal: 'standby-api-gateway-logs',
        functionLogs: 'StandbyApiLogs',
        accessLogs: 'StandbyApiAccessLogs',
        restApi: 'StandbyRestApi',
      },
      table: servedTable,
      apiKey: cdk.SecretValue.secretsManager(primary.apiKeySecretName, { versionId: config.apiKeyVersion }),
      functionName: standbyFunctionName(primary.stackName),
      reservedConcurrency: config.standby === Standby.PilotLight ? 0 : undefined,
      component: 'standby-api function',
      description: `tandem product API in the recovery region over the replica (${config.standby})`,
    });
    if (config.apiDomain && this.productApi.domain) {
      failoverRecord(this, config, this.productApi.domain, route53.Failover.SECONDARY);
    }
    this.contract
      .bind({
        RecoveryRegion: config.recoveryRegion,
        ServedTable: servedTable,
        StandbyStack: this.stackName,
      })
      .cdkProviderRole(this, 'cdk-cross-region-export-reader', 'Custom::CrossRegionExportReader');
    this.contract.acknowledgeWildcards(this);
    const out = (id: string, value: string, description: string) =>
      new cdk.CfnOutput(this, id, { value, description });
    out('StandbyMode', config.standby, 'pilot-light (switched off until tandem dr failover) or warm-standby (answering)');
    out('StandbyFunctionName', this.productApi.fn.fn.functionName, "The standby's function; a pilot light's reserved concurrency is 0");
    out('StandbyApiUrl', this.productApi.api.url, "The standby's API (the stage URL)");
    out('PrimaryApiUrl', primary.api.url, "The primary's API (the stage URL)");
    out('HealthCheckId', primary.healthCheck.healthCheckId, "Route 53's health check of the primary API's /health");
    out('ApiKeySecretName', primary.apiKeySecretName, 'The secret holding the API key (its replica here)');
    out('TableName', servedTable, "The stack's global table (its replica here)");
    if (config.apiDomain) {
      out('ClientUrl', `https://${config.apiDomain.domainName}/`, 'The name clients use: Route 53 answers with the primary while it is healthy, else this standby');
    }
  }
}
