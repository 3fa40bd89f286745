/**
 * The policy-as-code document schema: several YAML documents per file, each with a `kind`,
 * in the manner of kubectl. The schema turns friendly spellings (`"443/tcp"`,
 * `sources: all`, `app: [shop, pay]`) into the engine's model types.
 */
import { z } from 'zod';
import type { $ZodIssue } from 'zod/v4/core';
import { addressValue, parseAddressEntry } from '../policy/addresses.js';
import {
  ENFORCEMENT_MODES,
  RULE_ACTIONS,
  type Actors,
  type LabelSelector,
  type RuleServices,
  type ServicePort,
  type ServiceRef,
} from '../policy/model.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const name = z.string().regex(NAME, {
  error: (iss) =>
    `${JSON.stringify(iss.input)} is not a name (1-128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit)`,
});
const labelKey = z.string().regex(/^[a-z][a-z0-9_.-]{0,62}$/, {
  error: (iss) =>
    `${JSON.stringify(iss.input)} is not a label key (up to 63 lower-case letters, digits, "_", ".", "-", starting with a letter)`,
});
const labelValue = z.string().min(1, 'a label value may not be empty').max(128);

/** A string that `check` accepts; its error (which quotes the text) is the message. */
const addressText = (check: (text: string) => unknown) =>
  z.string().superRefine((text, ctx) => {
    try {
      check(text);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: e instanceof Error ? e.message : String(e) });
    }
  });
/** An address, a CIDR or a range (IP lists, always-allowed endpoints). */
const addressEntry = addressText(parseAddressEntry);
/** A workload owns single addresses; the kernel sees each of them as a host. */
const workloadAddress = addressText(addressValue);

function portNumber(text: string): number | null {
  if (!/^\d+$/.test(text)) return null;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : null;
}

/** What is wrong with a port or port range as written, or null when it is one. */
function portRangeProblem(value: unknown): string | null {
  const text = String(value).trim();
  const parts = text.split('-');
  // Numbers show as themselves (`70000`, `80-70`), anything else as quoted text.
  const shown =
    typeof value === 'number' || /^\d+(-\d+)?$/.test(text) ? text : JSON.stringify(value);
  if (parts.length === 1)
    return portNumber(text) === null ? `${shown} is not a port (1-65535)` : null;
  const [a = '', b = ''] = parts.map((p) => p.trim());
  if (parts.length > 2 || portNumber(a) === null || portNumber(b) === null) {
    return `${shown} is not a port range (first-last, each 1-65535)`;
  }
  if (Number(a) > Number(b)) return `${shown} is a port range whose first port is after its last`;
  return null;
}

/** `443`, `"443"` or `"8000-8080"`. */
const portRange = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const problem = portRangeProblem(value);
  if (problem !== null) {
    ctx.addIssue({ code: 'custom', message: problem });
    return z.NEVER;
  }
  const [a = '', b] = String(value).trim().split('-');
  const from = Number(a.trim());
  return { from, to: b === undefined ? from : Number(b.trim()) };
});

const icmpType = z.number().refine((n) => Number.isInteger(n) && n >= 0 && n <= 255, {
  error: (iss) => `${String(iss.input)} is not an ICMP type (0-255)`,
});

const transportPort = z.strictObject({
  proto: z.enum(['tcp', 'udp']),
  port: portRange,
  process: z.string().min(1).max(255).optional(),
});
const icmpPort = z.strictObject({ proto: z.enum(['icmp', 'icmpv6']), type: icmpType.optional() });

const SHORT_PORT = /^(\d+(?:-\d+)?)\/(tcp|udp)$/;
const SHORT_ICMP = /^(icmp|icmpv6)(?:\/(\d+))?$/;

/** Parses `443/tcp`, `8000-8080/udp`, `icmp`, `icmpv6/128`; null when it is none of these. */
function shortPort(text: string): { port: ServicePort } | { error: string } | null {
  const p = SHORT_PORT.exec(text);
  if (p) {
    const problem = portRangeProblem(p[1]);
    if (problem !== null) return { error: `${JSON.stringify(text)}: ${problem}` };
    const [a = '', b] = (p[1] ?? '').split('-');
    const from = Number(a);
    return {
      port: {
        proto: p[2] as 'tcp' | 'udp',
        ports: { from, to: b === undefined ? from : Number(b) },
      },
    };
  }
  const i = SHORT_ICMP.exec(text);
  if (i) {
    const type = i[2] === undefined ? undefined : Number(i[2]);
    if (type !== undefined && type > 255)
      return { error: `${JSON.stringify(text)}: ${type} is not an ICMP type (0-255)` };
    return {
      port:
        type === undefined
          ? { proto: i[1] as 'icmp' | 'icmpv6' }
          : { proto: i[1] as 'icmp' | 'icmpv6', icmpType: type },
    };
  }
  return null;
}

const servicePort = z
  .union([z.string(), z.looseObject({ proto: z.unknown() })])
  .transform((value, ctx): ServicePort => {
    if (typeof value === 'string') {
      const parsed = shortPort(value.trim());
      if (parsed && 'port' in parsed) return parsed.port;
      ctx.addIssue({
        code: 'custom',
        message:
          parsed?.error ??
          `${JSON.stringify(value)} is not a port (like "443/tcp", "8000-8080/udp", "icmp/8")`,
      });
      return z.NEVER;
    }
    if (
      value.proto !== undefined &&
      !['tcp', 'udp', 'icmp', 'icmpv6'].includes(value.proto as string)
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['proto'],
        message: `${JSON.stringify(value.proto)} is not a protocol (tcp, udp, icmp, icmpv6)`,
      });
      return z.NEVER;
    }
    const schema = value.proto === 'icmp' || value.proto === 'icmpv6' ? icmpPort : transportPort;
    const result = schema.safeParse(value, { reportInput: true });
    if (!result.success) {
      reportNested(ctx, result.error.issues);
      return z.NEVER;
    }
    const d = result.data;
    if (d.proto === 'icmp' || d.proto === 'icmpv6') {
      return 'type' in d && d.type !== undefined
        ? { proto: d.proto, icmpType: d.type }
        : { proto: d.proto };
    }
    const t = d as z.infer<typeof transportPort>;
    return t.process === undefined
      ? { proto: t.proto, ports: t.port }
      : { proto: t.proto, ports: t.port, process: t.process };
  });

const serviceRef = z.union([z.string(), z.looseObject({})]).transform((value, ctx): ServiceRef => {
  if (typeof value === 'string') {
    const short = shortPort(value.trim());
    if (short && 'port' in short) return { kind: 'inline', port: short.port };
    if (short) {
      ctx.addIssue({ code: 'custom', message: short.error });
      return z.NEVER;
    }
    if (!NAME.test(value)) {
      ctx.addIssue({
        code: 'custom',
        message: `${JSON.stringify(value)} is neither a service name nor a port like "443/tcp"`,
      });
      return z.NEVER;
    }
    return { kind: 'named', name: value };
  }
  const port = servicePort.safeParse(value, { reportInput: true });
  if (!port.success) {
    reportNested(ctx, port.error.issues);
    return z.NEVER;
  }
  return { kind: 'inline', port: port.data };
});

const ruleServices = z
  .union([
    z.literal('all'),
    z.array(serviceRef).min(1, 'list at least one service, or write "all"'),
  ])
  .transform((v): RuleServices => v);

const labelMap = z
  .record(labelKey, z.union([labelValue, z.array(labelValue).min(1, 'list at least one value')]))
  .transform((m) =>
    Object.fromEntries(Object.entries(m).map(([k, v]) => [k, typeof v === 'string' ? [v] : v])),
  );

const labelSelector = z
  .strictObject({ labels: labelMap.optional(), labelGroups: z.array(name).optional() })
  .transform((s): LabelSelector => ({ labels: s.labels ?? {}, labelGroups: s.labelGroups ?? [] }));

const actors = z
  .union([
    z.literal('all'),
    z
      .strictObject({
        allWorkloads: z.boolean().optional(),
        labels: labelMap.optional(),
        labelGroups: z.array(name).optional(),
        workloads: z.array(name).optional(),
        ipLists: z.array(name).optional(),
        userGroups: z.array(name).optional(),
      })
      .refine(
        (a) =>
          a.allWorkloads === true ||
          Object.keys(a.labels ?? {}).length > 0 ||
          [a.labelGroups, a.workloads, a.ipLists, a.userGroups].some(
            (list) => (list?.length ?? 0) > 0,
          ),
        {
          message:
            'names no actors (write "all", or give labels, labelGroups, workloads, ipLists or userGroups)',
          // Only for an otherwise valid side: `{lables: ...}` is an unknown field, not also an empty side.
          when: (payload) => payload.issues.length === 0,
        },
      ),
  ])
  .transform((a): Actors => {
    if (a === 'all')
      return { allWorkloads: true, selector: null, workloads: [], ipLists: [], userGroups: [] };
    const hasSelector =
      (a.labels && Object.keys(a.labels).length > 0) || (a.labelGroups?.length ?? 0) > 0;
    const result: Actors = {
      allWorkloads: a.allWorkloads ?? false,
      selector: hasSelector ? { labels: a.labels ?? {}, labelGroups: a.labelGroups ?? [] } : null,
      workloads: a.workloads ?? [],
      ipLists: a.ipLists ?? [],
      userGroups: a.userGroups ?? [],
    };
    return result;
  });

const rule = z.strictObject({
  name,
  action: z.enum(RULE_ACTIONS).default('allow'),
  sources: actors,
  destinations: actors,
  services: ruleServices,
  extraScope: z.boolean().default(false),
  description: z.string().max(1024).optional(),
});

export const workloadDocument = z.strictObject({
  kind: z.literal('Workload'),
  name,
  addresses: z.array(workloadAddress).min(1, 'a workload needs at least one address'),
  labels: z.record(labelKey, labelValue).default({}),
  mode: z.enum(ENFORCEMENT_MODES).default('visibility'),
  managed: z.boolean().default(true),
  users: z.array(z.string().min(1)).default([]),
});

export const labelGroupDocument = z.strictObject({
  kind: z.literal('LabelGroup'),
  name,
  key: labelKey,
  values: z.array(labelValue).default([]),
  groups: z.array(name).default([]),
});

export const ipListDocument = z.strictObject({
  kind: z.literal('IpList'),
  name,
  include: z.array(addressEntry).min(1, 'an IP list needs at least one address, CIDR or range'),
  exclude: z.array(addressEntry).default([]),
  description: z.string().max(1024).optional(),
});

export const userGroupDocument = z.strictObject({
  kind: z.literal('UserGroup'),
  name,
  members: z.array(z.string().min(1)).default([]),
  description: z.string().max(1024).optional(),
});

export const serviceDocument = z.strictObject({
  kind: z.literal('Service'),
  name,
  ports: z.array(servicePort).min(1, 'a service needs at least one port'),
  description: z.string().max(1024).optional(),
});

export const rulesetDocument = z.strictObject({
  kind: z.literal('Ruleset'),
  name,
  scope: labelSelector.optional(),
  rules: z.array(rule).default([]),
  description: z.string().max(1024).optional(),
});

export const settingsDocument = z.strictObject({
  kind: z.literal('Settings'),
  name: name.default('settings'),
  alwaysAllowed: z
    .array(
      z.strictObject({
        name,
        addresses: z.array(addressEntry).min(1),
        ports: z.array(servicePort).default([]),
        direction: z.enum(['inbound', 'outbound', 'both']).default('outbound'),
      }),
    )
    .default([]),
});

/** The kinds of the policy proper: versioned together, unlike workloads (the estate). */
export const POLICY_KINDS = [
  'LabelGroup',
  'IpList',
  'UserGroup',
  'Service',
  'Ruleset',
  'Settings',
] as const;
export const DOCUMENT_KINDS = ['Workload', ...POLICY_KINDS] as const;

export const policyDocument = z.discriminatedUnion('kind', [
  workloadDocument,
  labelGroupDocument,
  ipListDocument,
  userGroupDocument,
  serviceDocument,
  rulesetDocument,
  settingsDocument,
]);

export type PolicyDocument = z.infer<typeof policyDocument>;

/** A schema problem in a person's terms: where (relative to the parsed value) and what. */
export interface PlainIssue {
  readonly path: PropertyKey[];
  readonly message: string;
  /** The node to point at when it is not the one at `path` (an unknown field's own key). */
  readonly at?: PropertyKey[];
}

/** Re-reports issues of a nested parse from inside a transform, keeping where they point. */
function reportNested(ctx: z.RefinementCtx, issues: readonly $ZodIssue[]): void {
  for (const { path, message, at } of plainIssues(issues)) {
    ctx.addIssue({
      code: 'custom',
      path,
      message,
      ...(at ? { params: { atBeyond: at.slice(path.length) } } : {}),
    });
  }
}

const TYPE_NAMES: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  boolean: 'true or false',
};

function shownInput(input: unknown): string {
  return JSON.stringify(input) ?? String(input);
}

/** What a branch of a union wanted, e.g. `"all"` or `a mapping`. */
function expected(issue: $ZodIssue): string | null {
  if (issue.code === 'invalid_type') return TYPE_NAMES[issue.expected] ?? issue.expected;
  if (issue.code === 'invalid_value')
    return issue.values.map((v) => JSON.stringify(v)).join(' or ');
  return null;
}

/** zod's own wording ("Too small: expected ...") rather than one this schema wrote. */
const GENERIC = /^(Invalid|Too small|Too big|Unrecognized)/;

function messageOf(issue: $ZodIssue): string {
  const input = (issue as { input?: unknown }).input;
  const shown = shownInput(input);
  switch (issue.code) {
    case 'invalid_value':
      return `${shown} is not one of ${issue.values.map((v) => String(v)).join(', ')}`;
    case 'unrecognized_keys':
      return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    case 'invalid_type':
      if (input === undefined)
        return `is required (${TYPE_NAMES[issue.expected] ?? issue.expected})`;
      // YAML reads `10.1`, `2` or `true` as a number or boolean: say how to keep it text.
      if (
        issue.expected === 'string' &&
        (typeof input === 'number' || typeof input === 'boolean')
      ) {
        return `${shown} is not a string (quote it: "${shown}")`;
      }
      return `${shown} is not ${TYPE_NAMES[issue.expected] ?? issue.expected}`;
    case 'too_small':
      if (!GENERIC.test(issue.message)) return issue.message;
      if (issue.origin === 'string') return 'may not be empty';
      if (issue.origin === 'array') return `list at least ${String(issue.minimum)}`;
      return `${shown} is less than ${String(issue.minimum)}`;
    case 'too_big':
      if (!GENERIC.test(issue.message)) return issue.message;
      if (issue.origin === 'string') return `is longer than ${String(issue.maximum)} characters`;
      if (issue.origin === 'array') return `lists more than ${String(issue.maximum)}`;
      return `${shown} is more than ${String(issue.maximum)}`;
    default:
      return issue.message;
  }
}

/**
 * Flattens zod issues into located messages. A union that failed in every branch is
 * reported through the branch that got furthest (the one that did not fail on the value's
 * type), so `services: [{port: 70000}]` says what is wrong with the port rather than that
 * the whole list "is not valid"; when every branch failed on the type, it says which types
 * would do.
 */
export function plainIssues(
  issues: readonly $ZodIssue[],
  prefix: readonly PropertyKey[] = [],
): PlainIssue[] {
  const out: PlainIssue[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'invalid_key') {
      // A record key failed (`labels: {Role: web}`): say so at that key.
      for (const inner of plainIssues(issue.issues, path)) out.push(inner);
      continue;
    }
    if (issue.code === 'unrecognized_keys') {
      out.push({ path, message: messageOf(issue), at: [...path, issue.keys[0]!] });
      continue;
    }
    if (issue.code === 'custom' && Array.isArray(issue.params?.atBeyond)) {
      // Re-reported by reportNested: where it points, below its path.
      out.push({
        path,
        message: messageOf(issue),
        at: [...path, ...(issue.params.atBeyond as PropertyKey[])],
      });
      continue;
    }
    if (issue.code !== 'invalid_union' || issue.errors.length === 0) {
      out.push({ path, message: messageOf(issue) });
      continue;
    }
    const typeMismatch = (branch: readonly $ZodIssue[]): boolean =>
      branch.every((i) => i.path.length === 0 && expected(i) !== null);
    const furthest = issue.errors.find((branch) => !typeMismatch(branch));
    if (furthest) {
      out.push(...plainIssues(furthest, path));
      continue;
    }
    const input = (issue as { input?: unknown }).input;
    const wanted = [
      ...new Set(issue.errors.flatMap((branch) => branch.map(expected)).filter((e) => e !== null)),
    ];
    const list =
      wanted.length > 1
        ? `${wanted.slice(0, -1).join(', ')} or ${wanted.at(-1)!}`
        : (wanted[0] ?? 'valid here');
    out.push({
      path,
      message:
        input === undefined ? `is required (${list})` : `${shownInput(input)} is not ${list}`,
    });
  }
  return out;
}
