// Reads a synthesized template's IAM as CloudFormation would deploy it: every Ref,
// Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select and Fn::Split resolved to the string it
// becomes, with physical names made the way CloudFormation makes them for resources
// that have none (STACK-LogicalId-RANDOM), so a grant written as a name pattern
// ("table/Product*") is tested against the name the table really gets, not against a
// name that happens to match. Anything it cannot resolve is an error, never a guess.

import * as cdk from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { TandemApp } from '../lib/app';
import { ContractBinding } from '../lib/contract';

export const ACCOUNT = '111122223333';
export const PARTITION = 'aws';

type Json = any;

/** IAM's wildcard match (`*` any run, `?` any one), optionally ignoring case (actions). */
export function glob(pattern: string, value: string, ignoreCase = false): boolean {
  const p = ignoreCase ? pattern.toLowerCase() : pattern;
  const v = ignoreCase ? value.toLowerCase() : value;
  let pi = 0;
  let vi = 0;
  let star = -1;
  let mark = 0;
  while (vi < v.length) {
    if (pi < p.length && (p[pi] === '?' || p[pi] === v[vi])) {
      pi++;
      vi++;
    } else if (pi < p.length && p[pi] === '*') {
      star = pi++;
      mark = vi;
    } else if (star >= 0) {
      pi = star + 1;
      vi = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === '*') pi++;
  return pi === p.length;
}

/** The explicit-name property of each type that has one. */
export const NAME_PROPERTY: Record<string, string> = {
  'AWS::SecretsManager::Secret': 'Name',
  'AWS::ECS::Cluster': 'ClusterName',
  'AWS::ECS::TaskDefinition': 'Family',
  'AWS::S3::Bucket': 'BucketName',
  'AWS::DynamoDB::GlobalTable': 'TableName',
  'AWS::DynamoDB::Table': 'TableName',
  'AWS::Backup::BackupVault': 'BackupVaultName',
  'AWS::IAM::Role': 'RoleName',
  'AWS::IAM::ManagedPolicy': 'ManagedPolicyName',
  'AWS::Lambda::Function': 'FunctionName',
  'AWS::Logs::LogGroup': 'LogGroupName',
  'AWS::Batch::JobQueue': 'JobQueueName',
  'AWS::Batch::JobDefinition': 'JobDefinitionName',
  'AWS::Batch::ComputeEnvironment': 'ComputeEnvironmentName',
  'AWS::StepFunctions::StateMachine': 'StateMachineName',
  'AWS::Events::Rule': 'Name',
  'AWS::SNS::Topic': 'TopicName',
  'AWS::SQS::Queue': 'QueueName',
  'AWS::ApiGateway::Stage': 'StageName',
};

/** A deterministic stand-in for CloudFormation's random suffix. */
function suffix(seed: string, length: number, alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ0123456789'): string {
  let h = 2166136261;
  let out = '';
  for (let i = 0; out.length < length; i++) {
    h ^= seed.charCodeAt(i % seed.length) + i;
    h = Math.imul(h, 16777619) >>> 0;
    out += alphabet[h % alphabet.length];
  }
  return out;
}

export class TemplateResolver {
  readonly resources: Record<string, Json>;

  constructor(
    readonly stackName: string,
    readonly region: string,
    readonly template: Json,
    private readonly exports: () => Record<string, string> = () => ({}),
    /** Which creation of the stack this is: each gets its own stack id. */
    private readonly generation = 0,
  ) {
    this.resources = template.Resources ?? {};
  }

  private resource(id: string): Json {
    const r = this.resources[id];
    if (!r) throw new Error(`${this.stackName}: no resource ${id}`);
    return r;
  }

  /** The physical name CloudFormation gives `id`: its explicit name, or a generated one. */
  name(id: string): string {
    const r = this.resource(id);
    const prop = NAME_PROPERTY[r.Type];
    if (prop && r.Properties?.[prop] !== undefined) return this.str(r.Properties[prop]);
    const generated = `${this.stackName}-${id.slice(0, 40)}-${suffix(this.stackName + id, 12)}`;
    return r.Type === 'AWS::S3::Bucket' ? generated.toLowerCase().slice(0, 63) : generated;
  }

  private arn(service: string, resource: string, region = this.region, account = ACCOUNT): string {
    return `arn:${PARTITION}:${service}:${region}:${account}:${resource}`;
  }

  /** What `Ref` of resource or parameter `id` returns. */
  ref(id: string): string {
    switch (id) {
      case 'AWS::Region':
        return this.region;
      case 'AWS::AccountId':
        return ACCOUNT;
      case 'AWS::Partition':
        return PARTITION;
      case 'AWS::URLSuffix':
        return 'amazonaws.com';
      case 'AWS::StackName':
        return this.stackName;
      case 'AWS::StackId':
        return this.arn(
          'cloudformation',
          // A version-1 UUID: time first, the host last (the same host may make the next).
          `stack/${this.stackName}/${suffix(`${this.generation}#${this.stackName}`, 8, '0123456789abcdef')}-1111-11e4-3333-${suffix('host#' + this.stackName, 12, '0123456789abcdef')}`,
        );
    }
    const param = this.template.Parameters?.[id];
    if (param) {
      if (param.Default === undefined) throw new Error(`${this.stackName}: parameter ${id} has no default`);
      return String(param.Default);
    }
    const r = this.resource(id);
    const name = this.name(id);
    switch (r.Type) {
      case 'AWS::Batch::JobQueue':
        return this.arn('batch', `job-queue/${name}`);
      case 'AWS::Batch::JobDefinition':
        return this.arn('batch', `job-definition/${name}:1`);
      case 'AWS::Batch::ComputeEnvironment':
        return this.arn('batch', `compute-environment/${name}`);
      case 'AWS::StepFunctions::StateMachine':
        return this.arn('states', `stateMachine:${name}`);
      case 'AWS::IAM::ManagedPolicy':
        return `arn:${PARTITION}:iam::${ACCOUNT}:policy/${name}`;
      case 'AWS::SNS::Topic':
        return this.arn('sns', name);
      case 'AWS::SQS::Queue':
        return `https://sqs.${this.region}.amazonaws.com/${ACCOUNT}/${name}`;
      case 'AWS::EFS::FileSystem':
        return `fs-${suffix(id, 8, '0123456789abcdef')}`;
      case 'AWS::EFS::AccessPoint':
        return `fsap-${suffix(id, 17, '0123456789abcdef')}`;
      case 'AWS::KMS::Key':
        return `${suffix(id, 8, '0123456789abcdef')}-1111-2222-3333-${suffix(id + 'k', 12, '0123456789abcdef')}`;
      case 'AWS::Backup::BackupPlan':
        return `${suffix(id, 8, '0123456789abcdef')}-aaaa-bbbb-cccc-${suffix(id + 'p', 12, '0123456789abcdef')}`;
      case 'AWS::ApiGateway::RestApi':
        return suffix(id, 10, 'abcdefghijklmnopqrstuvwxyz0123456789');
      case 'AWS::EC2::SecurityGroup':
        return `sg-${suffix(id, 17, '0123456789abcdef')}`;
      case 'AWS::EC2::VPC':
        return `vpc-${suffix(id, 17, '0123456789abcdef')}`;
      case 'AWS::ECS::TaskDefinition':
        return this.arn('ecs', `task-definition/${name}:1`);
      case 'AWS::EC2::Subnet':
        return `subnet-${suffix(id, 17, '0123456789abcdef')}`;
      default:
        if (r.Type.startsWith('AWS::')) return name;
        throw new Error(`${this.stackName}: Ref of ${id} (${r.Type}) is not modelled`);
    }
  }

  /** What `Fn::GetAtt` of `id`'s `attr` returns. */
  getAtt(id: string, attr: string): string {
    const r = this.resource(id);
    const key = `${r.Type}.${attr}`;
    switch (key) {
      case 'AWS::S3::Bucket.Arn':
        return `arn:${PARTITION}:s3:::${this.ref(id)}`;
      case 'AWS::DynamoDB::GlobalTable.Arn':
      case 'AWS::DynamoDB::Table.Arn':
        return this.arn('dynamodb', `table/${this.ref(id)}`);
      case 'AWS::Backup::BackupVault.BackupVaultArn':
        return this.arn('backup', `backup-vault:${this.ref(id)}`);
      case 'AWS::Backup::BackupVault.BackupVaultName':
        return this.ref(id);
      case 'AWS::Backup::BackupPlan.BackupPlanId':
        return this.ref(id);
      case 'AWS::Backup::BackupPlan.BackupPlanArn':
        return this.arn('backup', `backup-plan:${this.ref(id)}`);
      case 'AWS::IAM::Role.Arn':
        return `arn:${PARTITION}:iam::${ACCOUNT}:role/${this.ref(id)}`;
      case 'AWS::Lambda::Function.Arn':
        return this.arn('lambda', `function:${this.ref(id)}`);
      case 'AWS::Logs::LogGroup.Arn':
        return this.arn('logs', `log-group:${this.ref(id)}:*`);
      case 'AWS::Batch::JobQueue.JobQueueArn':
        return this.ref(id);
      case 'AWS::StepFunctions::StateMachine.Name':
        return this.name(id);
      case 'AWS::StepFunctions::StateMachine.Arn':
        return this.ref(id);
      case 'AWS::EFS::FileSystem.Arn':
        return this.arn('elasticfilesystem', `file-system/${this.ref(id)}`);
      case 'AWS::EFS::AccessPoint.Arn':
        return this.arn('elasticfilesystem', `access-point/${this.ref(id)}`);
      case 'AWS::KMS::Key.Arn':
        return this.arn('kms', `key/${this.ref(id)}`);
      case 'AWS::ApiGateway::RestApi.RootResourceId':
        return suffix(id + 'root', 10, 'abcdefghijklmnopqrstuvwxyz0123456789');
      case 'AWS::Events::Rule.Arn':
        return this.arn('events', `rule/${this.name(id)}`);
      case 'AWS::SNS::Topic.TopicArn':
        return this.ref(id);
      case 'AWS::SQS::Queue.Arn':
        return this.arn('sqs', this.name(id));
      case 'AWS::SQS::Queue.QueueName':
        return this.name(id);
      case 'AWS::SNS::Topic.TopicName':
        return this.name(id);
      case 'AWS::ECS::Cluster.Arn':
        return this.arn('ecs', `cluster/${this.ref(id)}`);
      case 'AWS::ECS::TaskDefinition.TaskDefinitionArn':
        return this.ref(id);
      case 'AWS::EC2::SecurityGroup.GroupId':
        return this.ref(id);
      default:
        // A value another region's stack exports (CDK's cross-region references: the
        // producer's writer puts it in SSM here, this reader gets it back).
        if (r.Type === 'Custom::CrossRegionExportReader') {
          const v = this.exports()[attr];
          if (v === undefined) throw new Error(`${this.stackName}: no cross-region export ${attr}`);
          return v;
        }
        throw new Error(`${this.stackName}: Fn::GetAtt ${id}.${attr} (${r.Type}) is not modelled`);
    }
  }

  /** `value` resolved; arrays stay arrays (Fn::Split). */
  resolve(value: Json): Json {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (value === null || typeof value !== 'object') throw new Error(`cannot resolve ${JSON.stringify(value)}`);
    const keys = Object.keys(value);
    if (keys.length !== 1 || !(keys[0] === 'Ref' || keys[0].startsWith('Fn::'))) {
      const out: Record<string, Json> = {};
      for (const k of keys) out[k] = this.resolve(value[k]);
      return out;
    }
    const [fn] = keys;
    const arg = value[fn];
    switch (fn) {
      case 'Ref':
        return this.ref(arg);
      case 'Fn::GetAtt': {
        const [id, attr] = Array.isArray(arg) ? arg : String(arg).split('.');
        return this.getAtt(id, attr);
      }
      case 'Fn::Join': {
        const [delim, list] = arg;
        const parts = this.resolve(list);
        return (parts as Json[]).map((p) => this.str(p)).join(delim);
      }
      case 'Fn::Select': {
        const [index, list] = arg;
        const items = this.resolve(list);
        const i = Number(this.resolve(index));
        if (!Array.isArray(items) || i >= items.length) throw new Error(`Fn::Select ${i} of ${JSON.stringify(items)}`);
        return items[i];
      }
      case 'Fn::Split': {
        const [delim, source] = arg;
        return this.str(source).split(delim);
      }
      case 'Fn::Sub': {
        const [text, vars] = typeof arg === 'string' ? [arg, {}] : arg;
        return (text as string).replace(/\$\{([^}]+)\}/g, (_, name: string) => {
          if (name.startsWith('!')) return '${' + name.slice(1) + '}';
          if (vars[name] !== undefined) return this.str(vars[name]);
          if (name.includes('.') && !name.startsWith('AWS::')) {
            const [id, attr] = name.split('.');
            return this.getAtt(id, attr);
          }
          return this.ref(name);
        });
      }
      case 'Fn::ImportValue': {
        const name = this.str(arg);
        const v = this.exports()[name];
        if (v === undefined) throw new Error(`${this.stackName}: no export ${name}`);
        return v;
      }
      default:
        throw new Error(`${this.stackName}: ${fn} is not modelled (${JSON.stringify(value).slice(0, 200)})`);
    }
  }

  str(value: Json): string {
    const v = this.resolve(value);
    if (typeof v !== 'string' && typeof v !== 'number') {
      throw new Error(`${this.stackName}: expected a string, got ${JSON.stringify(v)}`);
    }
    return String(v);
  }

  /** Every export of this template (and every value it writes for another region), resolved. */
  exportsOf(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const o of Object.values<Json>(this.template.Outputs ?? {})) {
      if (o.Export?.Name) out[this.str(o.Export.Name)] = this.str(o.Value);
    }
    for (const r of Object.values<Json>(this.resources)) {
      if (r.Type === 'Custom::CrossRegionExportWriter') {
        for (const [name, value] of Object.entries<Json>(r.Properties.WriterProps.exports)) out[name] = this.str(value);
      }
    }
    return out;
  }
}

/** One statement, resolved. */
export interface Statement {
  readonly source: string;
  readonly effect: 'Allow' | 'Deny';
  readonly actions: string[];
  readonly resources: string[];
  /** The statement's Condition, resolved (undefined when it has none). */
  readonly conditions: Json;
  /** Part of an AWS managed policy (not ours to trim). */
  readonly managed: boolean;
}

function list(v: Json): Json[] {
  return Array.isArray(v) ? v : [v];
}

/** The statements of a policy document, resolved. */
export function statementsOf(r: TemplateResolver, doc: Json, source: string, managed = false): Statement[] {
  return list(doc.Statement).map((s: Json, i: number) => {
    if (s.NotAction || s.NotResource || s.NotPrincipal) {
      throw new Error(`${source}: statement ${i} uses NotAction/NotResource, which this check does not model`);
    }
    return {
      source: `${source}${s.Sid ? ` (${s.Sid})` : ` #${i}`}`,
      effect: s.Effect,
      actions: list(s.Action).map((a) => r.str(a)),
      resources: list(r.resolve(s.Resource)).flat().map((x: Json) => String(x)),
      conditions: s.Condition === undefined ? undefined : r.resolve(s.Condition),
      managed,
    };
  });
}

export interface StackView {
  readonly stack: cdk.Stack;
  readonly template: any;
  readonly r: TemplateResolver;
  readonly binding?: ContractBinding;
}

/** Every stack of `app` with its template and a resolver that sees the others' exports. */
export function views(app: TandemApp, generation = 0): StackView[] {
  const stacks: [cdk.Stack, ContractBinding | undefined][] = [
    [app.pipeline, app.pipeline.contract],
    [app.dr, app.dr.contract],
    [app.drRecovery, app.drRecovery.contract],
    [app.drStandby, app.drStandby.contract],
  ];
  const all: StackView[] = [];
  const exports = () => Object.assign({}, ...all.map((v) => v.r.exportsOf()));
  for (const [stack, binding] of stacks) {
    const template = Template.fromStack(stack).toJSON();
    all.push({ stack, template, r: new TemplateResolver(stack.stackName, stack.region, template, exports, generation), binding });
  }
  return all;
}
