import type { Command } from 'commander';
import { compilePolicy } from '../../policy/compile/endpoint.js';
import { diffPolicies, type PolicyDiff } from '../../policy/diff.js';
import { formatDecidedBy } from '../../policy/decide.js';
import { ENFORCEMENT_MODES, RULE_ACTIONS } from '../../policy/model.js';
import { formatProblem } from '../../policy-as-code/parse.js';
import { loadPolicy } from '../../policy-as-code/load.js';
import { CliError, json, type CliIo } from '../io.js';
import { BACKENDS, isBackend, renderEndpoint } from '../../policy/compile/backends.js';
import { registerPolicyGenerate } from './policy-generate.js';

function countBy<T>(
  items: readonly T[],
  key: (t: T) => string,
  keys: readonly string[] = [],
): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(keys.map((k) => [k, 0]));
  for (const i of items) out[key(i)] = (out[key(i)] ?? 0) + 1;
  return out;
}

const counts = (r: Record<string, number>) =>
  Object.entries(r)
    .map(([k, n]) => `${n} ${k}`)
    .join(', ');

async function check(io: CliIo, opts: { file: string[]; json?: boolean }): Promise<void> {
  const loaded = await loadPolicy(opts.file);
  const { policy, resolved } = loaded;
  const compiled = compilePolicy(resolved);
  let ruleInstances = 0;
  for (const e of compiled.endpoints.values())
    ruleInstances += e.inbound.length + e.outbound.length;
  const enforcing = [...compiled.endpoints.values()].filter((e) => e.mode !== 'idle').length;
  const summary = {
    workloads: policy.workloads.length,
    workloadsByMode: countBy(policy.workloads, (w) => (w.managed ? w.mode : 'unmanaged'), [
      ...ENFORCEMENT_MODES,
      'unmanaged',
    ]),
    rulesets: policy.rulesets.length,
    rules: resolved.rules.length,
    rulesByAction: countBy(resolved.rules, (r) => r.action, RULE_ACTIONS),
    labelGroups: policy.labelGroups.length,
    ipLists: policy.ipLists.length,
    userGroups: policy.userGroups.length,
    services: policy.services.length,
    alwaysAllowed: policy.settings.alwaysAllowed.length,
    compiled: { enforcingWorkloads: enforcing, peerSets: compiled.peerSets.size, ruleInstances },
    warnings: loaded.warnings.map(formatProblem),
  };
  if (opts.json) {
    io.out(json({ ok: true, ...summary }));
    return;
  }
  io.out(
    [
      `policy OK: ${opts.file.join(', ')}`,
      `  workloads:   ${summary.workloads} (${counts(summary.workloadsByMode)})`,
      `  rulesets:    ${summary.rulesets}, rules: ${summary.rules} (${counts(summary.rulesByAction)})`,
      `  objects:     ${summary.labelGroups} label groups, ${summary.ipLists} IP lists, ${summary.userGroups} user groups, ${summary.services} services, ${summary.alwaysAllowed} always-allowed endpoints`,
      `  compiled:    ${enforcing} enforcing workloads, ${summary.compiled.peerSets} peer sets, ${ruleInstances} rules across all hosts`,
      ...(summary.warnings.length ? ['warnings:', ...summary.warnings.map((w) => `  ${w}`)] : []),
    ].join('\n'),
  );
}

async function compile(
  io: CliIo,
  opts: { file: string[]; workload: string; format: string },
): Promise<void> {
  if (!isBackend(opts.format))
    throw new CliError(`--format: "${opts.format}" is not one of ${BACKENDS.join(', ')}`, 2);
  const { resolved } = await loadPolicy(opts.file);
  const compiled = compilePolicy(resolved);
  const endpoint = compiled.endpoints.get(opts.workload);
  if (!endpoint) {
    const known = [...compiled.endpoints.keys()].slice(0, 10).join(', ');
    throw new CliError(
      `--workload: no workload "${opts.workload}" in the policy (workloads: ${known}${compiled.endpoints.size > 10 ? ', ...' : ''})`,
      2,
    );
  }
  const rendered = renderEndpoint(opts.format, endpoint, compiled.peerSets);
  io.out(rendered.text);
  for (const w of rendered.warnings) io.err(`warning: ${w}`);
}

export function formatDiff(d: PolicyDiff): string {
  const lines: string[] = [];
  const sign = { added: '+', removed: '-', changed: '~' } as const;
  if (d.objects.length) {
    lines.push('objects:');
    for (const o of d.objects)
      lines.push(
        `  ${sign[o.change]} ${o.kind} ${o.name}${o.fields.length ? ` (${o.fields.join(', ')})` : ''}`,
      );
  }
  if (d.rules.length) {
    lines.push('rules:');
    for (const r of d.rules)
      lines.push(
        `  ${sign[r.change]} ${r.ruleId}${r.fields.length ? ` (${r.fields.join(', ')})` : ''}`,
      );
  }
  if (d.flowsCompared === 0 && (d.objects.length || d.rules.length)) {
    lines.push('access: not computed (the estate is too large for the representative grid)');
  } else if (d.access.length) {
    lines.push('access:');
    let current = '';
    for (const a of d.access) {
      if (a.to !== current) {
        current = a.to;
        lines.push(`  to ${a.to}`);
      }
      const mark = a.direction === 'gains' ? '+' : '-';
      lines.push(
        `    ${mark} from ${a.from} ${a.service}: ${a.before} -> ${a.after} (${formatDecidedBy(a.decidedBy)})`,
      );
    }
  }
  if (!lines.length) lines.push('no changes');
  return lines.join('\n');
}

async function diff(io: CliIo, opts: { file: string[]; json?: boolean }): Promise<void> {
  if (opts.file.length !== 2)
    throw new CliError('policy diff takes exactly two -f options: the old policy, then the new', 2);
  const before = await loadPolicy([opts.file[0]!]);
  const after = await loadPolicy([opts.file[1]!]);
  const d = diffPolicies(before.resolved, after.resolved);
  io.out(opts.json ? json(d) : formatDiff(d));
}

export function registerPolicy(program: Command, io: CliIo): void {
  const policy = program
    .command('policy')
    .description('check, compile and compare policy-as-code; generate and simulate the draft');
  policy
    .command('check')
    .description('validate policy files and print counts, warnings and problems')
    .requiredOption('-f, --file <path...>', 'policy files or directories')
    .option('--json', 'print the summary as JSON')
    .action((opts: { file: string[]; json?: boolean }) => check(io, opts));
  policy
    .command('compile')
    .description("compile one workload's firewall rules")
    .requiredOption('-f, --file <path...>', 'policy files or directories')
    .requiredOption('-w, --workload <name>', 'the workload to compile for')
    .option('--format <format>', `output format: ${BACKENDS.join(', ')}`, 'nft')
    .action((opts: { file: string[]; workload: string; format: string }) => compile(io, opts));
  policy
    .command('diff')
    .description(
      'compare two policies: changed objects and rules, and which peers gain or lose access',
    )
    .requiredOption('-f, --file <path...>', 'the old policy, then the new (give -f twice)')
    .option('--json', 'print the diff as JSON')
    .action((opts: { file: string[]; json?: boolean }) => diff(io, opts));
  registerPolicyGenerate(policy, io);
}
