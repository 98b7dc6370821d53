// The IAM contract (iam/contract.json) against the synthesized templates of the real
// app, both ways:
// - every entry of every principal (its components' calls and what AWS does with it) is
//   allowed by the principal's resolved statements, on the resource the entry names
//   (the table's own ARN as CloudFormation will name it, not a pattern that happens to
//   match the drill's tables);
// - every grant is used by an entry: a grant no entry needs is reported (remove it, or
//   give it an entry with its reason in the contract);
// - every role and managed policy in the templates is a principal of the contract;
// - what the state machine's definition, the schedule, the backup plan and the API
//   stage make AWS do is inside their entries.

import * as cdk from 'aws-cdk-lib';
import { IConstruct } from 'constructs';
import { TandemApp } from '../lib/app';
import { Contract, Entry, bindPattern, entriesOf, loadContract } from '../lib/contract';
import { acknowledge } from '../lib/nag';
import { synthApp } from './helpers';
import { ACCOUNT, PARTITION, Statement, StackView, glob, statementsOf, views } from './iam';

const contract = loadContract();

function logicalId(c: IConstruct): string {
  const cfn = (c.node.defaultChild ?? c) as cdk.CfnElement;
  return cdk.Stack.of(c).getLogicalId(cfn);
}

/** The placeholder values of a stack, resolved to what they become when deployed. */
function placeholderValues(v: StackView): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, token] of Object.entries(v.binding?.placeholders ?? {})) {
    out[k] = v.r.str(v.stack.resolve(token));
  }
  return out;
}

/** Every statement that applies to the principal `id` (a role or a managed policy). */
function principalStatements(v: StackView, id: string): { statements: Statement[]; managed: string[] } {
  const res = v.template.Resources[id];
  const statements: Statement[] = [];
  const managed: string[] = [];
  if (res.Type === 'AWS::IAM::ManagedPolicy') {
    statements.push(...statementsOf(v.r, res.Properties.PolicyDocument, id));
    return { statements, managed };
  }
  for (const p of res.Properties.Policies ?? []) {
    statements.push(...statementsOf(v.r, p.PolicyDocument, `${id} inline ${p.PolicyName}`));
  }
  for (const [pid, p] of Object.entries<any>(v.template.Resources)) {
    const attached = (p.Properties?.Roles ?? []).some((x: any) => x?.Ref === id);
    if (attached && (p.Type === 'AWS::IAM::Policy' || p.Type === 'AWS::IAM::ManagedPolicy')) {
      statements.push(...statementsOf(v.r, p.Properties.PolicyDocument, pid));
    }
  }
  for (const arnToken of res.Properties.ManagedPolicyArns ?? []) {
    const arn = v.r.str(arnToken);
    const m = /^arn:[^:]+:iam::aws:policy\/(?:.*\/)?([^/]+)$/.exec(arn);
    if (!m) throw new Error(`${id}: managed policy ${arn} is not an AWS managed policy this check knows`);
    managed.push(m[1]);
    const doc = contract.managed_policies[m[1]];
    for (const s of doc?.statements ?? []) {
      statements.push({
        source: `${m[1]} (AWS managed)`,
        effect: 'Allow',
        actions: s.actions,
        resources: s.resources,
        conditions: undefined,
        managed: true,
      });
    }
  }
  return { statements, managed };
}

/** A condition block with its values in a canonical order (one value and a list of one are the same). */
function canonical(c: any): string {
  if (c === undefined) return '';
  const norm = (v: any): any =>
    Array.isArray(v) ? (v.length === 1 ? norm(v[0]) : v.map(norm).sort()) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, norm(v[k])])) : String(v);
  return JSON.stringify(norm(c));
}

/**
 * Whether `statements` allow `action` on `resource` under exactly `conditions` (none
 * when undefined): a grant under another condition, or under one the contract does not
 * state, would be refused where the contract expects it to work.
 */
function allows(statements: Statement[], action: string, resource: string, conditions?: any): boolean {
  const matches = (s: Statement) =>
    s.actions.some((a) => glob(a, action, true)) && s.resources.some((g) => glob(g, resource));
  const want = canonical(conditions);
  return (
    statements.some((s) => s.effect === 'Allow' && matches(s) && canonical(s.conditions) === want) &&
    !statements.some((s) => s.effect === 'Deny' && matches(s))
  );
}

/** `conditions` with their placeholders bound. */
function bindConditions(conditions: any, values: Record<string, string>): any {
  if (conditions === undefined) return undefined;
  return JSON.parse(JSON.stringify(conditions), (_, v) => (typeof v === 'string' ? bindPattern(v, values) : v));
}

interface Finding {
  readonly principal: string;
  readonly message: string;
}

/** Checks every principal bound in `app`; returns what is wrong, and the principals seen. */
function check(app: TandemApp, c: Contract = contract): { findings: Finding[]; seen: Set<string> } {
  const findings: Finding[] = [];
  const seen = new Set<string>();
  const vs = views(app);
  for (const v of vs) {
    const values = placeholderValues(v);
    const registered = new Map<string, string>();
    for (const [pid, construct] of Object.entries(v.binding?.principals ?? {})) {
      registered.set(logicalId(construct), pid);
    }
    // Every role and managed policy is a principal.
    for (const [id, res] of Object.entries<any>(v.template.Resources)) {
      if ((res.Type === 'AWS::IAM::Role' || res.Type === 'AWS::IAM::ManagedPolicy') && !registered.has(id)) {
        findings.push({ principal: `${v.stack.stackName}/${id}`, message: `${res.Type} ${id} is not a principal of iam/contract.json` });
      }
    }
    for (const [id, pid] of registered) {
      seen.add(pid);
      const p = c.principals[pid];
      if (p.stack !== v.stack.node.id) {
        findings.push({ principal: pid, message: `is bound in ${v.stack.node.id}, the contract says ${p.stack}` });
      }
      const { statements, managed } = principalStatements(v, id);
      // AWS managed policies: exactly those the contract lists, each with a reason.
      const listed = Object.keys(p.managed ?? {});
      for (const m of managed.filter((m) => !listed.includes(m))) {
        findings.push({ principal: pid, message: `has the AWS managed policy ${m}, which the contract does not list with a reason` });
      }
      for (const m of listed.filter((m) => !managed.includes(m))) {
        findings.push({ principal: pid, message: `the contract lists the managed policy ${m}, which is not attached` });
      }
      // Contract -> grants: every entry is allowed on the resource it names.
      const bound: { component: string; entry: Entry; resources: string[] }[] = [];
      for (const { component, entry } of entriesOf(c, pid)) {
        const resources = entry.resources.map((r) => bindPattern(r, values));
        bound.push({ component, entry, resources });
        const conditions = bindConditions(entry.conditions, values);
        for (const action of entry.actions) {
          for (const resource of resources) {
            if (!allows(statements, action, resource, conditions)) {
              const when = conditions ? ` when ${JSON.stringify(conditions)}` : '';
              findings.push({ principal: pid, message: `${component}: ${action} on ${resource}${when} is not granted (under exactly that condition)` });
            }
          }
        }
      }
      // Grants -> contract: every grant of ours is used by an entry, and a wildcard in a
      // grant is one the contract wrote (with its reason).
      for (const s of statements.filter((s) => s.effect === 'Allow' && !s.managed)) {
        for (const action of s.actions) {
          if (action.includes('*')) {
            findings.push({ principal: pid, message: `${s.source} grants the wildcard action ${action}` });
            continue;
          }
          for (const g of s.resources) {
            const used = bound.some(
              (b) =>
                b.entry.actions.some((a) => a.toLowerCase() === action.toLowerCase()) &&
                b.resources.some((r) => (g.includes('*') || g.includes('?') ? g === r : glob(g, r))),
            );
            if (!used) {
              findings.push({ principal: pid, message: `${s.source} grants ${action} on ${g}, which no entry of the contract uses` });
            }
          }
        }
      }
    }
  }
  return { findings, seen };
}

function report(findings: Finding[]): string {
  return findings.map((f) => `${f.principal}: ${f.message}`).join('\n');
}

/** The entries of a component whose principal is in `v`, bound. */
function componentEntries(v: StackView, component: string): { action: string; resource: string }[] {
  const values = placeholderValues(v);
  return contract.components[component].calls.flatMap((e) =>
    e.actions.flatMap((action) => e.resources.map((r) => ({ action, resource: bindPattern(r, values) }))),
  );
}

/** Needs outside `component`'s entries (glob on the bound patterns). */
function outside(v: StackView, component: string, needs: { action: string; resource: string }[]): string[] {
  const entries = componentEntries(v, component);
  return needs
    .filter((n) => !entries.some((e) => e.action === n.action && glob(e.resource, n.resource)))
    .map((n) => `${component}: ${n.action} on ${n.resource}`);
}

describe('the IAM contract', () => {
  const configurations: [string, Record<string, unknown>][] = [
    ['dev on Fargate', {}],
    ['prod on EC2', { 'tandem:removal': 'prod', 'tandem:compute': 'ec2' }],
    ['serving a restored table', { 'tandem:servedTable': 'Product-restored-20261130' }],
    ['with the game day', { 'tandem:gameDaySchedule': 'rate(7 days)' }],
    ['with the game day, in prod', { 'tandem:gameDaySchedule': 'rate(7 days)', 'tandem:removal': 'prod' }],
  ];
  const seen = new Set<string>();

  test.each(configurations)('%s: every entry is granted on its resource, every grant is used', (_, extra) => {
    const app = synthApp(extra);
    const { findings, seen: s } = check(app);
    s.forEach((p) => seen.add(p));
    expect(report(findings)).toBe('');
  });

  test('every principal of the contract exists in some configuration', () => {
    const missing = Object.entries(contract.principals)
      .filter(([id, p]) => p.kind !== 'none' && !seen.has(id))
      .map(([id]) => id);
    expect(missing).toEqual([]);
  });

  test('every component names a principal, and every * carries its reason', () => {
    for (const [name, c] of Object.entries(contract.components)) {
      expect([name, contract.principals[c.principal] !== undefined]).toEqual([name, true]);
    }
    const all = [
      ...Object.values(contract.components).flatMap((c) => c.calls),
      ...Object.values(contract.principals).flatMap((p) => p.service ?? []),
    ];
    for (const e of all) {
      expect(e.why.length).toBeGreaterThan(10);
      for (const a of e.actions) expect(a).toMatch(/^[a-z0-9-]+:[A-Za-z0-9]+$/);
    }
  });

  test('deleting one statement from a role is caught, naming the component, action and resource', () => {
    const app = synthApp();
    const worker = app.pipeline.contract.principals['pipeline-worker'] as cdk.aws_iam.Role;
    const policy = worker.node.findChild('DefaultPolicy') as cdk.aws_iam.Policy;
    const cfn = policy.node.defaultChild as cdk.aws_iam.CfnPolicy;
    const doc = app.pipeline.resolve(cfn.policyDocument);
    doc.Statement = doc.Statement.filter((s: any) => !JSON.stringify(s.Action).includes('s3:AbortMultipartUpload'));
    cfn.policyDocument = doc;
    const { findings } = check(app);
    expect(report(findings)).toMatch(/pipeline-worker: tandem worker: s3:AbortMultipartUpload on arn:aws:s3:::pipelinestack-results[^/]*\/runs\/\* is not granted/);
  });

  test('a grant under another condition than the contract states is caught', () => {
    // The mount is granted only through the access point: a condition naming another
    // one would refuse every mount on AWS while the action and resource still match.
    const app = synthApp();
    const worker = app.pipeline.contract.principals['pipeline-worker'] as cdk.aws_iam.Role;
    const cfn = worker.node.findChild('DefaultPolicy').node.defaultChild as cdk.aws_iam.CfnPolicy;
    const doc = app.pipeline.resolve(cfn.policyDocument);
    const mount = doc.Statement.find((s: any) => JSON.stringify(s.Action).includes('ClientMount'));
    mount.Condition.StringEquals['elasticfilesystem:AccessPointArn'] = 'arn:aws:elasticfilesystem:us-east-2:111122223333:access-point/fsap-other';
    cfn.policyDocument = doc;
    expect(report(check(app).findings)).toMatch(/pipeline-worker: pipeline-worker \(service\): elasticfilesystem:ClientMount on .* when .*access-point\/fsap-[0-9a-f]{17}.* is not granted/);
  });

  test('a name pattern that matches the drill tables but not the deployed table is caught', () => {
    // The defect this contract was made for: table/Product* allows Product-drill-*, not
    // the generated DisasterRecoveryStack-Product... table the plan backs up.
    const app = synthApp();
    const role = app.dr.contract.principals['backup-role'] as cdk.aws_iam.Role;
    const cfn = role.node.findChild('DefaultPolicy').node.defaultChild as cdk.aws_iam.CfnPolicy;
    const doc = app.dr.resolve(cfn.policyDocument);
    const backupSid = doc.Statement.find((s: any) => s.Sid === 'Backup');
    backupSid.Resource = { 'Fn::Sub': 'arn:aws:dynamodb:us-east-2:${AWS::AccountId}:table/Product*' };
    cfn.policyDocument = doc;
    acknowledge(role, 'AwsSolutions-IAM5', 'the mutation under test', ['Resource::arn:aws:dynamodb:us-east-2:<AWS::AccountId>:table/Product*']);
    const text = report(check(app).findings);
    expect(text).toMatch(/backup-role: backup-role \(service\): dynamodb:CreateBackup on arn:aws:dynamodb:us-east-2:\d+:table\/DisasterRecoveryStack-Product[^ ]* is not granted/);
    expect(text).toMatch(/grants dynamodb:CreateBackup on arn:aws:dynamodb:us-east-2:\d+:table\/Product\*, which no entry of the contract uses/);
  });
});

describe('what the stacks make AWS do is inside the contract', () => {
  const app = synthApp();
  const [pipeline, dr] = views(app);

  test('the state machine: every task integration and its documented permissions', () => {
    const machine = Object.values<any>(pipeline.template.Resources).find((r) => r.Type === 'AWS::StepFunctions::StateMachine');
    const asl = JSON.parse(pipeline.r.str(machine.Properties.DefinitionString));
    const needs: { action: string; resource: string }[] = [];
    const batchArn = (resource: string) => `arn:${PARTITION}:batch:${pipeline.stack.region}:${ACCOUNT}:${resource}`;
    const tasks: string[] = [];
    const visit = (states: Record<string, any>) => {
      for (const [name, s] of Object.entries(states)) {
        if (s.Type !== 'Task') continue;
        tasks.push(`${name}: ${s.Resource}`);
        const res: string = s.Resource;
        if (/^arn:aws:states:::lambda:invoke$/.test(res)) {
          needs.push({ action: 'lambda:InvokeFunction', resource: s.Parameters.FunctionName });
        } else if (/^arn:aws:lambda:[^:]+:\d+:function:[^:]+$/.test(res)) {
          // A function ARN as the resource: the payload-only form of lambda:invoke.
          needs.push({ action: 'lambda:InvokeFunction', resource: res });
        } else if (/^arn:aws:states:::batch:submitJob(\.sync)?$/.test(res)) {
          needs.push({ action: 'batch:SubmitJob', resource: s.Parameters.JobQueue });
          needs.push({ action: 'batch:SubmitJob', resource: s.Parameters.JobDefinition });
          needs.push({ action: 'batch:SubmitJob', resource: batchArn('job/*') });
          if (res.endsWith('.sync')) {
            // https://docs.aws.amazon.com/step-functions/latest/dg/batch-iam.html
            needs.push({ action: 'batch:DescribeJobs', resource: '*' });
            needs.push({ action: 'batch:TerminateJob', resource: batchArn('job/*') });
            for (const a of ['events:PutTargets', 'events:PutRule', 'events:DescribeRule']) {
              needs.push({
                action: a,
                resource: `arn:${PARTITION}:events:${pipeline.stack.region}:${ACCOUNT}:rule/StepFunctionsGetEventsForBatchJobsRule`,
              });
            }
          }
        } else {
          throw new Error(`task ${name} uses ${res}, which this test does not know: add its permissions`);
        }
      }
    };
    visit(asl.States);
    expect(tasks.some((t) => t.endsWith('.sync'))).toBe(true);
    if (machine.Properties.LoggingConfiguration) {
      for (const a of ['logs:CreateLogDelivery', 'logs:GetLogDelivery', 'logs:UpdateLogDelivery', 'logs:DeleteLogDelivery', 'logs:ListLogDeliveries', 'logs:PutResourcePolicy', 'logs:DescribeResourcePolicies', 'logs:DescribeLogGroups']) {
        needs.push({ action: a, resource: '*' });
      }
    }
    if (machine.Properties.TracingConfiguration?.Enabled) {
      for (const a of ['xray:PutTraceSegments', 'xray:PutTelemetryRecords', 'xray:GetSamplingRules', 'xray:GetSamplingTargets']) {
        needs.push({ action: a, resource: '*' });
      }
    }
    expect(outside(pipeline, 'run state machine', needs)).toEqual([]);
  });

  test('the schedule starts the state machine with its own role', () => {
    const rule = Object.values<any>(pipeline.template.Resources).find(
      (r) => r.Type === 'AWS::Events::Rule' && r.Properties.ScheduleExpression !== undefined,
    );
    const needs = rule.Properties.Targets.map((t: any) => ({ action: 'states:StartExecution', resource: pipeline.r.str(t.Arn) }));
    expect(outside(pipeline, 'pipeline schedule', needs)).toEqual([]);
    const role = app.pipeline.contract.principals['pipeline-schedule'];
    expect(rule.Properties.Targets[0].RoleArn).toEqual({ 'Fn::GetAtt': [logicalId(role), 'Arn'] });
  });

  test('the backup plan backs up the Product table and copies to the recovery vault as the backup role', () => {
    const selection = Object.values<any>(dr.template.Resources).find((r) => r.Type === 'AWS::Backup::BackupSelection');
    const plan = Object.values<any>(dr.template.Resources).find((r) => r.Type === 'AWS::Backup::BackupPlan');
    const role = app.dr.contract.principals['backup-role'];
    expect(selection.Properties.BackupSelection.IamRoleArn).toEqual({ 'Fn::GetAtt': [logicalId(role), 'Arn'] });
    const values = placeholderValues(dr);
    const service = (contract.principals['backup-role'].service ?? []).flatMap((e) =>
      e.actions.flatMap((action) => e.resources.map((r) => ({ action, resource: bindPattern(r, values) }))),
    );
    const needs: { action: string; resource: string }[] = [];
    for (const t of selection.Properties.BackupSelection.Resources.map((x: any) => dr.r.str(x))) {
      for (const a of ['dynamodb:DescribeTable', 'dynamodb:CreateBackup', 'dynamodb:StartAwsBackupJob', 'dynamodb:ListTagsOfResource']) {
        needs.push({ action: a, resource: t });
      }
    }
    for (const rule of plan.Properties.BackupPlan.BackupPlanRule) {
      for (const copy of rule.CopyActions ?? []) {
        needs.push({ action: 'backup:CopyIntoBackupVault', resource: dr.r.str(copy.DestinationBackupVaultArn) });
      }
    }
    const missing = needs.filter((n) => !service.some((e) => e.action === n.action && glob(e.resource, n.resource)));
    expect(missing).toEqual([]);
    // The table the plan selects is the generated name, which the old pattern missed.
    expect(values.ProductTable).toMatch(/^DisasterRecoveryStack-Product/);
  });

  test('the API stage logs where the account\'s API Gateway role can write, and that role is the contract\'s', () => {
    const stage = Object.values<any>(dr.template.Resources).find((r) => r.Type === 'AWS::ApiGateway::Stage');
    const account = Object.values<any>(dr.template.Resources).find((r) => r.Type === 'AWS::ApiGateway::Account');
    const role = app.dr.contract.principals['api-gateway-logs'];
    expect(account.Properties.CloudWatchRoleArn).toEqual({ 'Fn::GetAtt': [logicalId(role), 'Arn'] });
    const destination = dr.r.str(stage.Properties.AccessLogSetting.DestinationArn).replace(/:\*$/, '');
    const { statements } = principalStatements(dr, logicalId(role));
    for (const a of ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams']) {
      expect([a, allows(statements, a, `${destination}:log-stream:x`)]).toEqual([a, true]);
    }
    // Execution logs: API Gateway creates API-Gateway-Execution-Logs_{api id}/{stage}.
    const api = dr.r.str({ Ref: logicalId(app.dr.api) });
    const execution = `arn:${PARTITION}:logs:${dr.stack.region}:${ACCOUNT}:log-group:API-Gateway-Execution-Logs_${api}/${stage.Properties.StageName}`;
    expect(allows(statements, 'logs:CreateLogGroup', execution)).toBe(true);
    expect(allows(statements, 'logs:PutLogEvents', `${execution}:log-stream:x`)).toBe(true);
  });

  test('the product API is granted the table it serves, and only that one', () => {
    const restored = synthApp({ 'tandem:servedTable': 'Product-restored-20261130' });
    const [, d] = views(restored);
    const fn = Object.entries<any>(d.template.Resources).find(
      ([, r]) => r.Type === 'AWS::Lambda::Function' && r.Properties.Environment?.Variables?.TABLE_NAME !== undefined,
    )![1];
    expect(d.r.str(fn.Properties.Environment.Variables.TABLE_NAME)).toBe('Product-restored-20261130');
    const role = restored.dr.contract.principals['product-api-function'];
    const { statements } = principalStatements(d, logicalId(role));
    const table = (name: string) => `arn:${PARTITION}:dynamodb:${d.stack.region}:${ACCOUNT}:table/${name}`;
    expect(allows(statements, 'dynamodb:PutItem', table('Product-restored-20261130'))).toBe(true);
    expect(allows(statements, 'dynamodb:PutItem', table(placeholderValues(d).ProductTable))).toBe(false);
  });
});
