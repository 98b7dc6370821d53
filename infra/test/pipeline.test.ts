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
    expect(choice.Choices).toEqual([{ Variable: '$.run.array_size', NumericEquals: 1, Next: 'SingleProcure' }]);
    expect(choice.Default).toBe('ArrayProcure');
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
    expect(sm.States.ArrayProcure.Retry[0].ErrorEquals).toEqual(['Batch.TooManyRequestsException', 'Batch.ServerException']);
    expect(sm.States.ArrayEgress.Retry).toBeUndefined();
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
      expect.arrayContaining([{ Name: 'TANDEM_ROOT', Value: '/mnt/efs' }, expect.objectContaining({ Name: 'TANDEM_BUCKET' })]),
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
