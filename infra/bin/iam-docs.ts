#!/usr/bin/env node
// Writes docs/iam.md and the IAM sections of docs/aws.md and docs/dr.md from
// iam/contract.json (`npm run iam-docs`); test/iam-docs.test.ts fails when they differ.
import * as fs from 'fs';
import { generated } from '../lib/iam-docs';

for (const { file, content } of generated()) {
  const before = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  if (before !== content) {
    fs.writeFileSync(file, content);
    console.log(`iam-docs: wrote ${file}`);
  }
}
