// One place that turns a binary of the `tandem-lambdas` crate into a Lambda function:
// cargo-lambda-cdk's RustFunction (provided.al2023), its own role with an inline policy
// for its own log group (no AWS-managed policy), a log group with a retention, and
// optional VPC and EFS access.

import * as path from 'path';
import * as cdk from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct } from 'constructs';
import { LambdaArchitecture } from './config';
import { acknowledge } from './nag';

/** The workspace manifest cargo-lambda builds from. */
export const WORKSPACE_MANIFEST = path.join(__dirname, '..', '..', 'Cargo.toml');

/**
 * The glibc the bootstraps are linked against: provided.al2023 ships 2.34, so
 * cargo-lambda (through zig) targets exactly that and no newer symbol can sneak in.
 */
export const GLIBC = '2.34';

/** The Cargo profile of the bootstraps (release without debug info; see Cargo.toml). */
export const LAMBDA_PROFILE = 'lambda';

export interface TandemFunctionProps {
  /** The binary in `lambdas/src/bin/`. */
  readonly binary: string;
  readonly description: string;
  readonly environment?: Record<string, string>;
  readonly timeout?: cdk.Duration;
  readonly memorySize?: number;
  readonly removalPolicy: cdk.RemovalPolicy;
  /** Places the function in the VPC's private subnets. */
  readonly vpc?: ec2.IVpc;
  readonly filesystem?: lambda.FileSystem;
  readonly architecture: LambdaArchitecture;
  /** A name known before the function exists (default: generated). */
  readonly functionName?: string;
  /** Reserved concurrency; 0 throttles every invocation (a function switched off). */
  readonly reservedConcurrentExecutions?: number;
}

/** A Rust Lambda function of this repository, with its role and log group. */
export class TandemFunction extends Construct {
  readonly fn: lambda.Function;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: TandemFunctionProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: props.removalPolicy,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `tandem ${props.binary} function`,
    });
    // The log group's ARN ends in `:*`, which covers its streams (log-group:NAME:log-stream:ID).
    this.role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn],
      }),
    );
    if (props.vpc) {
      // Lambda attaches network interfaces in the VPC (AWSLambdaVPCAccessExecutionRole's
      // actions); the Describe actions cannot be scoped, the others act on interfaces
      // that do not exist before Lambda creates them.
      this.role.addToPolicy(
        new iam.PolicyStatement({
          actions: [
            'ec2:CreateNetworkInterface',
            'ec2:DescribeNetworkInterfaces',
            'ec2:DescribeSubnets',
            'ec2:DeleteNetworkInterface',
            'ec2:AssignPrivateIpAddresses',
            'ec2:UnassignPrivateIpAddresses',
          ],
          resources: ['*'],
        }),
      );
      acknowledge(this.role, 'AwsSolutions-IAM5', 'A function in a VPC needs these network-interface actions; EC2 does not support resource-level permissions for DescribeNetworkInterfaces, and the interfaces do not exist before the function creates them.', ['Resource::*']);
    }
    const arm = props.architecture === LambdaArchitecture.Arm64;
    const architecture = arm ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64;
    const target = arm ? 'aarch64-unknown-linux-gnu' : 'x86_64-unknown-linux-gnu';
    this.fn = new RustFunction(this, 'Function', {
      manifestPath: WORKSPACE_MANIFEST,
      binaryName: props.binary,
      description: props.description,
      architecture,
      bundling: {
        profile: LAMBDA_PROFILE,
        // The same package selection as scripts/lambdas.sh (features are resolved per
        // selection), so synth reuses that build instead of compiling again.
        cargoLambdaFlags: ['--target', `${target}.${GLIBC}`, '--locked', '--package', 'tandem-lambdas'],
      },
      role: this.role,
      logGroup: this.logGroup,
      environment: { RUST_LOG: 'info', ...props.environment },
      timeout: props.timeout ?? cdk.Duration.seconds(30),
      memorySize: props.memorySize ?? 256,
      vpc: props.vpc,
      vpcSubnets: props.vpc ? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS } : undefined,
      filesystem: props.filesystem,
      functionName: props.functionName,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
    });
    if (props.vpc) {
      acknowledge(
        this.fn,
        'Annotation::@aws-cdk/aws-ec2:ipv4IgnoreEgressRule',
        'The function reaches AWS APIs over HTTPS, so its security group allows all outbound traffic; the NFS rule a mount adds is covered by it.',
      );
    }
  }
}
