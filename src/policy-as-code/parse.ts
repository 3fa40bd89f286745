/**
 * From YAML text to the policy model, with every problem located by file, line, object
 * and path: `rulesets.yaml:14: Ruleset "shop-prod": rules[3].services[0].port: 70000 is
 * not a port (1-65535)`.
 */
import { isMap, isScalar, LineCounter, parseAllDocuments, type Document } from 'yaml';
import {
  formatIssue,
  PolicyError,
  type PolicyIssue,
  type PolicyObjectKind,
} from '../policy/issues.js';
import type { Policy, PolicySettings } from '../policy/model.js';
import { DUPLICATE_MESSAGE, resolvePolicy, type ResolvedPolicy } from '../policy/resolve.js';
import { DOCUMENT_KINDS, plainIssues, policyDocument, type PolicyDocument } from './schema.js';

export interface SourceFile {
  readonly path: string;
  readonly text: string;
}

/** A problem in policy files, located for a person. */
export interface FileProblem {
  readonly severity: 'error' | 'warning';
  readonly file: string;
  readonly line: number | null;
  readonly object: string | null;
  readonly path: string;
  readonly message: string;
}

export function formatProblem(p: FileProblem): string {
  const where = p.line !== null ? `${p.file}:${p.line}` : p.file;
  const object = p.object ? `${p.object}: ` : '';
  const path = p.path ? `${p.path}: ` : '';
  return `${where}: ${object}${path}${p.message}`;
}

export class PolicyFilesError extends Error {
  constructor(readonly problems: readonly FileProblem[]) {
    const errors = problems.filter((p) => p.severity === 'error');
    super(
      `${errors.length} problem${errors.length === 1 ? '' : 's'} in the policy files:\n` +
        errors.map((p) => `  ${formatProblem(p)}`).join('\n'),
    );
    this.name = 'PolicyFilesError';
  }
}

interface Located {
  readonly doc: Document;
  readonly lines: LineCounter;
  readonly file: string;
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

function parsePath(path: string): (string | number)[] {
  const parts: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) {
    if (m[2] !== undefined) parts.push(Number(m[2]));
    else if (m[1] !== undefined) parts.push(m[1]);
  }
  return parts;
}

/**
 * The line of the deepest YAML node that exists along a path. A mapping's entry is found by
 * its key, so `sources:` is the line that says `sources`, even when its value starts below.
 */
function lineOf(loc: Located, path: readonly PropertyKey[]): number | null {
  const lineAt = (node: unknown): number | null => {
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    return range ? loc.lines.linePos(range[0]).line : null;
  };
  for (let n = path.length; n >= 0; n--) {
    const last = path[n - 1];
    if (typeof last === 'string') {
      const parent = loc.doc.getIn(path.slice(0, n - 1) as unknown[], true);
      if (isMap(parent)) {
        const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === last);
        const line = pair ? lineAt(pair.key) : null;
        if (line !== null) return line;
        continue;
      }
    }
    const line = lineAt(loc.doc.getIn(path.slice(0, n) as unknown[], true));
    if (line !== null) return line;
  }
  return null;
}

interface ParsedDocument {
  readonly value: PolicyDocument;
  readonly loc: Located;
}

const objectLabel = (kind: string, name: string): string => `${kind} "${name}"`;

/** Parses policy files into documents; collects every problem rather than stopping at one. */
function parseDocuments(files: readonly SourceFile[], problems: FileProblem[]): ParsedDocument[] {
  const out: ParsedDocument[] = [];
  for (const file of files) {
    const lines = new LineCounter();
    const docs = parseAllDocuments(file.text, { lineCounter: lines, prettyErrors: false });
    const list = Array.isArray(docs) ? docs : [];
    for (const doc of list) {
      const loc: Located = { doc, lines, file: file.path };
      if (doc.errors.length > 0) {
        for (const e of doc.errors) {
          problems.push({
            severity: 'error',
            file: file.path,
            line: lines.linePos(e.pos[0]).line,
            object: null,
            path: '',
            message: `YAML: ${e.message.split('\n')[0]}`,
          });
        }
        continue;
      }
      const raw: unknown = doc.toJS();
      if (raw === null || raw === undefined) continue; // an empty document (e.g. a trailing ---)
      const kind = (raw as { kind?: unknown }).kind;
      // A Settings document's name is optional; the engine calls it "settings".
      const name =
        (raw as { name?: unknown }).name ?? (kind === 'Settings' ? 'settings' : undefined);
      const object =
        typeof kind === 'string' && typeof name === 'string' ? objectLabel(kind, name) : null;
      if (typeof raw !== 'object' || Array.isArray(raw)) {
        problems.push({
          severity: 'error',
          file: file.path,
          line: lineOf(loc, []),
          object: null,
          path: '',
          message: 'a document must be a mapping with a "kind"',
        });
        continue;
      }
      if (typeof kind !== 'string' || !(DOCUMENT_KINDS as readonly string[]).includes(kind)) {
        problems.push({
          severity: 'error',
          file: file.path,
          line: lineOf(loc, ['kind']),
          object: null,
          path: 'kind',
          message:
            kind === undefined
              ? `is required (one of ${DOCUMENT_KINDS.join(', ')})`
              : `${JSON.stringify(kind)} is not one of ${DOCUMENT_KINDS.join(', ')}`,
        });
        continue;
      }
      const result = policyDocument.safeParse(raw, { reportInput: true });
      if (!result.success) {
        for (const issue of plainIssues(result.error.issues)) {
          problems.push({
            severity: 'error',
            file: file.path,
            line: lineOf(loc, issue.at ?? issue.path),
            object,
            path: formatPath(issue.path),
            message: issue.message,
          });
        }
        continue;
      }
      out.push({ value: result.data, loc });
    }
  }
  return out;
}

/** The policy model from validated documents (files, or the API's stored draft). */
export function policyFromDocuments(values: readonly PolicyDocument[]): Policy {
  const policy = {
    workloads: [] as Policy['workloads'][number][],
    labelGroups: [] as Policy['labelGroups'][number][],
    ipLists: [] as Policy['ipLists'][number][],
    userGroups: [] as Policy['userGroups'][number][],
    services: [] as Policy['services'][number][],
    rulesets: [] as Policy['rulesets'][number][],
    settings: { alwaysAllowed: [] } as PolicySettings,
  };
  for (const v of values) {
    switch (v.kind) {
      case 'Workload':
        policy.workloads.push({
          name: v.name,
          addresses: v.addresses,
          labels: v.labels,
          mode: v.mode,
          managed: v.managed,
          users: v.users,
        });
        break;
      case 'LabelGroup':
        policy.labelGroups.push({ name: v.name, key: v.key, values: v.values, groups: v.groups });
        break;
      case 'IpList':
        policy.ipLists.push({ name: v.name, include: v.include, exclude: v.exclude });
        break;
      case 'UserGroup':
        policy.userGroups.push({ name: v.name, members: v.members });
        break;
      case 'Service':
        policy.services.push({ name: v.name, ports: v.ports });
        break;
      case 'Ruleset':
        policy.rulesets.push({
          name: v.name,
          scope: v.scope ?? null,
          rules: v.rules.map((r) => ({ ...r, description: r.description })),
          description: v.description,
        });
        break;
      case 'Settings':
        policy.settings = { alwaysAllowed: v.alwaysAllowed };
        break;
    }
  }
  return policy;
}

function toPolicy(docs: readonly ParsedDocument[], problems: FileProblem[]): Policy {
  const settings = docs.filter((d) => d.value.kind === 'Settings');
  for (const d of settings.slice(1)) {
    problems.push({
      severity: 'error',
      file: d.loc.file,
      line: lineOf(d.loc, []),
      object: objectLabel('Settings', d.value.name),
      path: '',
      message: `there may be only one Settings document (another is in ${settings[0]!.loc.file})`,
    });
  }
  return policyFromDocuments(docs.map((d) => d.value));
}

/**
 * Finds the document an engine issue is about. A name defined twice is reported once per
 * extra definition, in order; each such report points at its own (second, third...) definition,
 * so a person sees where the duplicate is rather than the original.
 */
function locator(docs: readonly ParsedDocument[]): (issue: PolicyIssue) => FileProblem {
  const duplicatesSeen = new Map<string, number>();
  // Indexed once: an estate may hold many documents and report many issues.
  const byName = new Map<string, ParsedDocument[]>();
  const firstOfKind = new Map<string, ParsedDocument>();
  for (const d of docs) {
    const key = `${d.value.kind}/${d.value.name}`;
    const list = byName.get(key);
    if (list) list.push(d);
    else byName.set(key, [d]);
    if (!firstOfKind.has(d.value.kind)) firstOfKind.set(d.value.kind, d);
  }
  return (issue) => {
    const same = byName.get(`${issue.kind}/${issue.name}`) ?? [];
    let home = same[0] ?? firstOfKind.get(issue.kind);
    if (issue.path === '' && issue.message === DUPLICATE_MESSAGE && same.length > 1) {
      const key = `${issue.kind}/${issue.name}`;
      const n = (duplicatesSeen.get(key) ?? 0) + 1;
      duplicatesSeen.set(key, n);
      home = same[Math.min(n, same.length - 1)];
    }
    if (!home) {
      return {
        severity: issue.severity,
        file: '(policy)',
        line: null,
        object: objectLabel(issue.kind, issue.name),
        path: issue.path,
        message: issue.message,
      };
    }
    return {
      severity: issue.severity,
      file: home.loc.file,
      line: lineOf(home.loc, parsePath(issue.path)),
      object: objectLabel(issue.kind, issue.name),
      path: issue.path,
      message: issue.message,
    };
  };
}

export interface LoadedPolicy {
  readonly policy: Policy;
  readonly resolved: ResolvedPolicy;
  readonly warnings: readonly FileProblem[];
  /** Where each object was defined, for messages: `Kind/name` -> file. */
  readonly origins: ReadonlyMap<string, string>;
}

/** Parses, validates and resolves policy files. Throws PolicyFilesError listing every problem. */
export function parsePolicyFiles(files: readonly SourceFile[]): LoadedPolicy {
  const problems: FileProblem[] = [];
  const docs = parseDocuments(files, problems);
  const policy = toPolicy(docs, problems);
  if (problems.some((p) => p.severity === 'error')) throw new PolicyFilesError(problems);
  let resolved: ResolvedPolicy;
  try {
    resolved = resolvePolicy(policy);
  } catch (e) {
    if (e instanceof PolicyError) throw new PolicyFilesError(e.issues.map(locator(docs)));
    throw e;
  }
  const origins = new Map(docs.map((d) => [`${d.value.kind}/${d.value.name}`, d.loc.file]));
  return { policy, resolved, warnings: resolved.warnings.map(locator(docs)), origins };
}

export { formatIssue };
export type { PolicyObjectKind };
