// The app: builds every stack from the checked context and applies cdk-nag's
// AwsSolutions pack to all of them, so synth fails on any unexplained finding.

import * as cdk from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readConfig } from './config';
import { DisasterRecoveryStack, DrRecoveryStack, DrStandbyStack } from './dr-stack';
import { PipelineStack } from './pipeline-stack';

export const PIPELINE_STACK = 'PipelineStack';
export const DR_STACK = 'DisasterRecoveryStack';
export const DR_RECOVERY_STACK = 'DisasterRecoveryRegionStack';
export const DR_STANDBY_STACK = 'DisasterRecoveryStandbyStack';

export interface TandemApp {
  readonly app: cdk.App;
  readonly pipeline: PipelineStack;
  readonly dr: DisasterRecoveryStack;
  readonly drRecovery: DrRecoveryStack;
  readonly drStandby: DrStandbyStack;
}

/** Builds the app; `props` are passed to `cdk.App` (tests give the context and outdir). */
export function buildApp(props?: cdk.AppProps): TandemApp {
  const app = new cdk.App(props);
  const config = readConfig(app.node);
  const env = (region: string) => ({ account: config.account, region });
  // Each stack keeps its construct id (the IAM contract names stacks by it); its
  // CloudFormation name carries the deployment's prefix when there is one.
  const stackName = (id: string) => (config.deployment ? `${config.deployment}-${id}` : id);
  const pipeline = new PipelineStack(app, PIPELINE_STACK, {
    stackName: stackName(PIPELINE_STACK),
    env: env(config.primaryRegion),
    description: 'tandem array pipeline: EFS, Batch (three stages chained N_TO_N), S3 egress, Step Functions, schedule',
    config,
  });
  const drRecovery = new DrRecoveryStack(app, DR_RECOVERY_STACK, {
    stackName: stackName(DR_RECOVERY_STACK),
    env: env(config.recoveryRegion),
    description: 'tandem DR: the recovery region\'s backup vault',
    config,
    primaryStackName: stackName(DR_STACK),
  });
  const dr = new DisasterRecoveryStack(app, DR_STACK, {
    stackName: stackName(DR_STACK),
    env: env(config.primaryRegion),
    description: 'tandem DR: Product table with PITR and a replica, product API, AWS Backup plan with a cross-region copy',
    config,
    standbyStackName: stackName(DR_STANDBY_STACK),
    recoveryVault: drRecovery.vault,
  });
  dr.addStackDependency(drRecovery, 'the backup plan copies into the recovery region\'s vault');
  const drStandby = new DrStandbyStack(app, DR_STANDBY_STACK, {
    stackName: stackName(DR_STANDBY_STACK),
    env: env(config.recoveryRegion),
    description: `tandem DR: the product API in the recovery region over the table's replica (${config.standby})`,
    config,
    primary: dr,
  });
  for (const stack of [pipeline, dr, drRecovery, drStandby]) {
    cdk.Tags.of(stack).add('project', 'tandem');
  }
  cdk.Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return { app, pipeline, dr, drRecovery, drStandby };
}
