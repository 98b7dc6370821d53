// PipelineStack: the array pipeline on AWS. A VPC, an encrypted EFS volume behind one
// access point, Batch (a compute environment and one queue per stage) running
// `tandem worker` from the repository's Dockerfile, the egress bucket, the prepare and
// watch lambdas, the state machine that chains the stages N_TO_N, and the schedule.

import * as path from 'path';
import * as cdk from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as efs from 'aws-cdk-lib/aws-efs';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { ContractBinding, operatorPolicy } from './contract';
import { acknowledge, attrFinding } from './nag';
import { Compute, Removal, TandemConfig, dataRemoval } from './config';
import { TandemFunction } from './rust-lambda';
import { STAGES, Stage, PipelineStateMachine } from './state-machine';

/** Where the shared volume is mounted, in the Batch containers and in the lambdas. */
export const VOLUME_PATH = '/mnt/efs';
/** The key prefix under which runs put their results. */
export const RESULTS_PREFIX = 'runs';
/** The non-root POSIX user the access point maps every client to. */
const POSIX_USER = { uid: '1000', gid: '1000' };

export interface PipelineStackProps extends cdk.StackProps {
  readonly config: TandemConfig;
}

export class PipelineStack extends cdk.Stack {
  readonly stateMachine: PipelineStateMachine;
  /** This stack's part of the IAM contract (iam/contract.json). */
  readonly contract: ContractBinding;

  constructor(scope: Construct, id: string, props: PipelineStackProps) {
    super(scope, id, props);
    const config = props.config;
    const removal = dataRemoval(config.removal);
    const repoRoot = path.join(__dirname, '..', '..');
    this.contract = new ContractBinding(this);

    // Network: private subnets reach AWS through one NAT gateway, S3 through a gateway
    // endpoint; every flow is logged.
    const flowLogs = new logs.LogGroup(this, 'FlowLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: removal,
    });
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 1,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
      ],
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
      flowLogs: {
        all: {
          destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
          trafficType: ec2.FlowLogTrafficType.ALL,
        },
      },
    });

    // The shared volume: encrypted at rest, TLS and IAM authorization required, one
    // access point with a non-root user and a fixed root directory.
    const volumeSg = new ec2.SecurityGroup(this, 'VolumeSecurityGroup', {
      vpc,
      description: 'NFS to the tandem volume from the Batch jobs and the lambdas',
      allowAllOutbound: false,
    });
    const fileSystem = new efs.FileSystem(this, 'Volume', {
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroup: volumeSg,
      encrypted: true,
      performanceMode: efs.PerformanceMode.GENERAL_PURPOSE,
      throughputMode: efs.ThroughputMode.ELASTIC,
      removalPolicy: removal,
    });
    fileSystem.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'DenyWithoutTls',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['elasticfilesystem:ClientMount', 'elasticfilesystem:ClientWrite', 'elasticfilesystem:ClientRootAccess'],
        conditions: { Bool: { 'aws:SecureTransport': 'false' } },
      }),
    );
    const accessPoint = fileSystem.addAccessPoint('Runs', {
      path: '/tandem',
      createAcl: { ownerUid: POSIX_USER.uid, ownerGid: POSIX_USER.gid, permissions: '750' },
      posixUser: POSIX_USER,
    });

    // The egress bucket and its access-log bucket.
    const accessLogs = new s3.Bucket(this, 'AccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ expiration: cdk.Duration.days(90) }],
      removalPolicy: removal,
      autoDeleteObjects: config.removal === Removal.Dev,
    });
    acknowledge(accessLogs, 'AwsSolutions-S1', 'This is the access-log bucket of the egress bucket; logging it to itself would loop.');
    const bucket = new s3.Bucket(this, 'Results', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'results/',
      lifecycleRules: [{ abortIncompleteMultipartUploadAfter: cdk.Duration.days(1) }],
      removalPolicy: removal,
      autoDeleteObjects: config.removal === Removal.Dev,
    });
    const bucketUrl = `s3://${bucket.bucketName}/${RESULTS_PREFIX}`;
    const resultsArn = bucket.arnForObjects(`${RESULTS_PREFIX}/*`);

    // Batch: one compute environment, one queue per stage. Later stages have higher
    // priority, so when capacity is short a child flows through to egress before new
    // children start (the local executor's order), and no stage queues behind another.
    const batchSg = new ec2.SecurityGroup(this, 'BatchSecurityGroup', {
      vpc,
      description: 'tandem Batch jobs',
      allowAllOutbound: true,
    });
    fileSystem.connections.allowDefaultPortFrom(batchSg, 'NFS from the Batch jobs');
    const computeEnvironment =
      config.compute === Compute.Fargate
        ? new batch.FargateComputeEnvironment(this, 'Compute', {
            vpc,
            vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
            securityGroups: [batchSg],
            maxvCpus: config.maxvCpus,
          })
        : this.ec2Compute(vpc, batchSg, config.maxvCpus);
    const queues = {} as Record<Stage, batch.JobQueue>;
    STAGES.forEach((stage, i) => {
      queues[stage] = new batch.JobQueue(this, `${title(stage)}JobQueue`, {
        priority: 10 * (i + 1),
        computeEnvironments: [{ computeEnvironment, order: 1 }],
        // The job at the head of the queue that cannot get capacity is cancelled with
        // Batch's reason instead of waiting RUNNABLE out the day: after 10 minutes when
        // no compute environment can ever hold it, after tandem:capacityWaitMinutes
        // when instances are not to be had (detected for EC2 compute environments).
        // Batch acts on one job at a time, so this names the cause; the egress wait's
        // timeout is what ends a run that cannot proceed.
        jobStateTimeLimitActions: [
          {
            reason: batch.JobStateTimeLimitActionsReason.INSUFFICIENT_INSTANCE_CAPACITY,
            maxTime: config.capacityWait,
          },
          { reason: batch.JobStateTimeLimitActionsReason.COMPUTE_ENVIRONMENT_MAX_RESOURCE, maxTime: cdk.Duration.minutes(10) },
          { reason: batch.JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT, maxTime: cdk.Duration.minutes(10) },
        ],
      });
    });

    // The worker's role: its results, and the volume through the access point.
    const jobRole = new iam.Role(this, 'WorkerJobRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'tandem worker: writes results, reads them back on rerun, mounts the volume',
    });
    jobRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload'],
        resources: [resultsArn],
      }),
    );
    jobRole.addToPolicy(new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn] }));
    const mountStatement = () =>
      new iam.PolicyStatement({
        actions: ['elasticfilesystem:ClientMount', 'elasticfilesystem:ClientWrite'],
        resources: [fileSystem.fileSystemArn],
        conditions: { StringEquals: { 'elasticfilesystem:AccessPointArn': accessPoint.accessPointArn } },
      });
    jobRole.addToPolicy(mountStatement());
    acknowledge(jobRole, 'AwsSolutions-IAM5', 'One object per child under the results prefix; the keys are made at run time (RUN_ID/results/IIIII.parquet).', [attrFinding(bucket, `/${RESULTS_PREFIX}/*`)]);

    const workerLogs = new logs.LogGroup(this, 'WorkerLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: removal,
    });
    const image = ecs.ContainerImage.fromAsset(repoRoot, {
      file: 'Dockerfile',
      platform: ecrAssets.Platform.LINUX_AMD64,
    });
    const containerProps = {
      image,
      command: ['worker'],
      // AWS_REGION: Fargate sets it in the container, ECS on EC2 does not, and the SDK
      // needs it to reach S3.
      environment: { TANDEM_ROOT: VOLUME_PATH, TANDEM_BUCKET: bucketUrl, RUST_LOG: 'info', AWS_REGION: this.region },
      jobRole,
      user: POSIX_USER.uid,
      readonlyRootFilesystem: true,
      // Non-blocking with a buffer: in blocking mode a throttled CreateLogStream fails
      // the task at start, and the job definition's last rule (EXIT on anything else)
      // would make that final for the child; a thousand Fargate starts at once hit it.
      logging: ecs.LogDriver.awsLogs({
        streamPrefix: 'worker',
        logGroup: workerLogs,
        mode: ecs.AwsLogDriverMode.NON_BLOCKING,
        maxBufferSize: cdk.Size.mebibytes(25),
      }),
      volumes: [
        batch.EcsVolume.efs({
          name: 'volume',
          fileSystem,
          containerPath: VOLUME_PATH,
          enableTransitEncryption: true,
          useJobRole: true,
          accessPointId: accessPoint.accessPointId,
        }),
      ],
    };
    const container =
      config.compute === Compute.Fargate
        ? new batch.EcsFargateContainerDefinition(this, 'Worker', {
            ...containerProps,
            cpu: 0.25,
            memory: cdk.Size.mebibytes(512),
            fargatePlatformVersion: ecs.FargatePlatformVersion.LATEST,
            assignPublicIp: false,
          })
        : new batch.EcsEc2ContainerDefinition(this, 'Worker', {
            ...containerProps,
            cpu: 1,
            memory: cdk.Size.mebibytes(512),
          });
    acknowledge(
      container.executionRole,
      'AwsSolutions-IAM5',
      'ecr:GetAuthorizationToken supports no resource-level permissions; the image pull itself is limited to the image repository.',
      ['Resource::*'],
    );
    // Retry what the platform did to a child (a reclaimed or failed host, an image pull
    // or a network interface that failed to come up), never a child's own exit: the
    // workload is deterministic, so the same input fails the same way again. The last
    // rule makes that explicit: without it, Batch retries everything else.
    const jobDefinition = new batch.EcsJobDefinition(this, 'WorkerJob', {
      container,
      retryAttempts: 3,
      retryStrategies: [
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.SPOT_INSTANCE_RECLAIMED),
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.CANNOT_PULL_CONTAINER),
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.custom({ onReason: 'ResourceInitializationError*' })),
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.custom({ onStatusReason: 'Timeout waiting for network interface*' })),
        batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom({ onReason: '*' })),
      ],
      timeout: cdk.Duration.minutes(15),
      propagateTags: true,
    });

    // The lambdas mount the same access point at the same path (the mount opens NFS
    // from their security groups). Not FileSystem.fromEfsAccessPoint: its grant of
    // ClientMount is on every file system (*); this one is the worker's, on this file
    // system through this access point.
    const volume = new AccessPointVolume({
      arn: accessPoint.accessPointArn,
      localMountPath: VOLUME_PATH,
      connections: fileSystem.connections,
      dependency: [fileSystem.mountTargetsAvailable],
      policies: [mountStatement()],
    });
    const prepare = new TandemFunction(this, 'Prepare', {
      binary: 'prepare',
      description: 'tandem prepare: writes a run (manifest and ID file) on the volume',
      environment: { TANDEM_ROOT: VOLUME_PATH, TANDEM_BUCKET: bucketUrl },
      timeout: cdk.Duration.minutes(5),
      memorySize: 1024,
      removalPolicy: removal,
      architecture: config.lambdaArchitecture,
      vpc,
      filesystem: volume,
    });
    // Opening the bucket checks it (HeadBucket) and that no objects of the run id exist;
    // the manifest and a rerun's index map are published next to the results, and a
    // rerun reads every result to find the lost children.
    prepare.role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn] }));
    prepare.role.addToPolicy(
      new iam.PolicyStatement({ actions: ['s3:PutObject', 's3:GetObject'], resources: [resultsArn] }),
    );
    const watch = new TandemFunction(this, 'Watch', {
      binary: 'watch',
      description: 'tandem watch: names the failed children of a run; stops the jobs of an abandoned execution',
      environment: {
        TANDEM_ROOT: VOLUME_PATH,
        TANDEM_BUCKET: bucketUrl,
        TANDEM_QUEUES: STAGES.map((stage) => queueName(queues[stage])).join(','),
      },
      timeout: cdk.Duration.minutes(5),
      memorySize: 512,
      removalPolicy: removal,
      architecture: config.lambdaArchitecture,
      vpc,
      filesystem: volume,
    });
    watch.role.addToPolicy(
      new iam.PolicyStatement({ actions: ['batch:DescribeJobs', 'batch:ListJobs'], resources: ['*'] }),
    );
    // The full list of failed children and the job record are published next to the
    // results (a large list goes as a multipart upload, aborted if a part fails).
    watch.role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn] }));
    watch.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'],
        resources: [resultsArn],
      }),
    );
    watch.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['batch:TerminateJob'],
        resources: [this.formatArn({ service: 'batch', resource: 'job', resourceName: '*' })],
      }),
    );
    // The state machine's name is fixed (from the stack's), so the watch function's
    // role can name its executions without referring to the machine, which refers to
    // the function.
    const machineName = `${this.stackName}-run`;
    if (machineName.length > 80) {
      throw new Error(`stack name ${this.stackName} is too long: the state machine ${machineName} would exceed Step Functions' 80 characters`);
    }
    watch.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['states:GetExecutionHistory'],
        resources: [
          this.formatArn({
            service: 'states',
            resource: 'execution',
            resourceName: `${machineName}:*`,
            arnFormat: cdk.ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
    );

    this.stateMachine = new PipelineStateMachine(this, 'Run', {
      name: machineName,
      prepare: prepare.fn,
      watch: watch.fn,
      queues,
      jobDefinition,
      jobDefinitionName: jobDefinitionName(jobDefinition),
      timeout: config.runTimeout,
      removalPolicy: removal,
    });

    // Step Functions stops only the job it waits on when an execution is stopped, times
    // out or fails outside its Catch: procure and process would run on. Every such
    // execution makes the watch function terminate the unfinished jobs of its run.
    new events.Rule(this, 'AbandonedRun', {
      description: 'Terminates the jobs of a run whose execution was stopped, timed out or failed',
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: {
          status: ['ABORTED', 'TIMED_OUT', 'FAILED'],
          stateMachineArn: [this.stateMachine.machine.stateMachineArn],
        },
      },
      targets: [
        new targets.LambdaFunction(watch.fn, {
          event: events.RuleTargetInput.fromObject({
            abandoned_execution: {
              execution_arn: events.EventField.fromPath('$.detail.executionArn'),
              status: events.EventField.fromPath('$.detail.status'),
              // Only jobs created while the execution ran are its: a late or retried
              // event never stops a rerun started after it.
              start_date: events.EventField.fromPath('$.detail.startDate'),
              stop_date: events.EventField.fromPath('$.detail.stopDate'),
            },
          }),
          retryAttempts: 4,
          maxEventAge: cdk.Duration.hours(2),
        }),
      ],
    });

    // The schedule: the seed ran once a day; the workload comes from the context.
    const scheduleRole = new iam.Role(this, 'ScheduleRole', {
      assumedBy: new iam.ServicePrincipal('events.amazonaws.com'),
      description: 'tandem schedule: starts the run state machine',
    });
    new events.Rule(this, 'Schedule', {
      description: 'Starts a tandem run on a schedule',
      schedule: events.Schedule.expression(config.pipelineSchedule),
      targets: [
        new targets.SfnStateMachine(this.stateMachine.machine, {
          input: events.RuleTargetInput.fromObject({ records: config.records, ids_per_node: config.idsPerNode }),
          role: scheduleRole,
        }),
      ],
    });

    // The IAM contract: what its placeholders are here, and which construct is which
    // principal; the operator policy is made from it.
    this.contract
      .bind({
        PipelineStack: this.stackName,
        ResultsBucket: bucket.bucketName,
        ResultsPrefix: RESULTS_PREFIX,
        ProcureQueue: queueName(queues.procure),
        ProcessQueue: queueName(queues.process),
        EgressQueue: queueName(queues.egress),
        JobDefinitionName: jobDefinitionName(jobDefinition),
        StateMachine: machineName,
        PrepareFunction: prepare.fn.functionName,
        WatchFunction: watch.fn.functionName,
        FileSystem: fileSystem.fileSystemId,
        AccessPoint: accessPoint.accessPointId,
        WorkerLogs: workerLogs.logGroupName,
        PrepareLogs: prepare.logGroup.logGroupName,
        WatchLogs: watch.logGroup.logGroupName,
        FlowLogs: flowLogs.logGroupName,
        WorkerImageRepository: cdk.Fn.sub(
          `cdk-${cdk.DefaultStackSynthesizer.DEFAULT_QUALIFIER}-container-assets-\${AWS::AccountId}-\${AWS::Region}`,
        ),
      })
      .principal('pipeline-worker', jobRole)
      .principal('pipeline-execution', container.executionRole)
      .principal('prepare-function', prepare.role)
      .principal('watch-function', watch.role)
      .principal('run-state-machine', this.stateMachine.machine.role)
      .principal('pipeline-schedule', scheduleRole);
    const flowLogRole = (vpc.node.findChild('all') as ec2.FlowLog).iamRole;
    if (flowLogRole) this.contract.principal('vpc-flow-logs', flowLogRole);
    const autoDelete = this.node.tryFindChild('Custom::S3AutoDeleteObjectsCustomResourceProvider');
    const autoDeleteRole = autoDelete?.node.tryFindChild('Role');
    if (autoDeleteRole) this.contract.principal('cdk-auto-delete-objects', autoDeleteRole);
    const operator = operatorPolicy(this, 'OperatorPolicy', 'pipeline-operator', this.contract);
    this.contract.acknowledgeWildcards(this);

    const out = (id: string, value: string, description: string) =>
      new cdk.CfnOutput(this, id, { value, description });
    out(
      'OperatorPolicyArn',
      operator.managedPolicyArn,
      'Attach to whoever runs tandem start, watch, verify, report, submit and rerun --on aws against this stack',
    );
    out('ProcureQueue', queues.procure.jobQueueName, 'Batch job queue of the procure stage');
    out('ProcessQueue', queues.process.jobQueueName, 'Batch job queue of the process stage');
    out('EgressQueue', queues.egress.jobQueueName, 'Batch job queue of the egress stage');
    out('JobDefinition', jobDefinition.jobDefinitionArn, 'Batch job definition running tandem worker');
    out('BucketName', bucket.bucketName, 'The egress bucket');
    out('BucketUrl', bucketUrl, 'Where egress puts results (TANDEM_BUCKET)');
    out('StateMachineArn', this.stateMachine.machine.stateMachineArn, 'The run state machine');
    out('FileSystemId', fileSystem.fileSystemId, 'The EFS volume');
    out('AccessPointId', accessPoint.accessPointId, 'The EFS access point every client mounts');
    out('VolumePath', VOLUME_PATH, 'Where the volume is mounted in the containers and lambdas (TANDEM_ROOT)');
  }

  /** An EC2 compute environment (`-c tandem:compute=ec2`). */
  private ec2Compute(vpc: ec2.IVpc, sg: ec2.ISecurityGroup, maxvCpus: number): batch.IComputeEnvironment {
    const ce = new batch.ManagedEc2EcsComputeEnvironment(this, 'Compute', {
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [sg],
      maxvCpus,
      instanceClasses: [ec2.InstanceClass.C6I, ec2.InstanceClass.M6I],
      useOptimalInstanceClasses: false,
      allocationStrategy: batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
    });
    if (ce.instanceRole) this.contract.principal('batch-instance', ce.instanceRole);
    acknowledge(ce, 'AwsSolutions-IAM4', 'The ECS agent on Batch-managed instances needs AmazonEC2ContainerServiceforEC2Role; its actions act on a cluster Batch creates and names itself.', ['Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role']);
    return ce;
  }
}

/** A Lambda file system with the given configuration (FileSystem's constructor is protected). */
class AccessPointVolume extends lambda.FileSystem {
  constructor(config: lambda.FileSystemConfig) {
    super(config);
  }
}

/** The name of a job queue, from its ARN (`...:job-queue/NAME`). */
function queueName(q: batch.IJobQueue): string {
  return cdk.Fn.select(1, cdk.Fn.split('job-queue/', q.jobQueueArn));
}

/** The name of a job definition, from its ARN (`...:job-definition/NAME:REVISION`). */
export function jobDefinitionName(d: batch.IJobDefinition): string {
  return cdk.Fn.select(0, cdk.Fn.split(':', cdk.Fn.select(1, cdk.Fn.split('job-definition/', d.jobDefinitionArn))));
}

function title(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
