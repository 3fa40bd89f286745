/**
 * From YAML text to the policy model, with every problem located by file, line, object
 * and path: `rulesets.yaml:14: Ruleset "shop-prod": rules[3].services[0].port: 70000 is
 * not a port (1-65535)`.
 */
import { LineCounter, parseAllDocuments, type Document } from 'yaml';
import type { $ZodIssue } from 'zod/v4/core';
import { formatIssue, PolicyError, type PolicyIssue, type PolicyObjectKind } from '../policy/issues.js';
import type { Policy, PolicySettings } from '../policy/model.js';
import { resolvePolicy, type ResolvedPolicy } from '../policy/resolve.js';
import { DOCUMENT_KINDS, policyDocument, type PolicyDocument } from './schema.js';

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

/** The line of the deepest YAML node that exists along a path. */
function lineOf(loc: Located, path: readonly PropertyKey[]): number | null {
  for (let n = path.length; n >= 0; n--) {
    const node = loc.doc.getIn(path.slice(0, n) as unknown[], true) as { range?: [number, number, number] } | undefined;
    if (node && typeof node === 'object' && node.range) return loc.lines.linePos(node.range[0]).line;
  }
  return null;
}

function zodMessage(issue: $ZodIssue): string {
  const input = (issue as { input?: unknown }).input;
  const shown = input === undefined ? 'nothing' : JSON.stringify(input);
  switch (issue.code) {
    case 'invalid_value':
      return `${shown} is not one of ${issue.values.map((v) => String(v)).join(', ')}`;
    case 'unrecognized_keys':
      return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    case 'invalid_type':
      return input === undefined ? `is required (${issue.expected})` : `${shown} is not a ${issue.expected}`;
    case 'invalid_union':
      return `${shown} is not valid here`;
    default:
      return issue.message;
  }
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
      const name = (raw as { name?: unknown }).name;
      const object = typeof kind === 'string' && typeof name === 'string' ? objectLabel(kind, name) : null;
      if (typeof raw !== 'object' || Array.isArray(raw)) {
        problems.push({ severity: 'error', file: file.path, line: lineOf(loc, []), object: null, path: '', message: 'a document must be a mapping with a "kind"' });
        continue;
      }
      if (typeof kind !== 'string' || !(DOCUMENT_KINDS as readonly string[]).includes(kind)) {
        problems.push({
          severity: 'error',
          file: file.path,
          line: lineOf(loc, ['kind']),
          object: null,
          path: 'kind',
          message: `${JSON.stringify(kind ?? null)} is not one of ${DOCUMENT_KINDS.join(', ')}`,
        });
        continue;
      }
      const result = policyDocument.safeParse(raw, { reportInput: true });
      if (!result.success) {
        for (const issue of result.error.issues) {
          problems.push({
            severity: 'error',
            file: file.path,
            line: lineOf(loc, issue.path),
            object,
            path: formatPath(issue.path),
            message: zodMessage(issue),
          });
        }
        continue;
      }
      out.push({ value: result.data, loc });
    }
  }
  return out;
}

function toPolicy(docs: readonly ParsedDocument[], problems: FileProblem[]): Policy {
  const policy = {
    workloads: [] as Policy['workloads'][number][],
    labelGroups: [] as Policy['labelGroups'][number][],
    ipLists: [] as Policy['ipLists'][number][],
    userGroups: [] as Policy['userGroups'][number][],
    services: [] as Policy['services'][number][],
    rulesets: [] as Policy['rulesets'][number][],
    settings: { alwaysAllowed: [] } as PolicySettings,
  };
  let settingsFrom: ParsedDocument | null = null;
  for (const d of docs) {
    const v = d.value;
    switch (v.kind) {
      case 'Workload':
        policy.workloads.push({ name: v.name, addresses: v.addresses, labels: v.labels, mode: v.mode, managed: v.managed, users: v.users });
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
        if (settingsFrom) {
          problems.push({
            severity: 'error',
            file: d.loc.file,
            line: lineOf(d.loc, []),
            object: objectLabel('Settings', v.name),
            path: '',
            message: `there may be only one Settings document (another is in ${settingsFrom.loc.file})`,
          });
        }
        settingsFrom = d;
        policy.settings = { alwaysAllowed: v.alwaysAllowed };
        break;
    }
  }
  return policy;
}

function locate(issue: PolicyIssue, docs: readonly ParsedDocument[]): FileProblem {
  const home = docs.find((d) => d.value.kind === issue.kind && d.value.name === issue.name) ??
    docs.find((d) => d.value.kind === issue.kind);
  if (!home) {
    return { severity: issue.severity, file: '(policy)', line: null, object: objectLabel(issue.kind, issue.name), path: issue.path, message: issue.message };
  }
  return {
    severity: issue.severity,
    file: home.loc.file,
    line: lineOf(home.loc, parsePath(issue.path)),
    object: objectLabel(issue.kind, issue.name),
    path: issue.path,
    message: issue.message,
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
    if (e instanceof PolicyError) throw new PolicyFilesError(e.issues.map((i) => locate(i, docs)));
    throw e;
  }
  const origins = new Map(docs.map((d) => [`${d.value.kind}/${d.value.name}`, d.loc.file]));
  return { policy, resolved, warnings: resolved.warnings.map((w) => locate(w, docs)), origins };
}

export { formatIssue };
export type { PolicyObjectKind };
