// The deployment's settings, read once from the CDK context (cdk.json, or `-c key=value`)
// and checked, so a bad value stops synth with a message that names it instead of
// producing a template that fails half way through a deploy.

import * as cdk from 'aws-cdk-lib';
import { Node } from 'constructs';

/** What `cdk destroy` does to data. */
export enum Removal {
  /** Everything goes: tables, buckets (emptied first), vaults, file systems. */
  Dev = 'dev',
  /** Data is retained: table, bucket, vaults and file system outlive the stack. */
  Prod = 'prod',
}

/** The processor the Lambda functions run on. */
export enum LambdaArchitecture {
  X86_64 = 'x86_64',
  /** Graviton: needs the aarch64-unknown-linux-gnu target in the Rust toolchain. */
  Arm64 = 'arm64',
}

/** How the recovery region's API waits for a failover. */
export enum Standby {
  /** Deployed and switched off (its function's reserved concurrency is 0); `tandem dr failover` switches it on. */
  PilotLight = 'pilot-light',
  /** Deployed and answering; a failover only moves the clients. */
  WarmStandby = 'warm-standby',
}

/** The name clients use for the product API, answered by a Route 53 failover record. */
export interface ApiDomain {
  /** The name (`api.example.com`), in the hosted zone. */
  readonly domainName: string;
  readonly hostedZoneId: string;
  /** The zone's name (`example.com`). */
  readonly hostedZoneName: string;
}

/** Where Batch runs the containers. */
export enum Compute {
  Fargate = 'fargate',
  Ec2 = 'ec2',
}

export interface TandemConfig {
  readonly removal: Removal;
  readonly compute: Compute;
  readonly account?: string;
  readonly primaryRegion: string;
  readonly recoveryRegion: string;
  /** EventBridge schedule of the pipeline, `cron(...)` or `rate(...)`. */
  readonly pipelineSchedule: string;
  /** The scheduled run's workload. */
  readonly records: number;
  readonly idsPerNode: number;
  /** The most vCPUs the compute environment scales to. */
  readonly maxvCpus: number;
  /** The state machine's overall timeout. */
  readonly runTimeout: cdk.Duration;
  /**
   * How long a child may wait RUNNABLE because no capacity can be had (instances
   * unavailable, or a job no compute environment can hold) before its queue cancels
   * it with the reason.
   */
  readonly capacityWait: cdk.Duration;
  /** The API Gateway stage the product API is deployed to. */
  readonly apiStage: string;
  /** The Lambda functions' processor. */
  readonly lambdaArchitecture: LambdaArchitecture;
  /**
   * The table the product API serves when it is not the stack's own Product table: a
   * table restored after a disaster (docs/dr.md). The API's role is granted on it.
   */
  readonly servedTable?: string;
  /** How the recovery region's API waits. */
  readonly standby: Standby;
  /**
   * The version of the API key's secret both stacks' keys take. CloudFormation
   * resolves a dynamic reference only when the resource changes, so a rotated key
   * reaches API Gateway by naming its new version here (docs/dr.md).
   */
  readonly apiKeyVersion?: string;
  /** With a hosted zone: the name clients use, failing over by DNS. */
  readonly apiDomain?: ApiDomain;
  /** An email address subscribed to the DR stack's alert topic. */
  readonly alertEmail?: string;
  /** Requests a second one client (key, address) may send the product API (`apiLimits`). */
  readonly apiRatePerSecond: number;
  /**
   * The deployment's name, prefixed to every stack's name (`blue-DisasterRecoveryStack`):
   * two deployments in one account and region. Unset: the stacks' own names.
   */
  readonly deployment?: string;
  /**
   * The game day: when set (`cron(...)` or `rate(...)`), the DR stack runs the drill
   * against itself on this schedule and publishes its metrics and reports. Unset: off.
   */
  readonly gameDaySchedule?: string;
  /** The methods the game day drills (the restore methods unless set). */
  readonly gameDayMethods: string[];
}

/** The drill's methods (`tandem dr-drill --methods`). */
export const DRILL_METHODS = ['pitr', 'backup', 'scheduled', 'cross-region', 'pilot-light', 'warm-standby'] as const;
/**
 * The game day's default: the restore methods, which work on scratch tables. The
 * failover methods move the deployment's clients to the standby and back.
 */
export const GAME_DAY_METHODS = ['pitr', 'backup', 'scheduled', 'cross-region'];

/** The context keys this app reads (all under `tandem:`). */
export const CONTEXT_KEYS = [
  'removal',
  'compute',
  'account',
  'primaryRegion',
  'recoveryRegion',
  'pipelineSchedule',
  'records',
  'idsPerNode',
  'maxvCpus',
  'runTimeoutHours',
  'capacityWaitMinutes',
  'apiStage',
  'lambdaArchitecture',
  'servedTable',
  'standby',
  'apiKeyVersion',
  'alertEmail',
  'apiRatePerSecond',
  'deployment',
  'gameDaySchedule',
  'gameDayMethods',
  'domainName',
  'hostedZoneId',
  'hostedZoneName',
] as const;

const REGION = /^[a-z]{2}(-gov)?-[a-z]+-\d$/;
/**
 * Why EventBridge would refuse schedule `s`, or undefined: `rate(1 unit)` with the unit
 * singular and `rate(N units)` plural for N > 1; `cron(...)` with six fields, one of
 * day-of-month and day-of-week `?` (the EventBridge user guide, schedule expressions).
 */
export function scheduleProblem(s: string): string | undefined {
  const rate = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(s);
  if (rate) {
    const n = Number(rate[1]);
    if (n < 1) return 'a rate of at least 1';
    if (n === 1 && rate[2].endsWith('s')) return `rate(1 ${rate[2].slice(0, -1)}): the unit is singular for 1`;
    if (n > 1 && !rate[2].endsWith('s')) return `rate(${n} ${rate[2]}s): the unit is plural above 1`;
    return undefined;
  }
  const cron = /^cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)$/.exec(s);
  if (cron) {
    const [dayOfMonth, dayOfWeek] = [cron[3], cron[5]];
    if ((dayOfMonth === '?') === (dayOfWeek === '?')) return 'exactly one of day-of-month and day-of-week as ?, such as cron(0 10 ? * MON *)';
    return undefined;
  }
  return 'cron(min hour day-of-month month day-of-week year) or rate(N unit), such as rate(7 days)';
}

function fail(key: string, value: unknown, want: string): never {
  throw new Error(`context tandem:${key} = ${JSON.stringify(value)} is not valid: ${want}`);
}

function str(node: Node, key: string, fallback?: string): string {
  const v = node.tryGetContext(`tandem:${key}`);
  if (v === undefined || v === null) {
    if (fallback === undefined) fail(key, v, 'it is required');
    return fallback;
  }
  if (typeof v !== 'string' || v.length === 0) fail(key, v, 'expected a non-empty string');
  return v;
}

function int(node: Node, key: string, fallback: number, min: number, max: number): number {
  const raw = node.tryGetContext(`tandem:${key}`);
  const v = raw === undefined ? fallback : typeof raw === 'string' ? Number(raw) : raw;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    fail(key, raw, `expected a whole number from ${min} to ${max}`);
  }
  return v;
}

function oneOf<T extends string>(node: Node, key: string, values: Record<string, T>, fallback: T): T {
  const v = str(node, key, fallback);
  const known = Object.values(values);
  if (!known.includes(v as T)) fail(key, v, `expected one of ${known.join(', ')}`);
  return v as T;
}

/** Reads and checks the context. */
export function readConfig(node: Node): TandemConfig {
  for (const k of Object.keys(node.tryGetContext('tandem') ?? {})) {
    fail(k, undefined, 'use flat keys such as tandem:removal');
  }
  const primaryRegion = str(node, 'primaryRegion', 'us-east-2');
  const recoveryRegion = str(node, 'recoveryRegion', 'us-east-1');
  for (const [k, r] of [['primaryRegion', primaryRegion], ['recoveryRegion', recoveryRegion]]) {
    if (!REGION.test(r)) fail(k, r, 'expected a region name such as us-east-2');
  }
  if (primaryRegion === recoveryRegion) {
    fail('recoveryRegion', recoveryRegion, 'the recovery region must differ from the primary region');
  }
  const schedule = str(node, 'pipelineSchedule', 'cron(0 6 * * ? *)');
  const scheduleWrong = scheduleProblem(schedule);
  if (scheduleWrong) fail('pipelineSchedule', schedule, `expected ${scheduleWrong}`);
  const records = int(node, 'records', 400_000, 1, Number.MAX_SAFE_INTEGER);
  const idsPerNode = int(node, 'idsPerNode', 40, 1, Number.MAX_SAFE_INTEGER);
  const children = Math.ceil(records / idsPerNode);
  if (children > 10_000) {
    fail(
      'idsPerNode',
      idsPerNode,
      `${records} records need ${children} children, over AWS Batch's 10,000; use ${Math.ceil(records / 10_000)} or more`,
    );
  }
  const account = node.tryGetContext('tandem:account') ?? process.env.CDK_DEFAULT_ACCOUNT;
  if (account !== undefined && !/^\d{12}$/.test(String(account))) {
    fail('account', account, 'expected a 12-digit AWS account id');
  }
  const servedTable = node.tryGetContext('tandem:servedTable');
  if (servedTable !== undefined && !(typeof servedTable === 'string' && /^[A-Za-z0-9_.-]{3,255}$/.test(servedTable))) {
    fail('servedTable', servedTable, 'expected a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ . -)');
  }
  const apiKeyVersion = node.tryGetContext('tandem:apiKeyVersion');
  if (apiKeyVersion !== undefined && !(typeof apiKeyVersion === 'string' && /^[A-Za-z0-9-]{32,64}$/.test(apiKeyVersion))) {
    fail('apiKeyVersion', apiKeyVersion, "expected a Secrets Manager VersionId (32 to 64 letters, digits and -, as put-secret-value answers)");
  }
  const alertEmail = node.tryGetContext('tandem:alertEmail');
  if (alertEmail !== undefined && !(typeof alertEmail === 'string' && /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(alertEmail))) {
    fail('alertEmail', alertEmail, 'expected an email address');
  }
  const domainKeys = ['domainName', 'hostedZoneId', 'hostedZoneName'] as const;
  const given = domainKeys.filter((k) => node.tryGetContext(`tandem:${k}`) !== undefined);
  let apiDomain: ApiDomain | undefined;
  if (given.length > 0) {
    for (const k of domainKeys) {
      if (!given.includes(k)) fail(k, undefined, `it is required with tandem:${given[0]} (the DNS failover needs all of ${domainKeys.join(', ')})`);
    }
    const domainName = str(node, 'domainName');
    const hostedZoneName = str(node, 'hostedZoneName').replace(/\.$/, '');
    const hostedZoneId = str(node, 'hostedZoneId');
    if (!/^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$/.test(domainName)) {
      fail('domainName', domainName, 'expected a lower-case DNS name such as api.example.com');
    }
    if (!domainName.endsWith(`.${hostedZoneName}`)) {
      fail('domainName', domainName, `expected a name inside the hosted zone ${hostedZoneName}`);
    }
    if (!/^Z[A-Z0-9]{5,31}$/.test(hostedZoneId)) fail('hostedZoneId', hostedZoneId, 'expected a Route 53 hosted zone id such as Z0123456789ABCDEFGHIJ');
    apiDomain = { domainName, hostedZoneId, hostedZoneName };
  }
  const deployment = node.tryGetContext('tandem:deployment');
  // Stack names are letters, digits and hyphens, starting with a letter; the longest
  // stack name with the prefix keeps the pipeline's state machine within 80 characters.
  if (deployment !== undefined && !(typeof deployment === 'string' && /^[A-Za-z][A-Za-z0-9-]{0,23}$/.test(deployment))) {
    fail('deployment', deployment, 'expected 1 to 24 letters, digits and hyphens, starting with a letter');
  }
  // CloudFormation names buckets after the stack, lower-cased: S3 reserves these prefixes.
  const reserved = ['xn--', 'sthree-', 'amzn-s3-demo-'].find((p) => deployment?.toLowerCase().startsWith(p));
  if (reserved) fail('deployment', deployment, `a name not starting with ${reserved}, which S3 reserves (the buckets are named after the stacks)`);
  const gameDaySchedule = node.tryGetContext('tandem:gameDaySchedule');
  if (gameDaySchedule !== undefined) {
    const wrong = typeof gameDaySchedule === 'string' ? scheduleProblem(gameDaySchedule) : 'a string';
    if (wrong) fail('gameDaySchedule', gameDaySchedule, `expected ${wrong}`);
  }
  const methodsRaw = node.tryGetContext('tandem:gameDayMethods') ?? GAME_DAY_METHODS.join(',');
  const gameDayMethods = typeof methodsRaw === 'string' ? methodsRaw.split(',').map((m) => m.trim()) : [];
  if (gameDayMethods.length === 0 || gameDayMethods.some((m) => !(DRILL_METHODS as readonly string[]).includes(m))) {
    fail('gameDayMethods', methodsRaw, `expected a comma-separated list of ${DRILL_METHODS.join(', ')}`);
  }
  if (node.tryGetContext('tandem:gameDayMethods') !== undefined && gameDaySchedule === undefined) {
    fail('gameDayMethods', methodsRaw, 'it is for the game day: set tandem:gameDaySchedule too');
  }
  const apiStage = str(node, 'apiStage', 'prod');
  if (!/^[A-Za-z0-9_]{1,128}$/.test(apiStage)) fail('apiStage', apiStage, 'expected letters, digits and _');
  return {
    removal: oneOf(node, 'removal', Removal, Removal.Dev),
    compute: oneOf(node, 'compute', Compute, Compute.Fargate),
    account: account === undefined ? undefined : String(account),
    primaryRegion,
    recoveryRegion,
    pipelineSchedule: schedule,
    records,
    idsPerNode,
    maxvCpus: int(node, 'maxvCpus', 256, 1, 100_000),
    runTimeout: cdk.Duration.hours(int(node, 'runTimeoutHours', 24, 1, 24 * 365)),
    // Batch's jobStateTimeLimitActions take 10 minutes to 24 hours.
    capacityWait: cdk.Duration.minutes(int(node, 'capacityWaitMinutes', 240, 10, 1440)),
    apiStage,
    lambdaArchitecture: oneOf(node, 'lambdaArchitecture', LambdaArchitecture, LambdaArchitecture.X86_64),
    servedTable,
    standby: oneOf(node, 'standby', Standby, Standby.PilotLight),
    apiKeyVersion,
    apiDomain,
    alertEmail,
    // The stage takes four times this in a burst: 1,000 keeps it within API
    // Gateway's account defaults (10,000 a second, bursts of 5,000).
    apiRatePerSecond: int(node, 'apiRatePerSecond', 50, 1, 1000),
    deployment,
    gameDaySchedule,
    gameDayMethods,
  };
}

/** The removal policy for data under `removal`. */
export function dataRemoval(removal: Removal): cdk.RemovalPolicy {
  return removal === Removal.Prod ? cdk.RemovalPolicy.RETAIN : cdk.RemovalPolicy.DESTROY;
}
