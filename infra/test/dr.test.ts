import { Match, Template } from 'aws-cdk-lib/assertions';
import { synthApp } from './helpers';
import { ACCOUNT, NAME_PROPERTY, views } from './iam';
import { loadContract } from '../lib/contract';
import { GAME_DAY_NAMESPACE } from '../lib/game-day';

const built = synthApp();
const { app, dr, drRecovery, drStandby } = built;
app.synth();
const t = Template.fromStack(dr);
const r = Template.fromStack(drRecovery);
const sb = Template.fromStack(drStandby);
/** The four stacks' templates, resolved as CloudFormation would deploy them. */
const names = views(built);

describe('the Product table', () => {
  test('pays per request, keeps 35 days of PITR, has a replica in the recovery region, is encrypted', () => {
    t.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [{ AttributeName: 'product_id', KeyType: 'HASH' }],
      SSESpecification: Match.objectLike({ SSEEnabled: true }),
      Replicas: Match.arrayWith([
        Match.objectLike({
          Region: 'us-east-1',
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true, RecoveryPeriodInDays: 35 },
        }),
        Match.objectLike({
          Region: 'us-east-2',
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true, RecoveryPeriodInDays: 35 },
        }),
      ]),
    });
  });

  test('dev destroys data on cdk destroy; prod retains it and protects the table', () => {
    const tables = Object.values(t.findResources('AWS::DynamoDB::GlobalTable')) as any[];
    expect(tables[0].DeletionPolicy).toBe('Delete');
    const prod = synthApp({ 'tandem:removal': 'prod' });
    const p = Template.fromStack(prod.dr);
    const ptable = Object.values(p.findResources('AWS::DynamoDB::GlobalTable'))[0] as any;
    expect(ptable.DeletionPolicy).toBe('Retain');
    expect(ptable.Properties.Replicas.every((x: any) => x.DeletionProtectionEnabled === true)).toBe(true);
    for (const v of Object.values(p.findResources('AWS::Backup::BackupVault')) as any[]) {
      expect(v.DeletionPolicy).toBe('Retain');
    }
    const pipe = Template.fromStack(prod.pipeline);
    for (const b of Object.values(pipe.findResources('AWS::S3::Bucket')) as any[]) {
      expect(b.DeletionPolicy).toBe('Retain');
    }
    expect(Object.values(pipe.findResources('AWS::EFS::FileSystem'))[0]).toMatchObject({ DeletionPolicy: 'Retain' });
    pipe.resourceCountIs('Custom::S3AutoDeleteObjects', 0);
    // dev empties the buckets so cdk destroy can delete them.
    Template.fromStack(synthApp().pipeline).resourceCountIs('Custom::S3AutoDeleteObjects', 2);
  });
});

describe('AWS Backup', () => {
  test('one plan, one daily rule at 09:10 UTC kept 30 days, copied to the recovery vault', () => {
    const plans = Object.values(t.findResources('AWS::Backup::BackupPlan')) as any[];
    expect(plans).toHaveLength(1);
    const rules = plans[0].Properties.BackupPlan.BackupPlanRule;
    expect(rules).toHaveLength(1);
    expect(rules[0].ScheduleExpression).toBe('cron(10 9 * * ? *)');
    // Started within an hour (not AWS's default 8) and done within two: by 12:10.
    expect(rules[0].StartWindowMinutes).toBe(60);
    expect(rules[0].CompletionWindowMinutes).toBe(120);
    expect(rules[0].Lifecycle).toEqual({ DeleteAfterDays: 30 });
    expect(rules[0].CopyActions).toHaveLength(1);
    expect(rules[0].CopyActions[0].Lifecycle).toEqual({ DeleteAfterDays: 30 });
    // The recovery stack's vault, read across regions (its name is the stack's).
    const [dv, rv] = ['DisasterRecoveryStack', 'DisasterRecoveryRegionStack'].map((n) => names.find((v) => v.stack.stackName === n)!);
    const recoveryVault = rv.r.str(Object.values(r.findResources('AWS::Backup::BackupVault'))[0].Properties.BackupVaultName);
    expect(dv.r.str(rules[0].CopyActions[0].DestinationBackupVaultArn)).toBe(
      `arn:aws:backup:us-east-1:${ACCOUNT}:backup-vault:${recoveryVault}`,
    );
  });

  test('the selection covers the table with the stack\'s own role; both vaults have their own keys', () => {
    t.hasResourceProperties('AWS::Backup::BackupSelection', {
      BackupSelection: Match.objectLike({
        IamRoleArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^BackupRole'), 'Arn'] },
        Resources: [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^Product'), 'Arn'] }],
      }),
    });
    t.hasResourceProperties('AWS::Backup::BackupVault', { EncryptionKeyArn: Match.anyValue() });
    r.hasResourceProperties('AWS::Backup::BackupVault', { EncryptionKeyArn: Match.anyValue() });
    r.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    expect(drRecovery.region).toBe('us-east-1');
    expect(dr.region).toBe('us-east-2');
  });

  test('the post-backup function runs when a backup job completes and daily as a safety net', () => {
    t.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.backup'],
        'detail-type': ['Backup Job State Change'],
        detail: { state: ['COMPLETED'], backupVaultName: [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^Vault'), 'BackupVaultName'] }] },
      },
    });
    // The daily run comes after the backup's latest completion (12:10) and the
    // hour its copy may take to be listed.
    t.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'cron(0 14 * * ? *)' });
    const env = (Object.values(t.findResources('AWS::Lambda::Function')) as any[])
      .map((f) => f.Properties.Environment?.Variables)
      .find((v) => v?.BACKUP_PLAN_ID);
    expect(env.RETENTION_DAYS).toBe('30');
    // One path makes the copy: the plan's copy action. The function starts none.
    expect(env.COPY_ROLE_ARN).toBeUndefined();
    const statements = (Object.values(t.findResources('AWS::IAM::Policy')) as any[]).flatMap((p) => p.Properties.PolicyDocument.Statement);
    expect(statements.some((s: any) => [s.Action].flat().includes('backup:StartCopyJob'))).toBe(false);
  });

  test('failures reach the alert topic: the post-backup check\'s failure queue and its alarm, failed jobs', () => {
    t.resourceCountIs('AWS::SNS::Topic', 1);
    const topic = Object.keys(t.findResources('AWS::SNS::Topic'))[0];
    const queue = Object.keys(t.findResources('AWS::SQS::Queue'))[0];
    // A failed invocation goes to the queue at once (a failed check fails the same
    // way when tried again).
    t.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      MaximumRetryAttempts: 0,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [queue, 'Arn'] } } },
    });
    // The queue's alarm pages once, on the topic.
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Namespace: 'AWS/SQS',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: [{ Ref: topic }],
    });
    // The topic's policy lets CloudWatch publish for that alarm (the policy CDK
    // writes replaces SNS's default), and EventBridge for the rules.
    const statements = (Object.values(t.findResources('AWS::SNS::TopicPolicy'))[0] as any).Properties.PolicyDocument.Statement;
    const alarmStatement = statements.find((st: any) => st.Principal?.Service === 'cloudwatch.amazonaws.com');
    expect(alarmStatement.Action).toBe('sns:Publish');
    expect(JSON.stringify(alarmStatement.Condition)).toContain('aws:SourceArn');
    expect(statements.some((st: any) => st.Principal?.Service === 'events.amazonaws.com')).toBe(true);
    // The plan's failed backup jobs and copies out of its vault go to the topic at
    // once; the drill's jobs in the same vault are not the plan's.
    t.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.backup'],
        'detail-type': ['Backup Job State Change'],
        detail: Match.objectLike({ state: ['FAILED', 'ABORTED', 'EXPIRED', 'PARTIAL'], createdBy: { backupPlanArn: Match.anyValue() } }),
      },
      Targets: [Match.objectLike({ Arn: { Ref: topic } })],
    });
    t.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.backup'],
        'detail-type': ['Copy Job State Change'],
        detail: { state: ['FAILED', 'PARTIAL'], sourceBackupVaultArn: Match.anyValue() },
      },
      Targets: [Match.objectLike({ Arn: { Ref: topic } })],
    });
    // The check runs on the plan's completed jobs only.
    t.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({ detail: Match.objectLike({ state: ['COMPLETED'], createdBy: { backupPlanArn: Match.anyValue() } }) }),
    });
    expect(Object.keys(t.findOutputs('AlertsTopicArn'))).toHaveLength(1);
    // No subscription unless one is asked for; an email one when it is.
    t.resourceCountIs('AWS::SNS::Subscription', 0);
    const mailed = Template.fromStack(synthApp({ 'tandem:alertEmail': 'oncall@example.com' }).dr);
    mailed.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'oncall@example.com' });
    expect(() => synthApp({ 'tandem:alertEmail': 'oncall' })).toThrow(/tandem:alertEmail = "oncall" is not valid/);
  });

  test('the post-backup function lists only the plan vault\'s recovery points', () => {
    // What the function calls, and nothing that reads other vaults.
    const policies = Object.values(t.findResources('AWS::IAM::Policy')) as any[];
    const statements = policies.flatMap((p) => p.Properties.PolicyDocument.Statement);
    const byVault = statements.find((s: any) => s.Action === 'backup:ListRecoveryPointsByBackupVault');
    expect(byVault).toBeDefined();
    expect(JSON.stringify(byVault.Resource)).toContain('BackupVaultArn');
    expect(statements.some((s: any) => [s.Action].flat().includes('backup:ListRecoveryPointsByResource'))).toBe(false);
  });
});

describe('the product API', () => {
  test('serves the seed\'s six routes, each requiring the API key and validated', () => {
    const methods = Object.values(t.findResources('AWS::ApiGateway::Method')) as any[];
    const resources = t.findResources('AWS::ApiGateway::Resource');
    const routes = methods.map((m) => {
      const path = (resources[m.Properties.ResourceId.Ref] as any).Properties.PathPart;
      return `${m.Properties.HttpMethod} /${path}`;
    });
    expect(routes.sort()).toEqual(
      [
        'DELETE /deleteProduct',
        'GET /getProduct',
        'GET /getProducts',
        'GET /health',
        'POST /addProduct',
        'POST /createBackup',
        'PUT /updateProduct',
      ].sort(),
    );
    for (const m of methods) {
      // Route 53's health checkers send no key: /health alone answers without one.
      const health = JSON.stringify(m.Properties.ResourceId).includes('health');
      expect([health, m.Properties.ApiKeyRequired]).toEqual([health, !health]);
      expect(m.Properties.RequestValidatorId).toBeDefined();
      expect(m.Properties.Integration.Type).toBe('AWS_PROXY');
    }
    t.hasResourceProperties('AWS::ApiGateway::RequestValidator', { ValidateRequestBody: true, ValidateRequestParameters: true });
  });

  test('has a stage with access and execution logs, a usage plan with throttling, and a WAF', () => {
    t.hasResourceProperties('AWS::ApiGateway::Stage', {
      StageName: 'prod',
      AccessLogSetting: Match.objectLike({ DestinationArn: Match.anyValue() }),
      MethodSettings: [Match.objectLike({ LoggingLevel: 'INFO', DataTraceEnabled: false })],
      TracingEnabled: true,
    });
    t.hasResourceProperties('AWS::ApiGateway::UsagePlan', {
      Throttle: { RateLimit: 50, BurstLimit: 100 },
    });
    t.resourceCountIs('AWS::ApiGateway::ApiKey', 1);
    t.resourceCountIs('AWS::WAFv2::WebACLAssociation', 1);
  });

  test('the usage plan, the stage and the web ACL tell one story about request rates', () => {
    const limits = (template: Template) => {
      const plan = (Object.values(template.findResources('AWS::ApiGateway::UsagePlan'))[0] as any).Properties.Throttle;
      const stage = (Object.values(template.findResources('AWS::ApiGateway::Stage'))[0] as any).Properties.MethodSettings[0];
      const rule = (Object.values(template.findResources('AWS::WAFv2::WebACL'))[0] as any).Properties.Rules.find(
        (r: any) => r.Name === 'RatePerAddress',
      ).Statement.RateBasedStatement;
      return [plan.RateLimit, plan.BurstLimit, stage.ThrottlingRateLimit, stage.ThrottlingBurstLimit, rule.Limit, rule.EvaluationWindowSec];
    };
    // A client within its key's 50 a second is never blocked by the WAF first:
    // five minutes of it is 15,000 requests from its address.
    expect(limits(t)).toEqual([50, 100, 100, 200, 15000, 300]);
    expect(limits(sb)).toEqual([50, 100, 100, 200, 15000, 300]);
    const a = synthApp({ 'tandem:apiRatePerSecond': 20 });
    expect(limits(Template.fromStack(a.dr))).toEqual([20, 40, 40, 80, 6000, 300]);
    expect(limits(Template.fromStack(a.drStandby))).toEqual([20, 40, 40, 80, 6000, 300]);
    expect(() => synthApp({ 'tandem:apiRatePerSecond': 0 })).toThrow(/tandem:apiRatePerSecond = 0 is not valid/);
  });

  test('the function is the product_api binary over the table, on provided.al2023', () => {
    t.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'provided.al2023',
      Handler: 'bootstrap',
      Environment: { Variables: Match.objectLike({ TABLE_NAME: Match.anyValue() }) },
    });
  });

  test('the outputs name what the drill and clients read', () => {
    const outputs = Object.keys(t.findOutputs('*'));
    for (const o of [
      'ApiUrl',
      'ApiKeyId',
      'TableName',
      'TableArn',
      'PrimaryVaultName',
      'RecoveryVaultName',
      'RecoveryVaultArn',
      'RecoveryRegion',
      'BackupPlanId',
      'BackupRoleArn',
    ]) {
      expect(outputs).toContain(o);
    }
  });
});

describe('the standby region', () => {
  const fn = (template: Template) =>
    Object.values(template.findResources('AWS::Lambda::Function', { Properties: { Handler: 'bootstrap' } })) as any[];

  test('carries the product API over the replica: function, REST API, key, usage plan, WAF', () => {
    expect(drStandby.region).toBe('us-east-1');
    const [f] = fn(sb);
    expect(f.Properties.FunctionName).toBe('DisasterRecoveryStack-standby-api');
    expect(f.Properties.Environment.Variables.TANDEM_COMPONENT).toBe('standby-api function');
    // The served table's name comes from the primary stack (a cross-region reference).
    expect(JSON.stringify(f.Properties.Environment.Variables.TABLE_NAME)).toContain('ExportsReader');
    sb.resourceCountIs('AWS::ApiGateway::RestApi', 1);
    sb.resourceCountIs('AWS::ApiGateway::UsagePlan', 1);
    sb.resourceCountIs('AWS::WAFv2::WebACLAssociation', 1);
    const methods = Object.values(sb.findResources('AWS::ApiGateway::Method')) as any[];
    expect(methods).toHaveLength(7);
    expect(app.node.findAll().length).toBeGreaterThan(0);
  });

  test('is a pilot light by default: switched off until the failover command', () => {
    const [f] = fn(sb);
    expect(f.Properties.ReservedConcurrentExecutions).toBe(0);
    expect(sb.findOutputs('StandbyMode').StandbyMode.Value).toBe('pilot-light');
    // The primary's function is never switched off.
    for (const p of fn(t)) expect(p.Properties.ReservedConcurrentExecutions).toBeUndefined();
  });

  test('as a warm standby it answers all along', () => {
    const warm = synthApp({ 'tandem:standby': 'warm-standby' });
    const w = Template.fromStack(warm.drStandby);
    const [f] = fn(w);
    expect(f.Properties.ReservedConcurrentExecutions).toBeUndefined();
    expect(w.findOutputs('StandbyMode').StandbyMode.Value).toBe('warm-standby');
    expect(() => synthApp({ 'tandem:standby': 'lukewarm' })).toThrow(/tandem:standby = "lukewarm".*pilot-light, warm-standby/);
  });

  test('both regions take the same key, from a secret replicated to the recovery region', () => {
    t.hasResourceProperties('AWS::SecretsManager::Secret', { ReplicaRegions: [{ Region: 'us-east-1' }] });
    const value = (template: Template) => JSON.stringify((Object.values(template.findResources('AWS::ApiGateway::ApiKey'))[0] as any).Properties.Value);
    expect(value(t)).toContain('resolve:secretsmanager');
    // By name in the recovery region: its replica.
    const [dv, sv] = ['DisasterRecoveryStack', 'DisasterRecoveryStandbyStack'].map((n) => names.find((v) => v.stack.stackName === n)!);
    const secret = dv.r.str(Object.values(t.findResources('AWS::SecretsManager::Secret'))[0].Properties.Name);
    expect(secret).toMatch(/^tandem\/DisasterRecoveryStack\/api-key-[0-9a-f]{20}$/);
    const key = Object.values(sb.findResources('AWS::ApiGateway::ApiKey'))[0].Properties.Value;
    expect(sv.r.str(key)).toBe(`{{resolve:secretsmanager:${secret}:SecretString:::}}`);
    // A rotation names the new version, which changes both templates (a dynamic
    // reference alone is resolved only when its resource changes).
    const v = 'EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE';
    const rotated = synthApp({ 'tandem:apiKeyVersion': v });
    expect(value(Template.fromStack(rotated.dr))).toContain(`:SecretString:::${v}}}`);
    const rotatedStandby = views(rotated).find((x) => x.stack === rotated.drStandby)!;
    const rotatedKey = Object.values(Template.fromStack(rotated.drStandby).findResources('AWS::ApiGateway::ApiKey'))[0].Properties.Value;
    expect(rotatedStandby.r.str(rotatedKey)).toBe(`{{resolve:secretsmanager:${secret}:SecretString:::${v}}}`);
    expect(() => synthApp({ 'tandem:apiKeyVersion': 'v2' })).toThrow(/tandem:apiKeyVersion = "v2" is not valid/);
  });

  test('Route 53 checks the primary API\'s /health; the standby stack names everything the failover needs', () => {
    t.hasResourceProperties('AWS::Route53::HealthCheck', {
      HealthCheckConfig: Match.objectLike({ Type: 'HTTPS', ResourcePath: '/prod/health', Port: 443, FailureThreshold: 3 }),
    });
    const outputs = Object.keys(sb.findOutputs('*'));
    for (const o of ['StandbyMode', 'StandbyFunctionName', 'StandbyApiUrl', 'PrimaryApiUrl', 'HealthCheckId', 'ApiKeySecretName', 'TableName']) {
      expect(outputs).toContain(o);
    }
    for (const o of ['StandbyStackName', 'HealthCheckId', 'ApiKeySecretName']) {
      expect(Object.keys(t.findOutputs('*'))).toContain(o);
    }
    // No hosted zone: no DNS failover, clients switch URLs.
    t.resourceCountIs('AWS::Route53::RecordSet', 0);
    expect(Object.keys(sb.findOutputs('*'))).not.toContain('ClientUrl');
  });

  test('a restored served table: the primary serves it, the standby keeps the global table and warns', () => {
    const a = synthApp({ 'tandem:servedTable': 'Product-restored-20261130' });
    const p = Template.fromStack(a.dr);
    const s = Template.fromStack(a.drStandby);
    const env = (template: Template) =>
      JSON.stringify(Object.values(template.findResources('AWS::Lambda::Function')).map((f: any) => f.Properties.Environment?.Variables?.TABLE_NAME));
    expect(env(p)).toContain('Product-restored-20261130');
    expect(env(s)).not.toContain('Product-restored-20261130');
    expect(JSON.stringify(p.findOutputs('ServedTable'))).toContain('Product-restored-20261130');
    const warnings = a.drStandby.node.metadata.filter((m) => m.type === 'aws:cdk:warning').map((m) => String(m.data));
    expect(warnings.some((w) => w.includes('Product-restored-20261130') && w.includes('no replica'))).toBe(true);
  });

  test('with a hosted zone, clients use one name that fails over by DNS', () => {
    const dns = {
      'tandem:domainName': 'api.example.com',
      'tandem:hostedZoneId': 'Z0123456789ABCDEFGHIJ',
      'tandem:hostedZoneName': 'example.com',
    };
    const a = synthApp(dns);
    const p = Template.fromStack(a.dr);
    const s = Template.fromStack(a.drStandby);
    p.hasResourceProperties('AWS::Route53::RecordSet', {
      Name: 'api.example.com.',
      Type: 'A',
      Failover: 'PRIMARY',
      HealthCheckId: Match.anyValue(),
      SetIdentifier: 'primary',
    });
    s.hasResourceProperties('AWS::Route53::RecordSet', { Name: 'api.example.com.', Type: 'A', Failover: 'SECONDARY', SetIdentifier: 'standby' });
    for (const tpl of [p, s]) {
      tpl.hasResourceProperties('AWS::ApiGateway::DomainName', { DomainName: 'api.example.com', EndpointConfiguration: { Types: ['REGIONAL'] } });
      tpl.hasResourceProperties('AWS::CertificateManager::Certificate', { DomainName: 'api.example.com', ValidationMethod: 'DNS' });
      expect(tpl.findOutputs('ClientUrl').ClientUrl.Value).toBe('https://api.example.com/');
    }
    expect(() => synthApp({ 'tandem:domainName': 'api.example.com' })).toThrow(/tandem:hostedZoneId.*required with tandem:domainName/);
    expect(() => synthApp({ ...dns, 'tandem:domainName': 'api.other.org' })).toThrow(/inside the hosted zone example.com/);
  });
});

describe('names: destroy, redeploy, two deployments', () => {
  /** Every explicit physical name of `app`'s stacks, resolved, with its stack and logical id. */
  function physicalNames(a: ReturnType<typeof synthApp>, generation = 0): { where: string; name: string; retained: boolean; byId: boolean }[] {
    return views(a, generation).flatMap((v) =>
      Object.entries(v.template.Resources as Record<string, any>).flatMap(([id, res]) => {
        const prop = NAME_PROPERTY[res.Type];
        // A stage's name is its API's, not the account's.
        if (!prop || res.Type === 'AWS::ApiGateway::Stage' || res.Properties?.[prop] === undefined) return [];
        return [{
          where: `${v.stack.stackName}/${id}`,
          name: v.r.str(res.Properties[prop]),
          retained: res.DeletionPolicy === 'Retain',
          byId: JSON.stringify(res.Properties[prop]).includes('AWS::StackId'),
        }];
      }),
    );
  }

  test('what prod keeps after a destroy is named after the stack and its id, so the next deploy takes new names', () => {
    const kept = physicalNames(synthApp({ 'tandem:removal': 'prod' })).filter((n) => n.retained);
    // The vaults (one per region) and the key's secret; generated names are new on every create.
    expect(kept.map((n) => n.where.split('/')[0]).sort()).toEqual(['DisasterRecoveryRegionStack', 'DisasterRecoveryStack', 'DisasterRecoveryStack']);
    for (const n of kept) expect(`${n.where}: ${n.byId}`).toBe(`${n.where}: true`);
    const vaults = kept.filter((n) => !n.name.startsWith('tandem/')).map((n) => n.name);
    for (const v of vaults) expect(v).toMatch(/^[A-Za-z0-9_-]{2,50}$/);
    // The same stacks created again (new ids from the same host: the ids' last group
    // is the same) take names the kept ones do not hold.
    const again = new Set(physicalNames(synthApp({ 'tandem:removal': 'prod' }), 1).filter((n) => n.retained).map((n) => n.name));
    expect(kept.filter((n) => again.has(n.name))).toEqual([]);
    // The longest stack name a deployment may give still makes a valid vault name.
    const longest = physicalNames(synthApp({ 'tandem:removal': 'prod', 'tandem:deployment': 'a'.repeat(24) })).filter((n) => n.retained && !n.name.startsWith('tandem/'));
    for (const v of longest) expect(v.name).toMatch(/^[A-Za-z0-9_-]{2,50}$/);
  });

  test('two deployments in one account and region share no name', () => {
    const blue = synthApp({ 'tandem:deployment': 'blue' });
    const green = synthApp({ 'tandem:deployment': 'green' });
    expect(blue.dr.stackName).toBe('blue-DisasterRecoveryStack');
    expect(blue.drStandby.stackName).toBe('blue-DisasterRecoveryStandbyStack');
    expect(green.pipeline.stackName).toBe('green-PipelineStack');
    const of = (a: ReturnType<typeof synthApp>) => [
      ...physicalNames(a).map((n) => n.name),
      ...[a.pipeline, a.dr, a.drRecovery, a.drStandby].map((s) => `stack ${s.region} ${s.stackName}`),
    ];
    const b = new Set(of(blue));
    expect(of(green).filter((n) => b.has(n))).toEqual([]);
    // The backup plan is named after its stack too.
    const plan = (a: ReturnType<typeof synthApp>) =>
      (Object.values(Template.fromStack(a.dr).findResources('AWS::Backup::BackupPlan'))[0] as any).Properties.BackupPlan.BackupPlanName;
    expect(plan(blue)).toBe('blue-DisasterRecoveryStack');
    expect(() => synthApp({ 'tandem:deployment': '9lives' })).toThrow(/tandem:deployment = "9lives" is not valid/);
    expect(() => synthApp({ 'tandem:deployment': 'xn--blue' })).toThrow(/which S3 reserves/);
  });
});

describe('the game day', () => {
  const on = synthApp({ 'tandem:gameDaySchedule': 'rate(7 days)' });
  const g = Template.fromStack(on.dr);
  const task = () => (Object.values(g.findResources('AWS::ECS::TaskDefinition'))[0] as any).Properties;
  const command = (): string[] => task().ContainerDefinitions[0].Command.map((c: unknown) => (typeof c === 'string' ? c : JSON.stringify(c)));

  test('is off by default: no task, no schedule, no bucket for it', () => {
    t.resourceCountIs('AWS::ECS::TaskDefinition', 0);
    t.resourceCountIs('AWS::ECS::Cluster', 0);
    expect(Object.keys(t.findOutputs('GameDayReportsBucket'))).toEqual([]);
  });

  test('runs the drill against its own stack on the schedule, as a Fargate task with a public address', () => {
    g.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(7 days)',
      Targets: [
        Match.objectLike({
          EcsParameters: Match.objectLike({
            LaunchType: 'FARGATE',
            NetworkConfiguration: { AwsVpcConfiguration: Match.objectLike({ AssignPublicIp: 'ENABLED' }) },
          }),
          RetryPolicy: { MaximumEventAgeInSeconds: 3600, MaximumRetryAttempts: 2 },
        }),
      ],
    });
    const c = command();
    expect(c.slice(0, 5)).toEqual(['dr-drill', '--backend', 'dynamodb', '--stack', 'DisasterRecoveryStack']);
    // The restore methods by default: the failover methods move the deployment's clients.
    expect(c[c.indexOf('--methods') + 1]).toBe('pitr,backup,scheduled,cross-region');
    expect(c).toContain('--publish-metrics');
    expect(c[c.indexOf('--report-to') + 1]).toContain('/drills');
    expect(task().RequiresCompatibilities).toEqual(['FARGATE']);
    expect(task().ContainerDefinitions[0].ReadonlyRootFilesystem).toBe(true);
    // Nothing comes in.
    const [sg] = Object.values(g.findResources('AWS::EC2::SecurityGroup', { Properties: { GroupDescription: Match.stringLikeRegexp('game day') } })) as any[];
    expect(sg.Properties.SecurityGroupIngress).toBeUndefined();
    expect(sg.Properties.SecurityGroupEgress).toEqual([expect.objectContaining({ IpProtocol: 'tcp', FromPort: 443, ToPort: 443 })]);
    // No NAT gateway: the task's public address reaches the APIs.
    g.resourceCountIs('AWS::EC2::NatGateway', 0);

    const failover = synthApp({ 'tandem:gameDaySchedule': 'cron(0 10 ? * MON *)', 'tandem:gameDayMethods': 'pitr,pilot-light' });
    const fc = (Object.values(Template.fromStack(failover.dr).findResources('AWS::ECS::TaskDefinition'))[0] as any).Properties.ContainerDefinitions[0].Command;
    expect(fc[fc.indexOf('--methods') + 1]).toBe('pitr,pilot-light');
    expect(() => synthApp({ 'tandem:gameDaySchedule': 'weekly' })).toThrow(/tandem:gameDaySchedule = "weekly" is not valid/);
    // What EventBridge would refuse at deploy is refused at synth.
    expect(() => synthApp({ 'tandem:gameDaySchedule': 'rate(1 days)' })).toThrow(/the unit is singular for 1/);
    expect(() => synthApp({ 'tandem:gameDaySchedule': 'rate(7 day)' })).toThrow(/the unit is plural above 1/);
    expect(() => synthApp({ 'tandem:gameDaySchedule': 'cron(0 10 * * MON *)' })).toThrow(/exactly one of day-of-month and day-of-week/);
    expect(() => synthApp({ 'tandem:pipelineSchedule': 'rate(0 hours)' })).toThrow(/a rate of at least 1/);
    synthApp({ 'tandem:gameDaySchedule': 'rate(1 day)' });
    expect(() => synthApp({ 'tandem:gameDaySchedule': 'rate(7 days)', 'tandem:gameDayMethods': 'pitr,chaos' })).toThrow(/tandem:gameDayMethods = "pitr,chaos" is not valid/);
    expect(() => synthApp({ 'tandem:gameDayMethods': 'pitr' })).toThrow(/set tandem:gameDaySchedule too/);
  });

  test('the alarm watches the namespace the task role may publish to', () => {
    const put = loadContract().components['tandem dr game day'].calls.find((e) => e.actions.includes('cloudwatch:PutMetricData'))!;
    expect(put.conditions).toEqual({ StringEquals: { 'cloudwatch:namespace': GAME_DAY_NAMESPACE } });
    g.hasResourceProperties('AWS::CloudWatch::Alarm', { Namespace: GAME_DAY_NAMESPACE, MetricName: 'DrillPassed' });
  });

  test('a drill that failed, missed a target or could not run pages the alert topic', () => {
    const alarms = g.findResources('AWS::CloudWatch::Alarm', { Properties: { Namespace: 'tandem/DR' } });
    const [alarm] = Object.values(alarms) as any[];
    expect(alarm.Properties).toMatchObject({
      MetricName: 'DrillPassed',
      Dimensions: [{ Name: 'Stack', Value: 'DisasterRecoveryStack' }],
      Statistic: 'Minimum',
      ComparisonOperator: 'LessThanThreshold',
      Threshold: 1,
      TreatMissingData: 'notBreaching',
    });
    expect(JSON.stringify(alarm.Properties.AlarmActions)).toContain('Alerts');
    // The topic's policy lets CloudWatch publish for both alarms.
    const [policy] = Object.values(g.findResources('AWS::SNS::TopicPolicy')) as any[];
    const alarmPublishes = policy.Properties.PolicyDocument.Statement.find((s: any) => s.Sid === 'AlarmPublishes');
    expect(alarmPublishes.Condition.ArnLike['aws:SourceArn']).toHaveLength(3);
    // A start EventBridge gave up on (RunTask refused) makes no task and no metric.
    const [notStarted] = Object.values(g.findResources('AWS::CloudWatch::Alarm', { Properties: { Namespace: 'AWS/Events' } })) as any[];
    expect(notStarted.Properties).toMatchObject({ MetricName: 'FailedInvocations', Statistic: 'Sum', Threshold: 1 });
    expect(JSON.stringify(notStarted.Properties.Dimensions)).toContain('GameDaySchedule');
    expect(JSON.stringify(notStarted.Properties.AlarmActions)).toContain('Alerts');
    // A task that stopped with an error (not 0, passed, nor 1, failed) or never started.
    const stops = Object.values(g.findResources('AWS::Events::Rule', { Properties: { EventPattern: { source: ['aws.ecs'] } } })) as any[];
    expect(stops.map((r) => r.Properties.EventPattern.detail.containers?.exitCode ?? r.Properties.EventPattern.detail.stopCode)).toEqual([
      [{ 'anything-but': [0, 1] }],
      ['TaskFailedToStart'],
    ]);
    for (const r of stops) expect(JSON.stringify(r.Properties.Targets)).toContain('Alerts');
  });

  test('keeps the reports a year, in a bucket emptied by a dev destroy and kept by a prod one', () => {
    g.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: { Rules: [Match.objectLike({ ExpirationInDays: 365 })] },
    });
    g.resourceCountIs('Custom::S3AutoDeleteObjects', 1);
    const prod = Template.fromStack(synthApp({ 'tandem:gameDaySchedule': 'rate(7 days)', 'tandem:removal': 'prod' }).dr);
    prod.resourceCountIs('Custom::S3AutoDeleteObjects', 0);
    const [bucket] = Object.values(prod.findResources('AWS::S3::Bucket')) as any[];
    expect(bucket.DeletionPolicy).toBe('Retain');
  });
});
