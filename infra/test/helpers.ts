// Synthesizes the app once per test file, with the context of cdk.json and Lambda
// bundling skipped (the real bundles are built and checked by scripts/lambdas.sh).

import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Template } from 'aws-cdk-lib/assertions';
import { TandemApp, buildApp } from '../lib/app';

export const CDK_CONTEXT: Record<string, unknown> = JSON.parse(
  fs.readFileSync(path.join(__dirname, '..', 'cdk.json'), 'utf8'),
).context;

/** The cloud assemblies this test file synthesized, removed when it ends. */
const outdirs: string[] = [];
afterAll(() => {
  for (const dir of outdirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** The app built with cdk.json's context plus `extra`, bundling skipped. */
export function synthApp(extra: Record<string, unknown> = {}): TandemApp {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-cdk-'));
  outdirs.push(outdir);
  return buildApp({
    context: { ...CDK_CONTEXT, 'aws:cdk:bundling-stacks': [], ...extra },
    outdir,
  });
}

/**
 * The state machine's definition, parsed: tokens (references to other resources)
 * become strings such as `{"Ref":"WorkerJob..."}` so the JSON can be read as data.
 */
export function definition(template: Template): any {
  const machines = template.findResources('AWS::StepFunctions::StateMachine');
  const [machine] = Object.values(machines) as any[];
  const parts: unknown[] = machine.Properties.DefinitionString['Fn::Join'][1];
  const text = parts
    .map((p) => (typeof p === 'string' ? p : JSON.stringify(p).replace(/\\/g, '\\\\').replace(/"/g, '\\"')))
    .join('');
  return JSON.parse(text);
}
