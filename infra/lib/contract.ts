// The IAM contract (iam/contract.json) on the CDK side: its types, the binding of its
// placeholders and principals to the constructs of a stack, and the operator policies,
// which are made from it (every operator command's calls, on the stack's resources).
//
// The roles are written by hand next to the resources they use; infra/test/contract.test.ts
// resolves every role's synthesized statements and checks them against the contract both
// ways (every entry allowed on its own resource, every grant used by an entry).

import * as fs from 'fs';
import * as path from 'path';
import * as cdk from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct, IConstruct } from 'constructs';
import { acknowledge, findingResource } from './nag';

export const CONTRACT_PATH = path.join(__dirname, '..', '..', 'iam', 'contract.json');

/** Every action of `actions` on every resource of `resources`, and why. */
export interface Entry {
  readonly actions: string[];
  readonly resources: string[];
  readonly why: string;
  readonly conditions?: Record<string, Record<string, string | string[]>>;
}

export type PrincipalKind = 'role' | 'managed-policy' | 'none';

export interface Principal {
  readonly stack?: string;
  readonly kind: PrincipalKind;
  readonly about: string;
  /** What an AWS service does with this principal's permissions on its behalf. */
  readonly service?: Entry[];
  /** AWS managed policies attached to it, each with the reason. */
  readonly managed?: Record<string, string>;
  /** Principals whose entries this one holds too (a role that runs an operator's command). */
  readonly includes?: string[];
}

export interface Component {
  readonly principal: string;
  readonly about: string;
  /** What its code (or its definition, for a state machine or a rule) calls. */
  readonly calls: Entry[];
}

export interface ManagedPolicyDoc {
  readonly doc: string;
  readonly statements: { actions: string[]; resources: string[] }[];
}

export interface Contract {
  readonly about: string;
  readonly placeholders: Record<string, string>;
  readonly managed_policies: Record<string, ManagedPolicyDoc>;
  readonly principals: Record<string, Principal>;
  readonly components: Record<string, Component>;
}

let cached: Contract | undefined;

/** The committed contract. */
export function loadContract(): Contract {
  cached ??= JSON.parse(fs.readFileSync(CONTRACT_PATH, 'utf8')) as Contract;
  return cached;
}

/** `pattern` with every `{Placeholder}` replaced by its value; an unbound one is an error. */
export function bindPattern(pattern: string, values: Record<string, string>): string {
  return pattern.replace(/\{([A-Za-z]+)\}/g, (_, name: string) => {
    const v = values[name];
    if (v === undefined) {
      throw new Error(`iam/contract.json: placeholder {${name}} in ${pattern} is not bound by this stack`);
    }
    return v;
  });
}

/** Every entry whose principal is `principal`: its components' calls and its own service entries. */
export function entriesOf(contract: Contract, principal: string): { component: string; entry: Entry }[] {
  const out: { component: string; entry: Entry }[] = [];
  for (const [name, c] of Object.entries(contract.components)) {
    if (c.principal === principal) out.push(...c.calls.map((entry) => ({ component: name, entry })));
  }
  for (const entry of contract.principals[principal]?.service ?? []) {
    out.push({ component: `${principal} (service)`, entry });
  }
  for (const included of contract.principals[principal]?.includes ?? []) {
    out.push(...entriesOf(contract, included));
  }
  return out;
}

/**
 * What one stack binds: the value of each placeholder it names (tokens of its
 * constructs, or plain strings) and the construct of each principal it creates.
 */
export class ContractBinding {
  readonly placeholders: Record<string, string> = {};
  private readonly bound: Record<string, IConstruct> = {};
  private readonly late: Record<string, () => IConstruct | undefined> = {};

  /** Every principal bound, those CDK made while synthesizing included. */
  get principals(): Record<string, IConstruct> {
    const out = { ...this.bound };
    for (const [id, find] of Object.entries(this.late)) {
      const c = find();
      if (c) out[id] = c;
    }
    return out;
  }

  constructor(stack: cdk.Stack) {
    this.placeholders.Partition = cdk.Aws.PARTITION;
    this.placeholders.Region = stack.region;
    this.placeholders.Account = cdk.Aws.ACCOUNT_ID;
  }

  bind(values: Record<string, string>): this {
    Object.assign(this.placeholders, values);
    return this;
  }

  /**
   * Acknowledges cdk-nag's AwsSolutions-IAM5 findings (wildcard resources) of every
   * principal bound here, finding by finding: each wildcard is an entry of
   * iam/contract.json with its reason, and infra/test/contract.test.ts fails on a
   * wildcard grant that no entry wrote. Called once the stack is complete.
   */
  acknowledgeWildcards(stack: cdk.Stack): void {
    for (const [id, construct] of Object.entries(this.principals)) {
      const documents: iam.PolicyDocument[] = [];
      if (construct instanceof iam.ManagedPolicy) documents.push(construct.document);
      const defaultPolicy = construct.node.tryFindChild('DefaultPolicy');
      if (defaultPolicy instanceof iam.Policy) documents.push(defaultPolicy.document);
      const findings = new Set<string>();
      for (const doc of documents) {
        const json = stack.resolve(doc.toJSON()) as { Statement?: { Resource?: unknown }[] } | undefined;
        for (const st of json?.Statement ?? []) {
          const resources = Array.isArray(st.Resource) ? st.Resource : [st.Resource];
          for (const r of resources) {
            const f = findingResource(r);
            if (f.includes('*')) findings.add(`Resource::${f}`);
          }
        }
      }
      if (findings.size > 0) {
        acknowledge(
          construct,
          'AwsSolutions-IAM5',
          `Every wildcard of ${id} is an entry of iam/contract.json with its reason (job and recovery point ids made by the service, scratch tables the drill names, actions without resource-level permissions); infra/test/contract.test.ts fails on any other.`,
          [...findings],
        );
      }
    }
  }

  principal(id: string, construct: IConstruct): this {
    if (loadContract().principals[id] === undefined) {
      throw new Error(`principal ${id} is not in iam/contract.json`);
    }
    this.bound[id] = construct;
    return this;
  }

  /**
   * A principal CDK makes while it synthesizes (the role of one of its own custom
   * resource providers), found by `find` once it exists.
   */
  latePrincipal(id: string, find: () => IConstruct | undefined): this {
    if (loadContract().principals[id] === undefined) {
      throw new Error(`principal ${id} is not in iam/contract.json`);
    }
    this.late[id] = find;
    return this;
  }

  /**
   * The role of CDK's provider `provider` (`Custom::CrossRegionExportWriter`), bound
   * as `id` once synthesis makes it.
   */
  cdkProviderRole(stack: cdk.Stack, id: string, provider: string): this {
    return this.latePrincipal(id, () => stack.node.tryFindChild(`${provider}CustomResourceProvider`)?.node.tryFindChild('Role'));
  }
}

/**
 * The statements of `principal`'s entries (its components' calls, those of the
 * principals it includes) on this stack's resources.
 */
export function contractStatements(principal: string, binding: ContractBinding): iam.PolicyStatement[] {
  return entriesOf(loadContract(), principal)
    .filter(({ component }) => !component.endsWith(' (service)'))
    .map(
      ({ entry }) =>
        new iam.PolicyStatement({
          actions: entry.actions,
          resources: entry.resources.map((r) => bindPattern(r, binding.placeholders)),
          conditions: entry.conditions,
        }),
    );
}

/**
 * The managed policy of the operator principal `principal`: exactly the calls of the
 * components that run as it, on this stack's resources. IAM's minimizePolicies
 * (cdk.json) merges statements that share actions or resources.
 */
export function operatorPolicy(
  scope: Construct,
  id: string,
  principal: string,
  binding: ContractBinding,
): iam.ManagedPolicy {
  const p = loadContract().principals[principal];
  if (p?.kind !== 'managed-policy') throw new Error(`${principal} is not a managed-policy principal`);
  const policy = new iam.ManagedPolicy(scope, id, {
    description: p.about.slice(0, 1000),
    statements: contractStatements(principal, binding),
  });
  binding.principal(principal, policy);
  return policy;
}
