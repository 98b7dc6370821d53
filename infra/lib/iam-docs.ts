// The IAM documentation, made from iam/contract.json: docs/iam.md whole, and the IAM
// sections of docs/aws.md and docs/dr.md between their `<!-- iam:BEGIN NAME -->` and
// `<!-- iam:END NAME -->` markers. `npm run iam-docs` writes them; a test fails when
// the committed docs differ from what the contract makes.

import * as fs from 'fs';
import * as path from 'path';
import { Contract, Entry, loadContract } from './contract';

export const DOCS = path.join(__dirname, '..', '..', 'docs');

/** The sections other docs embed: marker name -> the stacks whose principals it lists. */
export const SECTIONS: Record<string, { file: string; stacks: string[] }> = {
  pipeline: { file: 'aws.md', stacks: ['PipelineStack'] },
  dr: { file: 'dr.md', stacks: ['DisasterRecoveryStack'] },
};

const code = (s: string) => `\`${s}\``;

function rows(entries: { who: string; entry: Entry }[]): string[] {
  const out = ['| who | actions | resources | why |', '| --- | --- | --- | --- |'];
  for (const { who, entry } of entries) {
    const conditions = entry.conditions ? ` (when ${code(JSON.stringify(entry.conditions))})` : '';
    out.push(
      `| ${who} | ${entry.actions.map(code).join(', ')} | ${entry.resources.map(code).join(', ')}${conditions} | ${entry.why} |`,
    );
  }
  return out;
}

/** The tables of every principal of `stacks`. */
function principals(c: Contract, stacks: string[], heading: string): string[] {
  const out: string[] = [];
  for (const [id, p] of Object.entries(c.principals)) {
    if (p.kind === 'none' || !stacks.includes(p.stack ?? '')) continue;
    out.push(`${heading} ${p.about} (${code(id)})`, '');
    const entries: { who: string; entry: Entry }[] = [];
    for (const [name, comp] of Object.entries(c.components)) {
      if (comp.principal === id) entries.push(...comp.calls.map((entry) => ({ who: code(name), entry })));
    }
    entries.push(...(p.service ?? []).map((entry) => ({ who: 'AWS, on its behalf', entry })));
    if (entries.length > 0) out.push(...rows(entries), '');
    for (const [m, why] of Object.entries(p.managed ?? {})) {
      out.push(`AWS managed policy ${code(m)}: ${why}.`, '');
    }
    if (entries.length === 0 && Object.keys(p.managed ?? {}).length === 0) out.push('No AWS calls.', '');
  }
  return out;
}

/** A section embedded in another doc. */
export function renderSection(name: string, c: Contract = loadContract()): string {
  const { stacks } = SECTIONS[name];
  return [
    'Generated from `iam/contract.json` (`cd infra && npm run iam-docs`); `docs/iam.md` has the',
    'placeholders and how the contract is checked.',
    '',
    ...principals(c, stacks, '####'),
  ]
    .join('\n')
    .trimEnd();
}

/** docs/iam.md. */
export function renderIamDoc(c: Contract = loadContract()): string {
  const out = [
    '# IAM: what each part of tandem calls, and what grants it',
    '',
    '<!-- Generated from iam/contract.json by `cd infra && npm run iam-docs`; do not edit. -->',
    '',
    c.about,
    '',
    'Resources are ARN patterns: IAM\'s wildcards, and placeholders for what a deployment names:',
    '',
    '| placeholder | stands for |',
    '| --- | --- |',
    ...Object.entries(c.placeholders).map(([k, v]) => `| ${code(`{${k}}`)} | ${v} |`),
    '',
    '## Recording what a process calls',
    '',
    'With `TANDEM_AWS_CALL_LOG=FILE`, every tandem process (the CLI, the functions) appends',
    'one JSON line per AWS call to FILE: its component, the SDK operation, and each IAM',
    'action it needs with the resource (an ARN; `*` for the account where a call names a',
    'resource by name). It is what to check a hand-written policy against; the tests use',
    'it to fail when a call falls outside its component\'s entries.',
    '',
    '## Operators',
    '',
    'Each stack exports an operator policy (output `OperatorPolicyArn`) made from the',
    'entries of its operator commands: attach it to the people or CI roles that run them',
    '(`docs/deploy.md`).',
    '',
  ];
  const stacks = [...new Set(Object.values(c.principals).flatMap((p) => (p.stack ? [p.stack] : [])))];
  for (const stack of stacks) {
    out.push(`## ${stack}`, '', ...principals(c, [stack], '###'));
  }
  out.push('## With the caller\'s own credentials', '');
  const callerEntries: { who: string; entry: Entry }[] = [];
  for (const [name, comp] of Object.entries(c.components)) {
    if (c.principals[comp.principal]?.kind === 'none') callerEntries.push(...comp.calls.map((entry) => ({ who: code(name), entry })));
  }
  out.push(c.principals.caller?.about ?? '', '', ...rows(callerEntries), '');
  out.push('## AWS managed policies the check expands', '');
  for (const [name, m] of Object.entries(c.managed_policies)) {
    out.push(`- ${code(name)} (${m.doc})`);
  }
  return out.join('\n').trimEnd() + '\n';
}

/** `text` with the block between the markers of `name` replaced by `body`. */
export function replaceSection(text: string, name: string, body: string): string {
  const begin = `<!-- iam:BEGIN ${name} -->`;
  const end = `<!-- iam:END ${name} -->`;
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`no ${begin} ... ${end} block`);
  return `${text.slice(0, a + begin.length)}\n${body}\n${text.slice(b)}`;
}

/** Every generated file with its expected content. */
export function generated(c: Contract = loadContract()): { file: string; content: string }[] {
  const files = [{ file: path.join(DOCS, 'iam.md'), content: renderIamDoc(c) }];
  for (const [name, { file }] of Object.entries(SECTIONS)) {
    const full = path.join(DOCS, file);
    const current = files.find((f) => f.file === full)?.content ?? fs.readFileSync(full, 'utf8');
    const content = replaceSection(current, name, renderSection(name, c));
    const existing = files.find((f) => f.file === full);
    if (existing) existing.content = content;
    else files.push({ file: full, content });
  }
  return files;
}
