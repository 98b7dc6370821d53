import { Match, Template } from 'aws-cdk-lib/assertions';
import { definition, synthApp } from './helpers';

const { app, pipeline } = synthApp();
app.synth();
const t = Template.fromStack(pipeline);
const sm = definition(t);

describe('the run state machine', () => {
  test('prepares, then chooses plain jobs for one child and arrays otherwise', () => {
    expect(sm.StartAt).toBe('Prepare');
    expect(sm.States.Prepare.Next).toBe('CollectJobs');
    expect(sm.States.Prepare.ResultPath).toBe('$.run');
    const choice = sm.States[sm.States.CollectJobs.Next];
    expect(choice.Type).toBe('Choice');
    expect(choice.Choices).toEqual([
      // A rerun that finds nothing lost submits nothing.
      { Variable: '$.run.array_size', NumericEquals: 0, Next: 'NothingToRerun' },
      { Variable: '$.run.array_size', NumericEquals: 1, Next: 'SingleProcure' },
    ]);
    expect(sm.States.NothingToRerun.Type).toBe('Succeed');
    expect(choice.Default).toBe('ArrayProcure');
    // Prepare's result carries a rerun's index map (empty for a new run) to every
    // child and to the watch, which names the original children through it.
    expect(sm.States.Prepare.ResultSelector['index_map.$']).toBe('$.index_map');
    for (const w of ['Watch', 'WatchFailure']) {
      expect(sm.States[w].Parameters['index_map.$']).toBe('$.run.index_map');
      // A stage without an id is found by its name; the submission joins the record.
      expect(sm.States[w].Parameters['job_names.$']).toBe('$.run.job_names');
      expect(sm.States[w].Parameters['array_size.$']).toBe('$.run.array_size');
    }
    for (const s of ['SingleProcure', 'SingleProcess', 'SingleEgress']) {
      expect(sm.States[s].Parameters.ArrayProperties).toBeUndefined();
    }
  });

  test('submits the three stages as arrays of the prepared size, chained N_TO_N', () => {
    for (const s of ['ArrayProcure', 'ArrayProcess', 'ArrayEgress']) {
      expect(sm.States[s].Parameters.ArrayProperties).toEqual({ 'Size.$': '$.run.array_size' });
      expect(sm.States[s].Parameters['JobName.$']).toMatch(/^\$\.run\.job_names\.(procure|process|egress)$/);
    }
    expect(sm.States.ArrayProcure.Parameters.DependsOn).toBeUndefined();
    expect(sm.States.ArrayProcess.Parameters.DependsOn).toEqual([{ 'JobId.$': '$.jobs.procure.JobId', Type: 'N_TO_N' }]);
    expect(sm.States.ArrayEgress.Parameters.DependsOn).toEqual([{ 'JobId.$': '$.jobs.process.JobId', Type: 'N_TO_N' }]);
    // One child: plain dependencies, no type.
    expect(sm.States.SingleProcess.Parameters.DependsOn).toEqual([{ 'JobId.$': '$.jobs.procure.JobId' }]);
    // Procure and process are submitted and left to run; egress is waited for.
    expect(sm.States.ArrayProcure.Resource).toMatch(/:states:::batch:submitJob$/);
    expect(sm.States.ArrayProcess.Resource).toMatch(/:states:::batch:submitJob$/);
    expect(sm.States.ArrayEgress.Resource).toMatch(/:states:::batch:submitJob\.sync$/);
    expect(sm.States.ArrayProcure.Parameters.ContainerOverrides.Environment).toEqual([
      { Name: 'TANDEM_RUN_ID', 'Value.$': '$.run.run_id' },
      { Name: 'TANDEM_STAGE', Value: 'procure' },
      { Name: 'TANDEM_INDEX_MAP', 'Value.$': '$.run.index_map' },
    ]);
    // Each stage goes to its own queue.
    const queues = ['ArrayProcure', 'ArrayProcess', 'ArrayEgress'].map((s) => JSON.stringify(sm.States[s].Parameters.JobQueue));
    expect(new Set(queues).size).toBe(3);
  });

  test('any failure names the failed children and fails; success needs every stage SUCCEEDED', () => {
    for (const s of ['ArrayProcure', 'ArrayProcess', 'ArrayEgress', 'SingleProcure', 'SingleProcess', 'SingleEgress', 'Watch']) {
      expect(sm.States[s].Catch).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'WatchFailure' }]);
    }
    expect(sm.States.WatchFailure.Parameters.terminate_unfinished).toBe(true);
    expect(sm.States.WatchFailure.Parameters['error.$']).toBe('$.error');
    expect(sm.States.WatchFailure.Next).toBe('RunFailed');
    expect(sm.States.RunFailed).toEqual({ Type: 'Fail', Error: 'TandemRunFailed', CausePath: '$.watch.summary' });
    expect(sm.States.ArrayEgress.Next).toBe('Watch');
    expect(sm.States.Watch.Parameters.terminate_unfinished).toBe(false);
    expect(sm.States['Succeeded?'].Choices).toEqual([
      { Variable: '$.watch.succeeded', BooleanEquals: true, Next: 'RunSucceeded' },
    ]);
    expect(sm.States['Succeeded?'].Default).toBe('RunFailed');
    expect(sm.States.Prepare.Catch[0].Next).toBe('PrepareFailed');
  });

  test('retries the lambdas and only transient Batch errors, never a wait', () => {
    for (const s of ['Prepare', 'Watch', 'WatchFailure']) {
      expect(sm.States[s].Retry[0].ErrorEquals).toEqual(expect.arrayContaining(['Lambda.ServiceException']));
    }
    // Throttling arrives as Batch.AWSBatchException (see BATCH_TRANSIENT), never as
    // Batch.TooManyRequestsException; the wait is never retried (a second array).
    for (const s of ['ArrayProcure', 'ArrayProcess', 'SingleProcure', 'SingleProcess']) {
      expect(sm.States[s].Retry).toEqual([
        expect.objectContaining({
          ErrorEquals: ['Batch.AWSBatchException', 'Batch.ServerException'],
          JitterStrategy: 'FULL',
          MaxDelaySeconds: 60,
        }),
      ]);
    }
    expect(sm.States.ArrayEgress.Retry).toBeUndefined();
  });

  test('the egress wait times out before the execution, into the Catch that stops every stage', () => {
    for (const s of ['ArrayEgress', 'SingleEgress']) {
      expect(sm.States[s].Resource).toMatch(/batch:submitJob\.sync$/);
      expect(sm.States[s].TimeoutSeconds).toBe(24 * 3600 - 30 * 60);
      expect(sm.States[s].TimeoutSeconds).toBeLessThan(sm.TimeoutSeconds);
      // Not the children's attempt timeout: that stays the job definition's.
      expect(sm.States[s].Parameters.Timeout).toBeUndefined();
      const c = sm.States[s].Catch[0];
      expect(c.ErrorEquals).toEqual(['States.ALL']);
      expect(c.Next).toBe('WatchFailure');
    }
    expect(sm.States.WatchFailure.Parameters.terminate_unfinished).toBe(true);
  });

  test('an execution stopped, timed out or failed makes the watch function stop its run\'s jobs', () => {
    const rules = Object.values(t.findResources('AWS::Events::Rule')) as any[];
    const abandoned = rules.find((r) => r.Properties.EventPattern?.source?.[0] === 'aws.states');
    expect(abandoned.Properties.EventPattern).toEqual({
      source: ['aws.states'],
      'detail-type': ['Step Functions Execution Status Change'],
      detail: { status: ['ABORTED', 'TIMED_OUT', 'FAILED'], stateMachineArn: [{ Ref: expect.stringMatching(/^RunMachine/) }] },
    });
    const target = abandoned.Properties.Targets[0];
    expect(target.Arn).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^WatchFunction/), 'Arn'] });
    expect(target.RetryPolicy).toEqual({ MaximumEventAgeInSeconds: 7200, MaximumRetryAttempts: 4 });
    expect(JSON.parse(target.InputTransformer.InputTemplate.replace(/<([\w-]+)>/g, '"$1"'))).toEqual({
      abandoned_execution: {
        execution_arn: 'detail-executionArn',
        status: 'detail-status',
        start_date: 'detail-startDate',
        stop_date: 'detail-stopDate',
      },
    });
    // The placeholders are bare: the event's own JSON (strings quoted, dates numbers).
    expect(target.InputTransformer.InputTemplate).toContain('"start_date":<detail-startDate>');
    expect(target.InputTransformer.InputPathsMap).toEqual({
      'detail-executionArn': '$.detail.executionArn',
      'detail-status': '$.detail.status',
      'detail-startDate': '$.detail.startDate',
      'detail-stopDate': '$.detail.stopDate',
    });
    // The function knows the queues to look in, and may read the executions' history.
    const fns = Object.values(t.findResources('AWS::Lambda::Function')) as any[];
    const watch = fns.find((f) => f.Properties.Environment?.Variables?.TANDEM_QUEUES);
    expect(watch.Properties.Environment.Variables.TANDEM_QUEUES['Fn::Join'][1]).toHaveLength(5);
    t.hasResourceProperties('AWS::StepFunctions::StateMachine', { StateMachineName: 'PipelineStack-run' });
  });

  test('has a timeout, logs everything, traces, and stays far below the history limit', () => {
    expect(sm.TimeoutSeconds).toBe(24 * 3600);
    t.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      LoggingConfiguration: Match.objectLike({ Level: 'ALL', IncludeExecutionData: true }),
      TracingConfiguration: { Enabled: true },
    });
    // A run passes through at most the states of one path; each makes a handful of
    // history events (a .sync wait included), whatever the array size.
    const states = Object.keys(sm.States).length;
    expect(states).toBeLessThan(20);
    expect(states * 6).toBeLessThan(25_000 / 100);
  });
});

describe('Batch', () => {
  test('one queue per stage, later stages first, on one compute environment', () => {
    const queues = t.findResources('AWS::Batch::JobQueue');
    const priorities = Object.values(queues).map((q: any) => q.Properties.Priority).sort();
    expect(priorities).toEqual([10, 20, 30]);
    t.resourceCountIs('AWS::Batch::ComputeEnvironment', 1);
    // A child that cannot get capacity is cancelled with the reason, not left RUNNABLE.
    for (const q of Object.values(queues) as any[]) {
      expect(q.Properties.JobStateTimeLimitActions).toEqual([
        { Action: 'CANCEL', MaxTimeSeconds: 4 * 3600, Reason: 'CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY', State: 'RUNNABLE' },
        { Action: 'CANCEL', MaxTimeSeconds: 600, Reason: 'MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE', State: 'RUNNABLE' },
        { Action: 'CANCEL', MaxTimeSeconds: 600, Reason: 'MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT', State: 'RUNNABLE' },
      ]);
    }
    t.hasResourceProperties('AWS::Batch::ComputeEnvironment', {
      ComputeResources: Match.objectLike({ Type: 'FARGATE', MaxvCpus: 256 }),
    });
  });

  test('the worker job retries platform failures only, ends in an explicit EXIT and times out', () => {
    const defs = Object.values(t.findResources('AWS::Batch::JobDefinition')) as any[];
    expect(defs).toHaveLength(1);
    const p = defs[0].Properties;
    expect(p.RetryStrategy.Attempts).toBe(3);
    const rules = p.RetryStrategy.EvaluateOnExit;
    expect(rules[rules.length - 1]).toEqual({ Action: 'EXIT', OnReason: '*' });
    expect(rules.slice(0, -1).every((r: any) => r.Action === 'RETRY')).toBe(true);
    expect(rules).toContainEqual({ Action: 'RETRY', OnStatusReason: 'Host EC2*' });
    expect(p.Timeout).toEqual({ AttemptDurationSeconds: 900 });
    const c = p.ContainerProperties;
    expect(c.Command).toEqual(['worker']);
    expect(c.User).toBe('1000');
    expect(c.ReadonlyRootFilesystem).toBe(true);
    expect(c.Environment).toEqual(
      expect.arrayContaining([
        { Name: 'TANDEM_ROOT', Value: '/mnt/efs' },
        expect.objectContaining({ Name: 'TANDEM_BUCKET' }),
        // ECS on EC2 does not set it (Fargate does).
        { Name: 'AWS_REGION', Value: 'us-east-2' },
      ]),
    );
    // Non-blocking logs: a throttled CreateLogStream must not fail a child at start.
    expect(c.LogConfiguration.Options).toEqual(
      expect.objectContaining({ mode: 'non-blocking', 'max-buffer-size': '26214400b' }),
    );
    expect(c.Volumes[0].EfsVolumeConfiguration).toEqual(
      expect.objectContaining({
        TransitEncryption: 'ENABLED',
        AuthorizationConfig: expect.objectContaining({ Iam: 'ENABLED', AccessPointId: expect.anything() }),
      }),
    );
    expect(c.MountPoints[0].ContainerPath).toBe('/mnt/efs');
  });
});

describe('storage', () => {
  test('EFS is encrypted, refuses plain NFS, and has one non-root access point', () => {
    t.hasResourceProperties('AWS::EFS::FileSystem', {
      Encrypted: true,
      FileSystemPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
    t.hasResourceProperties('AWS::EFS::AccessPoint', {
      PosixUser: { Uid: '1000', Gid: '1000' },
      RootDirectory: { Path: '/tandem', CreationInfo: { OwnerUid: '1000', OwnerGid: '1000', Permissions: '750' } },
    });
  });

  test('the egress bucket is encrypted, private, TLS-only, logged, and aborts stale uploads', () => {
    t.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: Match.anyValue(),
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      LoggingConfiguration: Match.objectLike({ LogFilePrefix: 'results/' }),
      LifecycleConfiguration: {
        Rules: [Match.objectLike({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' })],
      },
    });
    const policies = Object.values(t.findResources('AWS::S3::BucketPolicy')) as any[];
    expect(policies).toHaveLength(2);
    for (const p of policies) {
      expect(p.Properties.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({
          Effect: 'Deny',
          Action: 's3:*',
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
      );
    }
  });
});

describe('the schedule', () => {
  test('starts the state machine daily with the workload from the context', () => {
    t.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'cron(0 6 * * ? *)',
      Targets: [Match.objectLike({ Input: JSON.stringify({ records: 400000, ids_per_node: 40 }) })],
    });
  });

  test('takes another workload and schedule from the context, and refuses one over 10,000 children', () => {
    const other = synthApp({ 'tandem:records': 1_000_000, 'tandem:idsPerNode': 100, 'tandem:pipelineSchedule': 'rate(6 hours)' });
    const o = Template.fromStack(other.pipeline);
    o.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(6 hours)',
      Targets: [Match.objectLike({ Input: JSON.stringify({ records: 1000000, ids_per_node: 100 }) })],
    });
    expect(() => synthApp({ 'tandem:records': 1_000_000 })).toThrow(/use 100 or more/);
    expect(() => synthApp({ 'tandem:removal': 'staging' })).toThrow(/tandem:removal = "staging".*dev, prod/);
    expect(() => synthApp({ 'tandem:pipelineSchedule': 'daily' })).toThrow(/pipelineSchedule/);
  });
});

describe('IAM and the lambdas', () => {
  test('no policy grants a wildcard action, and no role uses an AWS-managed policy', () => {
    for (const [id, p] of Object.entries(t.findResources('AWS::IAM::Policy')) as [string, any][]) {
      for (const s of p.Properties.PolicyDocument.Statement) {
        for (const a of [s.Action].flat()) {
          expect(`${id}: ${a}`).not.toMatch(/\*/);
        }
      }
    }
    for (const [id, r] of Object.entries(t.findResources('AWS::IAM::Role')) as [string, any][]) {
      // The one exception is CDK's own provider that empties the buckets on
      // `cdk destroy` in the dev profile.
      if (id.startsWith('CustomS3AutoDeleteObjectsCustomResourceProvider')) continue;
      expect(`${id}: ${JSON.stringify(r.Properties.ManagedPolicyArns ?? [])}`).toBe(`${id}: []`);
    }
  });

  test('prepare and watch are Rust functions on provided.al2023 mounting the volume, with log retention', () => {
    const fns = Object.values(t.findResources('AWS::Lambda::Function')).filter(
      (f: any) => f.Properties.Runtime === 'provided.al2023',
    ) as any[];
    expect(fns).toHaveLength(2);
    for (const f of fns) {
      expect(f.Properties.Handler).toBe('bootstrap');
      expect(f.Properties.FileSystemConfigs[0].LocalMountPath).toBe('/mnt/efs');
      expect(f.Properties.Environment.Variables.TANDEM_ROOT).toBe('/mnt/efs');
      expect(f.Properties.VpcConfig).toBeDefined();
    }
    t.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
  });

  test('the outputs name what the CLI reads', () => {
    const outputs = Object.keys(t.findOutputs('*'));
    for (const o of [
      'ProcureQueue',
      'ProcessQueue',
      'EgressQueue',
      'JobDefinition',
      'BucketName',
      'BucketUrl',
      'StateMachineArn',
      'FileSystemId',
      'AccessPointId',
      'VolumePath',
    ]) {
      expect(outputs).toContain(o);
    }
  });

  test('arm64 (Graviton) functions are built for aarch64 against the same glibc', () => {
    const arm = synthApp({ 'tandem:lambdaArchitecture': 'arm64' });
    const fns = Object.values(Template.fromStack(arm.pipeline).findResources('AWS::Lambda::Function')).filter(
      (f: any) => f.Properties.Runtime === 'provided.al2023',
    ) as any[];
    expect(fns.map((f) => f.Properties.Architectures)).toEqual([['arm64'], ['arm64']]);
    expect(() => synthApp({ 'tandem:lambdaArchitecture': 'sparc' })).toThrow(/x86_64, arm64/);
  });

  test('the EC2 compute profile synthesizes too', () => {
    const ec2 = synthApp({ 'tandem:compute': 'ec2' });
    ec2.app.synth();
    Template.fromStack(ec2.pipeline).hasResourceProperties('AWS::Batch::ComputeEnvironment', {
      ComputeResources: Match.objectLike({ Type: 'EC2' }),
    });
  });
});
