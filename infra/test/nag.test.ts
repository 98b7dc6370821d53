import * as fs from 'fs';
import * as path from 'path';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { synthApp } from './helpers';

describe('cdk-nag', () => {
  test('every stack synthesizes with no unacknowledged AwsSolutions finding', () => {
    const { app } = synthApp();
    const assembly = app.synth();
    expect(assembly.stacks.map((s) => s.stackName).sort()).toEqual([
      'DisasterRecoveryRegionStack',
      'DisasterRecoveryStack',
      'DisasterRecoveryStandbyStack',
      'PipelineStack',
    ]);
  });

  test('a finding nobody explained stops synth', () => {
    const { app, pipeline } = synthApp();
    // A bucket without TLS enforcement, logging or encryption settings.
    new s3.Bucket(pipeline, 'Careless');
    expect(() => app.synth()).toThrow(/AwsSolutions-S10/);
  });

  test('synth is deterministic', () => {
    const a = synthApp().app.synth();
    const b = synthApp().app.synth();
    for (const stack of a.stacks) {
      const other = b.getStackByName(stack.stackName);
      expect(fs.readFileSync(path.join(a.directory, stack.templateFile), 'utf8')).toBe(
        fs.readFileSync(path.join(b.directory, other.templateFile), 'utf8'),
      );
    }
  });
});
