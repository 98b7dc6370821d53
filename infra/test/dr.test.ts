import { Match, Template } from 'aws-cdk-lib/assertions';
import { synthApp } from './helpers';

const { app, dr, drRecovery } = synthApp();
app.synth();
const t = Template.fromStack(dr);
const r = Template.fromStack(drRecovery);

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
    expect(rules[0].Lifecycle).toEqual({ DeleteAfterDays: 30 });
    expect(rules[0].CopyActions).toHaveLength(1);
    expect(rules[0].CopyActions[0].Lifecycle).toEqual({ DeleteAfterDays: 30 });
    expect(JSON.stringify(rules[0].CopyActions[0].DestinationBackupVaultArn)).toContain(
      ':backup:us-east-1:',
    );
    expect(JSON.stringify(rules[0].CopyActions[0].DestinationBackupVaultArn)).toContain('backup-vault:tandem-dr-recovery');
  });

  test('the selection covers the table with the stack\'s own role; both vaults have their own keys', () => {
    t.hasResourceProperties('AWS::Backup::BackupSelection', {
      BackupSelection: Match.objectLike({
        IamRoleArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^BackupRole'), 'Arn'] },
        Resources: [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^Product'), 'Arn'] }],
      }),
    });
    t.hasResourceProperties('AWS::Backup::BackupVault', { BackupVaultName: 'tandem-dr-primary', EncryptionKeyArn: Match.anyValue() });
    r.hasResourceProperties('AWS::Backup::BackupVault', { BackupVaultName: 'tandem-dr-recovery', EncryptionKeyArn: Match.anyValue() });
    r.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    expect(drRecovery.region).toBe('us-east-1');
    expect(dr.region).toBe('us-east-2');
  });

  test('the post-backup function runs when a backup job completes and daily as a safety net', () => {
    t.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.backup'],
        'detail-type': ['Backup Job State Change'],
        detail: { state: ['COMPLETED'], backupVaultName: ['tandem-dr-primary'] },
      },
    });
    t.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'cron(0 10 * * ? *)' });
    t.hasResourceProperties('AWS::Lambda::Function', {
      Environment: {
        Variables: Match.objectLike({
          RETENTION_DAYS: '30',
          BACKUP_PLAN_ID: Match.anyValue(),
          SOURCE_VAULT_NAME: Match.anyValue(),
          COPY_ROLE_ARN: Match.anyValue(),
        }),
      },
    });
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
        'POST /addProduct',
        'POST /createBackup',
        'PUT /updateProduct',
      ].sort(),
    );
    for (const m of methods) {
      expect(m.Properties.ApiKeyRequired).toBe(true);
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
