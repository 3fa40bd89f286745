/**
 * kubectl-like commands against a control plane: apply, get, diff, provision, rollback.
 * Workload documents go to the workloads API (the estate); every other kind to the draft.
 */
import type { Command } from 'commander';
import { parseAllDocuments, stringify } from 'yaml';
import { diffPolicies } from '../../policy/diff.js';
import { PolicyError } from '../../policy/issues.js';
import { resolvePolicy } from '../../policy/resolve.js';
import { readPolicySources } from '../../policy-as-code/load.js';
import { policyFromDocuments } from '../../policy-as-code/parse.js';
import { plainIssues, policyDocument, type PolicyDocument } from '../../policy-as-code/schema.js';
import { ApiClient } from '../client.js';
import { CliError, json, type CliIo } from '../io.js';
import { formatDiff } from './policy.js';

type Doc = Record<string, unknown>;

interface FileDoc {
  readonly doc: Doc;
  /** `file:line`, for messages. */
  readonly where: string;
}

/** Reads YAML documents from files and directories; YAML errors are located and fatal. */
async function readDocuments(paths: readonly string[]): Promise<FileDoc[]> {
  const out: FileDoc[] = [];
  const problems: string[] = [];
  for (const file of await readPolicySources(paths)) {
    for (const d of parseAllDocuments(file.text)) {
      const line = (offset: number) => file.text.slice(0, offset).split('\n').length;
      if (d.errors.length) {
        for (const e of d.errors)
          problems.push(`${file.path}:${line(e.pos[0])}: YAML: ${e.message.split('\n')[0]}`);
        continue;
      }
      const value: unknown = d.toJS();
      if (value === null || value === undefined) continue;
      const where = `${file.path}:${line(d.range[0])}`;
      if (typeof value !== 'object' || Array.isArray(value)) {
        problems.push(`${where}: a document must be a mapping with a "kind"`);
        continue;
      }
      out.push({ doc: value as Doc, where });
    }
  }
  if (problems.length) throw new CliError(problems.join('\n'));
  return out;
}

const KINDS: Record<string, string> = {
  workloads: 'Workload',
  rulesets: 'Ruleset',
  iplists: 'IpList',
  services: 'Service',
  labelgroups: 'LabelGroup',
  usergroups: 'UserGroup',
  settings: 'Settings',
  versions: 'Version',
};

function kindOf(text: string): string {
  const key = text.toLowerCase();
  const kind = KINDS[key] ?? KINDS[`${key}s`] ?? KINDS[key.replace(/-/g, '')];
  if (!kind)
    throw new CliError(`"${text}" is not a kind: use one of ${Object.keys(KINDS).join(', ')}`, 2);
  return kind;
}

interface WorkloadView extends Doc {
  name: string;
  addresses: string[];
  labels: Record<string, string>;
  mode: string;
  managed: boolean;
}

async function allWorkloads(client: ApiClient): Promise<WorkloadView[]> {
  const out: WorkloadView[] = [];
  for (let offset = 0; ;) {
    const page = await client.get<{ items: WorkloadView[]; total: number }>(
      `/workloads?limit=1000&offset=${offset}`,
    );
    out.push(...page.items);
    offset += page.items.length;
    if (page.items.length === 0 || offset >= page.total) return out;
  }
}

/** A workload as the document `apply` takes. */
const workloadDocumentOf = (w: Doc): Doc => {
  const { createdAt: _c, updatedAt: _u, ...doc } = w;
  return doc;
};

function toYaml(docs: readonly Doc[]): string {
  return docs.map((d) => stringify(d, { lineWidth: 0 })).join('---\n');
}

function table(rows: readonly string[][]): string {
  if (rows.length <= 1) return 'no resources';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const labelText = (labels: unknown) =>
  Object.entries((labels ?? {}) as Record<string, unknown>)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('|') : String(v)}`)
    .join(',');

function summary(doc: Doc): string {
  switch (doc.kind) {
    case 'Ruleset': {
      const scope = (doc.scope ?? {}) as { labels?: unknown; labelGroups?: string[] };
      const s = [labelText(scope.labels), ...(scope.labelGroups ?? [])].filter(Boolean).join(',');
      return `scope: ${s || '(whole estate)'}; ${((doc.rules as unknown[]) ?? []).length} rules`;
    }
    case 'IpList':
      return ((doc.include as string[]) ?? []).join(', ');
    case 'Service':
      return ((doc.ports as unknown[]) ?? [])
        .map((p) => (typeof p === 'string' ? p : JSON.stringify(p)))
        .join(', ');
    case 'LabelGroup':
      return `${String(doc.key)}: ${((doc.values as string[]) ?? []).join(', ')}`;
    case 'UserGroup':
      return ((doc.members as string[]) ?? []).join(', ');
    case 'Settings':
      return `${((doc.alwaysAllowed as unknown[]) ?? []).length} always-allowed endpoints`;
    default:
      return '';
  }
}

interface VersionView {
  version: number;
  message: string;
  createdAt: string;
  createdBy: string;
  restores: number | null;
  active: boolean;
}

interface ApplyResult {
  kind: string;
  name: string;
  action: string;
}

async function apply(io: CliIo, opts: { file: string[] }): Promise<void> {
  const docs = await readDocuments(opts.file);
  const workloads = docs.filter((d) => d.doc.kind === 'Workload').map((d) => d.doc);
  const others = docs.filter((d) => d.doc.kind !== 'Workload').map((d) => d.doc);
  const client = new ApiClient();
  const results: ApplyResult[] = [];
  // The estate first: rules may name workloads.
  if (workloads.length) {
    results.push(
      ...(await client.post<{ results: ApplyResult[] }>('/workloads/apply', { workloads })).results,
    );
  }
  if (others.length) {
    results.push(
      ...(
        await client.post<{ results: ApplyResult[] }>('/policy/draft/apply', { documents: others })
      ).results,
    );
  }
  for (const r of results) io.out(`${r.kind}/${r.name} ${r.action}`);
  const counts = ['created', 'changed', 'unchanged']
    .map((a) => `${results.filter((r) => r.action === a).length} ${a}`)
    .join(', ');
  io.out(`applied ${results.length} documents: ${counts}`);
}

async function get(
  io: CliIo,
  kindText: string,
  name: string | undefined,
  opts: { output?: string },
): Promise<void> {
  const output = opts.output ?? 'table';
  if (!['table', 'yaml', 'json'].includes(output))
    throw new CliError(`-o: "${output}" is not one of yaml, json`, 2);
  const kind = kindOf(kindText);
  const client = new ApiClient();
  const enc = encodeURIComponent;

  if (kind === 'Version') {
    if (name !== undefined) {
      if (!/^\d+$/.test(name)) throw new CliError(`"${name}" is not a version number`, 2);
      const v = await client.get<VersionView & { documents: Doc[] }>(`/policy/versions/${name}`);
      if (output === 'json') io.out(json(v));
      else if (output === 'yaml') io.out(toYaml(v.documents));
      else
        io.out(
          `version ${String(v.version)}${v.active ? ' (active)' : ''}: ${String(v.message)}\n` +
            `created ${String(v.createdAt)} by ${String(v.createdBy)}` +
            (v.restores ? `, restores version ${String(v.restores)}` : '') +
            `\n${v.documents.length} documents`,
        );
      return;
    }
    const list = await client.get<{ active: number | null; items: VersionView[] }>(
      '/policy/versions',
    );
    if (output === 'json') io.out(json(list));
    else if (output === 'yaml') io.out(stringify(list));
    else
      io.out(
        table([
          ['VERSION', 'ACTIVE', 'CREATED', 'BY', 'MESSAGE'],
          ...list.items.map((v) => [
            String(v.version),
            v.active ? '*' : '',
            String(v.createdAt),
            String(v.createdBy),
            `${String(v.message)}${v.restores ? ` (restores ${String(v.restores)})` : ''}`,
          ]),
        ]),
      );
    return;
  }

  let docs: Doc[];
  if (kind === 'Workload') {
    docs =
      name !== undefined
        ? [await client.get<WorkloadView>(`/workloads/${enc(name)}`)]
        : await allWorkloads(client);
    if (output !== 'json') docs = docs.map(workloadDocumentOf);
  } else if (name !== undefined) {
    docs = [await client.get<Doc>(`/policy/draft/${kind}/${enc(name)}`)];
  } else {
    docs = (await client.get<{ items: Doc[] }>(`/policy/draft?kind=${kind}`)).items;
  }
  if (output === 'json') io.out(json(name !== undefined ? docs[0] : docs));
  else if (output === 'yaml') io.out(docs.length ? toYaml(docs) : '');
  else if (kind === 'Workload')
    io.out(
      table([
        ['NAME', 'MODE', 'MANAGED', 'ADDRESSES', 'LABELS'],
        ...(docs as WorkloadView[]).map((w) => [
          w.name,
          w.mode,
          w.managed ? 'yes' : 'no',
          w.addresses.join(','),
          labelText(w.labels),
        ]),
      ]),
    );
  else io.out(table([['NAME', 'SUMMARY'], ...docs.map((d) => [String(d.name), summary(d)])]));
}

function parseLocally(docs: readonly FileDoc[]): PolicyDocument[] {
  const problems: string[] = [];
  const out: PolicyDocument[] = [];
  for (const d of docs) {
    const r = policyDocument.safeParse(d.doc, { reportInput: true });
    if (r.success) out.push(r.data);
    else
      for (const i of plainIssues(r.error.issues))
        problems.push(`${d.where}: ${i.path.map(String).join('.') || '(document)'}: ${i.message}`);
  }
  if (problems.length) throw new CliError(problems.join('\n'));
  return out;
}

function resolveOrExplain(what: string, values: readonly PolicyDocument[]) {
  try {
    return resolvePolicy(policyFromDocuments(values));
  } catch (e) {
    if (e instanceof PolicyError) throw new CliError(`${what}: ${e.message}`);
    throw e;
  }
}

async function diff(io: CliIo, opts: { file: string[]; json?: boolean }): Promise<void> {
  const files = parseLocally(await readDocuments(opts.file));
  const client = new ApiClient();
  const draft = (await client.get<{ items: Doc[] }>('/policy/draft')).items;
  const workloads = (await allWorkloads(client)).map(workloadDocumentOf);
  const current = parseLocally([...workloads, ...draft].map((doc) => ({ doc, where: 'server' })));
  const key = (d: PolicyDocument) => `${d.kind}/${d.name}`;
  const merged = new Map(current.map((d) => [key(d), d]));
  for (const d of files) merged.set(key(d), d);
  const before = resolveOrExplain('the draft on the server', current);
  const after = resolveOrExplain('the draft with the files applied', [...merged.values()]);
  const d = diffPolicies(before, after);
  io.out(opts.json ? json(d) : formatDiff(d));
}

interface Preview {
  activeVersion: number | null;
  changes: boolean;
  diff: {
    objects: Parameters<typeof formatDiff>[0]['objects'];
    rules: Parameters<typeof formatDiff>[0]['rules'];
    access: Parameters<typeof formatDiff>[0]['access'];
    accessTotal: number;
    accessTruncated: boolean;
    flowsCompared: number;
  };
  workloads: string[];
}

async function provision(
  io: CliIo,
  opts: { message?: string; dryRun?: boolean; json?: boolean },
): Promise<void> {
  const client = new ApiClient();
  if (opts.dryRun) {
    const p = await client.get<Preview>('/policy/provision/preview');
    if (opts.json) {
      io.out(json(p));
      return;
    }
    io.out(
      `against ${p.activeVersion ? `active version ${p.activeVersion}` : 'no active version'}:`,
    );
    io.out(formatDiff(p.diff));
    if (p.diff.accessTruncated)
      io.out(`(${p.diff.accessTotal - p.diff.access.length} more access changes not shown)`);
    io.out(
      p.workloads.length
        ? `workloads whose policy would change (${p.workloads.length}): ${p.workloads.join(', ')}`
        : 'no workload would change',
    );
    return;
  }
  if (!opts.message) throw new CliError('provision needs -m MESSAGE saying what changes', 2);
  const r = await client.post<{ version: number; workloadsChanged: string[] }>(
    '/policy/provision',
    { message: opts.message },
  );
  io.out(
    opts.json
      ? json(r)
      : `provisioned version ${r.version}; ${r.workloadsChanged.length} workloads' policy changed`,
  );
}

async function rollback(
  io: CliIo,
  version: string,
  opts: { message?: string; json?: boolean },
): Promise<void> {
  if (!/^\d+$/.test(version)) throw new CliError(`"${version}" is not a version number`, 2);
  const r = await new ApiClient().post<{ version: number; workloadsChanged: string[] }>(
    '/policy/rollback',
    { version: Number(version), ...(opts.message ? { message: opts.message } : {}) },
  );
  io.out(
    opts.json
      ? json(r)
      : `rolled back to version ${version} as version ${r.version}; the draft is reset to it; ${r.workloadsChanged.length} workloads' policy changed`,
  );
}

export function registerResources(program: Command, io: CliIo): void {
  const remote = 'talks to the control plane at BULKHEAD_URL with BULKHEAD_TOKEN';
  program
    .command('apply')
    .description(`create or replace workloads and draft policy objects from files (${remote})`)
    .requiredOption('-f, --file <path...>', 'policy files or directories')
    .action((opts: { file: string[] }) => apply(io, opts));
  program
    .command('get')
    .description(
      `show resources: ${Object.keys(KINDS).join(', ')}; -o yaml gives what apply takes (${remote})`,
    )
    .argument('<kind>', Object.keys(KINDS).join(', '))
    .argument('[name]', 'one resource (a number for versions)')
    .option('-o, --output <format>', 'yaml or json (default: a table)')
    .action((kind: string, name: string | undefined, opts: { output?: string }) =>
      get(io, kind, name, opts),
    );
  program
    .command('diff')
    .description(`compare the draft on the server with the draft after applying files (${remote})`)
    .requiredOption('-f, --file <path...>', 'policy files or directories')
    .option('--json', 'print the diff as JSON')
    .action((opts: { file: string[]; json?: boolean }) => diff(io, opts));
  program
    .command('provision')
    .description(`make the draft the next active policy version (${remote})`)
    .option('-m, --message <text>', 'what this version changes')
    .option('--dry-run', 'only show the diff and the workloads whose policy would change')
    .option('--json', 'print the result as JSON')
    .action((opts: { message?: string; dryRun?: boolean; json?: boolean }) => provision(io, opts));
  program
    .command('rollback')
    .description(
      `provision an earlier version's content as a new version, and reset the draft to it (${remote})`,
    )
    .argument('<version>', 'the version to restore')
    .option('-m, --message <text>', 'the new version\'s message (default: "rollback to version N")')
    .option('--json', 'print the result as JSON')
    .action((version: string, opts: { message?: string; json?: boolean }) =>
      rollback(io, version, opts),
    );
}
