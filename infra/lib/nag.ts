// cdk-nag findings acknowledged next to the resource they concern, each with its
// reason (cdk-nag v3 uses CDK's own Validations API; one acknowledgment per finding).

import { CfnElement, Stack, Validations } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

/**
 * Acknowledges cdk-nag rule `rule` (e.g. `AwsSolutions-IAM5`) on `scope` with a
 * written reason. With `findings`, only those findings of the rule are acknowledged
 * (e.g. `Resource::*`), never the rule as a whole.
 */
export function acknowledge(scope: IConstruct, rule: string, reason: string, findings?: string[]): void {
  const ids = findings === undefined ? [rule] : findings.map((f) => `${rule}[${f}]`);
  for (const id of ids) {
    Validations.of(scope).acknowledge({ id, reason });
  }
}

/**
 * The finding cdk-nag reports for an ARN pattern of this stack's account and region
 * (`arn:aws:SERVICE:REGION:<AWS::AccountId>:RESOURCE`); `region` overrides the
 * stack's (`*` for any region).
 */
export function arnFinding(scope: IConstruct, service: string, resource: string, region?: string): string {
  return `Resource::arn:aws:${service}:${region ?? Stack.of(scope).region}:<AWS::AccountId>:${resource}`;
}

/** The finding for `<LogicalId.Arn>SUFFIX`, an attribute of a resource in the template. */
export function attrFinding(resource: IConstruct, suffix: string): string {
  const cfn = (resource.node.defaultChild ?? resource) as CfnElement;
  return `Resource::<${Stack.of(resource).getLogicalId(cfn)}.Arn>${suffix}`;
}

/**
 * How cdk-nag names a resource in a finding: references as `<LogicalId>` and
 * `<LogicalId.Attr>`, pseudo parameters as `<AWS::Partition>`, joins flattened, and
 * any other intrinsic as its JSON.
 */
export function findingResource(resolved: unknown): string {
  if (typeof resolved === 'string') return resolved;
  const v = resolved as Record<string, any>;
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    if (typeof v.Ref === 'string') return `<${v.Ref}>`;
    const att = v['Fn::GetAtt'];
    if (Array.isArray(att)) return `<${att[0]}.${att[1]}>`;
    const join = v['Fn::Join'];
    if (Array.isArray(join)) return (join[1] as unknown[]).map(findingResource).join(join[0]);
  }
  return JSON.stringify(resolved);
}
