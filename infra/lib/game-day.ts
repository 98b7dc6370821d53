// The game day: the DR stack drills itself on a schedule (tandem:gameDaySchedule; off
// by default). EventBridge starts a Fargate task that runs
//
//   tandem dr-drill --backend dynamodb --stack STACK --methods ... \
//     --publish-metrics --report-to s3://BUCKET/drills
//
// with the dr-operator policy's permissions and two more: its metrics into CloudWatch
// (namespace tandem/DR: DrillPassed, MethodsFailed, LeftBehind; per method Passed,
// RtoSeconds, RpoSeconds) and its reports (HTML and JSON) into the game day's bucket.
// Alarms go to the stack's alert topic: a drill that failed (a method failed or missed
// its target, or something was left behind) or could not run (DrillPassed 0), and a
// task that stopped with an error or never started (ECS task state events).
//
// The task runs in a VPC of its own with public subnets and no NAT gateway (it needs
// only AWS's public endpoints and the API's); its security group admits nothing in.

import * as cdk from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as path from 'path';
import { Construct } from 'constructs';
import { Removal, TandemConfig } from './config';
import { ContractBinding, contractStatements } from './contract';
import { acknowledge } from './nag';

/** The namespace the drill's metrics go to (dr/src/drill/metrics.rs). */
export const GAME_DAY_NAMESPACE = 'tandem/DR';
/** Where in the bucket the reports go: drills/STACK/TIME/report.{html,json}. */
export const GAME_DAY_PREFIX = 'drills';
/** How long the reports are kept. */
export const GAME_DAY_REPORT_DAYS = 365;

export interface GameDayProps {
  readonly config: TandemConfig;
  readonly schedule: string;
  readonly contract: ContractBinding;
  /** Where the alarms go. */
  readonly alerts: sns.Topic;
}

export class GameDay extends Construct {
  readonly bucket: s3.Bucket;
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly cluster: ecs.Cluster;
  /** DrillPassed below 1: a method failed or missed its target, or the drill could not run. */
  readonly failed: cloudwatch.Alarm;
  /** EventBridge failed to start the task (FailedInvocations of the schedule's rule). */
  readonly notStarted: cloudwatch.Alarm;
  readonly rule: events.Rule;

  constructor(scope: Construct, id: string, props: GameDayProps) {
    super(scope, id);
    const stack = cdk.Stack.of(this);
    const { config } = props;
    const dev = config.removal === Removal.Dev;
    const removal = dev ? cdk.RemovalPolicy.DESTROY : cdk.RemovalPolicy.RETAIN;

    this.bucket = new s3.Bucket(this, 'Reports', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: cdk.Duration.days(GAME_DAY_REPORT_DAYS) }],
      removalPolicy: removal,
      autoDeleteObjects: dev,
    });
    acknowledge(this.bucket, 'AwsSolutions-S1', 'Drill reports, written by the game day task alone and read by operators; CloudTrail data events log object access where an account wants it.');

    const flowLogs = new logs.LogGroup(this, 'FlowLogs', { retention: logs.RetentionDays.ONE_MONTH, removalPolicy: removal });
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 }],
      flowLogs: {
        all: { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs), trafficType: ec2.FlowLogTrafficType.ALL },
      },
    });
    const securityGroup = new ec2.SecurityGroup(this, 'TaskSecurityGroup', {
      vpc,
      description: 'The game day task: nothing in; HTTPS out to AWS and the product API',
      allowAllOutbound: false,
    });
    securityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'AWS APIs and the product API over HTTPS');

    this.cluster = new ecs.Cluster(this, 'Cluster', { vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: logs.RetentionDays.THREE_MONTHS, removalPolicy: removal });
    const taskRole = new iam.Role(this, 'TaskRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'tandem game day: runs tandem dr-drill --stack against this deployment and publishes its metrics and reports',
    });
    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: 1024,
      memoryLimitMiB: 2048,
      taskRole,
      runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.X86_64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
    });
    const command = [
      'dr-drill',
      '--backend', 'dynamodb',
      '--stack', stack.stackName,
      '--primary-region', stack.region,
      '--methods', config.gameDayMethods.join(','),
      '--publish-metrics',
      '--report-to', `s3://${this.bucket.bucketName}/${GAME_DAY_PREFIX}`,
      '--json',
    ];
    this.taskDefinition.addContainer('Drill', {
      image: ecs.ContainerImage.fromAsset(path.join(__dirname, '..', '..'), {
        file: 'Dockerfile',
        platform: ecrAssets.Platform.LINUX_AMD64,
      }),
      command,
      // No environment: Fargate sets AWS_REGION, and everything else is in the command.
      // The DynamoDB drill keeps nothing on disk.
      readonlyRootFilesystem: true,
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'drill', logGroup, mode: ecs.AwsLogDriverMode.NON_BLOCKING }),
    });
    const executionRole = this.taskDefinition.obtainExecutionRole();
    acknowledge(executionRole, 'AwsSolutions-IAM5', 'ecr:GetAuthorizationToken supports no resource-level permissions; the image pull itself is limited to the image repository.', ['Resource::*']);

    // The schedule: EventBridge runs the task with a public address (no NAT gateway).
    const scheduleRole = new iam.Role(this, 'ScheduleRole', {
      assumedBy: new iam.ServicePrincipal('events.amazonaws.com'),
      description: 'tandem game day: EventBridge starts the drill task on its schedule',
    });
    this.rule = new events.Rule(this, 'Schedule', {
      description: `Runs the DR drill against ${stack.stackName} (the game day)`,
      schedule: events.Schedule.expression(props.schedule),
      targets: [
        new targets.EcsTask({
          cluster: this.cluster,
          taskDefinition: this.taskDefinition,
          role: scheduleRole,
          launchType: ecs.LaunchType.FARGATE,
          platformVersion: ecs.FargatePlatformVersion.LATEST,
          subnetSelection: { subnetType: ec2.SubnetType.PUBLIC },
          assignPublicIp: true,
          securityGroups: [securityGroup],
          retryAttempts: 2,
          maxEventAge: cdk.Duration.hours(1),
        }),
      ],
    });

    // A start that failed for good (RunTask refused: no address left in the subnets,
    // no Fargate capacity, a permission) makes no task and no metric: EventBridge
    // counts it in FailedInvocations (after its retries) and drops the event.
    this.notStarted = new cloudwatch.Alarm(this, 'NotStarted', {
      alarmDescription: `EventBridge could not start the game day's task of ${stack.stackName} (RunTask failed after its retries): no drill ran. The rule's target and the account's ECS and VPC quotas say why.`,
      metric: new cloudwatch.Metric({
        namespace: 'AWS/Events',
        metricName: 'FailedInvocations',
        dimensionsMap: { RuleName: this.rule.ruleName },
        statistic: cloudwatch.Stats.SUM,
        period: cdk.Duration.hours(1),
      }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.notStarted.addAlarmAction(new cwActions.SnsAction(props.alerts));

    // Alarms: a drill that failed or could not run publishes DrillPassed 0.
    this.failed = new cloudwatch.Alarm(this, 'Failed', {
      alarmDescription: `The game day's drill of ${stack.stackName} failed: a method failed or missed its target, something was left behind, or the drill could not run. Its report is in the bucket GameDayReportsBucket under ${GAME_DAY_PREFIX}/, its output in the task's log group; the metrics per method are in ${GAME_DAY_NAMESPACE}.`,
      metric: new cloudwatch.Metric({
        namespace: GAME_DAY_NAMESPACE,
        metricName: 'DrillPassed',
        dimensionsMap: { Stack: stack.stackName },
        statistic: cloudwatch.Stats.MINIMUM,
        period: cdk.Duration.hours(1),
      }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.failed.addAlarmAction(new cwActions.SnsAction(props.alerts));
    // A task that could not run the drill to its end: stopped with an exit code other
    // than 0 (passed) and 1 (failed, which the alarm reports), or never started.
    const stopped = (description: string, detail: Record<string, unknown>) =>
      new events.Rule(this, description.replace(/[^A-Za-z]/g, ''), {
        description,
        eventPattern: {
          source: ['aws.ecs'],
          detailType: ['ECS Task State Change'],
          detail: { clusterArn: [this.cluster.clusterArn], lastStatus: ['STOPPED'], ...detail },
        },
        targets: [new targets.SnsTopic(props.alerts)],
      });
    stopped('Game day task stopped with an error', { containers: { exitCode: [{ 'anything-but': [0, 1] }] } });
    stopped('Game day task failed to start', { stopCode: ['TaskFailedToStart'] });

    // The IAM contract: its placeholders, its principals, and the task role's policy
    // made from it (the dr-operator policy's calls and the game day's own).
    props.contract
      .bind({
        GameDayReports: this.bucket.bucketName,
        GameDayCluster: this.cluster.clusterName,
        GameDayTaskDefinition: this.taskDefinition.family,
        GameDayTaskDefinitionArn: this.taskDefinition.taskDefinitionArn,
        GameDayTaskRole: taskRole.roleName,
        GameDayExecutionRole: executionRole.roleName,
        GameDayLogs: logGroup.logGroupName,
        GameDayFlowLogs: flowLogs.logGroupName,
        WorkerImageRepository: cdk.Fn.sub(`cdk-${cdk.DefaultStackSynthesizer.DEFAULT_QUALIFIER}-container-assets-\${AWS::AccountId}-\${AWS::Region}`),
      })
      .principal('game-day-task', taskRole)
      .principal('game-day-execution', executionRole)
      .principal('game-day-schedule', scheduleRole);
    const flowLogRole = (vpc.node.findChild('all') as ec2.FlowLog).iamRole;
    if (flowLogRole) props.contract.principal('game-day-flow-logs', flowLogRole);
    const autoDeleteRole = stack.node.tryFindChild('Custom::S3AutoDeleteObjectsCustomResourceProvider')?.node.tryFindChild('Role');
    if (autoDeleteRole) props.contract.principal('dr-auto-delete-objects', autoDeleteRole);
    for (const statement of contractStatements('game-day-task', props.contract)) {
      taskRole.addToPolicy(statement);
    }

    const out = (id: string, value: string, description: string) => new cdk.CfnOutput(stack, id, { value, description });
    out('GameDayReportsBucket', this.bucket.bucketName, `The game day's reports: ${GAME_DAY_PREFIX}/STACK/TIME/report.html and report.json`);
    out('GameDayTaskDefinition', this.taskDefinition.taskDefinitionArn, "The game day's task (aws ecs run-task to run it now)");
    out('GameDayCluster', this.cluster.clusterName, "The game day task's cluster");
    out('GameDaySchedule', props.schedule, 'When the game day runs');
  }
}
