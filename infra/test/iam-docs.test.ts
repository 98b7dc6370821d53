// The IAM docs are the contract's: docs/iam.md and the IAM sections of docs/aws.md and
// docs/dr.md are exactly what iam/contract.json makes.
import * as fs from 'fs';
import { generated, replaceSection } from '../lib/iam-docs';

test.each(generated().map((g) => [g.file, g.content]))('%s is generated from iam/contract.json', (file, content) => {
  const committed = fs.readFileSync(file, 'utf8');
  if (committed !== content) {
    throw new Error(`${file} differs from what iam/contract.json makes: run cd infra && npm run iam-docs`);
  }
});

test('a section without its markers is an error, not a silent skip', () => {
  expect(() => replaceSection('no markers here', 'pipeline', 'x')).toThrow(/iam:BEGIN pipeline/);
});
