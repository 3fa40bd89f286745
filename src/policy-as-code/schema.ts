/**
 * The policy-as-code document schema: several YAML documents per file, each with a `kind`,
 * in the manner of kubectl. The schema turns friendly spellings (`"443/tcp"`,
 * `sources: all`, `app: [shop, pay]`) into the engine's model types.
 */
import { z } from 'zod';
import { isAddressEntry } from '../policy/addresses.js';
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
const name = z
  .string()
  .regex(NAME, 'must be 1-128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit');
const labelKey = z.string().regex(/^[a-z][a-z0-9_.-]{0,62}$/, 'is not a label key (lower-case letters, digits, "_", ".", "-")');
const labelValue = z.string().min(1, 'a label value may not be empty').max(128);

const addressEntry = z
  .string()
  .refine(isAddressEntry, { error: (iss) => `${JSON.stringify(iss.input)} is not an IP address, CIDR or range` });

function portNumber(text: string): number | null {
  if (!/^\d+$/.test(text)) return null;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : null;
}

/** `443`, `"443"` or `"8000-8080"`. */
const portRange = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const text = String(value).trim();
  const [a, b, extra] = text.split('-');
  const from = a === undefined ? null : portNumber(a.trim());
  const to = b === undefined ? from : portNumber(b.trim());
  if (extra !== undefined || from === null || to === null) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)} is not a port (1-65535) or port range (first-last)` });
    return z.NEVER;
  }
  if (from > to) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)} is a port range whose first port is after its last` });
    return z.NEVER;
  }
  return { from, to };
});

const icmpType = z.number().int().min(0, 'is not an ICMP type (0-255)').max(255, 'is not an ICMP type (0-255)');

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
    const range = portRange.safeParse(p[1]);
    if (!range.success) return { error: `${JSON.stringify(text)}: ${range.error.issues[0]?.message ?? 'bad port'}` };
    return { port: { proto: p[2] as 'tcp' | 'udp', ports: range.data } };
  }
  const i = SHORT_ICMP.exec(text);
  if (i) {
    const type = i[2] === undefined ? undefined : Number(i[2]);
    if (type !== undefined && type > 255) return { error: `${JSON.stringify(text)}: ${type} is not an ICMP type (0-255)` };
    return { port: type === undefined ? { proto: i[1] as 'icmp' | 'icmpv6' } : { proto: i[1] as 'icmp' | 'icmpv6', icmpType: type } };
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
        message: parsed?.error ?? `${JSON.stringify(value)} is not a port (like "443/tcp", "8000-8080/udp", "icmp/8")`,
      });
      return z.NEVER;
    }
    const schema = value.proto === 'icmp' || value.proto === 'icmpv6' ? icmpPort : transportPort;
    const result = schema.safeParse(value);
    if (!result.success) {
      for (const issue of result.error.issues) ctx.addIssue({ ...issue, code: 'custom', path: issue.path } as never);
      return z.NEVER;
    }
    const d = result.data;
    if (d.proto === 'icmp' || d.proto === 'icmpv6') {
      return 'type' in d && d.type !== undefined ? { proto: d.proto, icmpType: d.type } : { proto: d.proto };
    }
    const t = d as z.infer<typeof transportPort>;
    return t.process === undefined ? { proto: t.proto, ports: t.port } : { proto: t.proto, ports: t.port, process: t.process };
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
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)} is neither a service name nor a port like "443/tcp"` });
      return z.NEVER;
    }
    return { kind: 'named', name: value };
  }
  const port = servicePort.safeParse(value);
  if (!port.success) {
    for (const issue of port.error.issues) ctx.addIssue({ ...issue, code: 'custom' } as never);
    return z.NEVER;
  }
  return { kind: 'inline', port: port.data };
});

const ruleServices = z.union([z.literal('all'), z.array(serviceRef).min(1, 'list at least one service, or write "all"')]).transform(
  (v): RuleServices => v,
);

const labelMap = z
  .record(labelKey, z.union([labelValue, z.array(labelValue).min(1, 'list at least one value')]))
  .transform((m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, typeof v === 'string' ? [v] : v])));

const labelSelector = z
  .strictObject({ labels: labelMap.optional(), labelGroups: z.array(name).optional() })
  .transform((s): LabelSelector => ({ labels: s.labels ?? {}, labelGroups: s.labelGroups ?? [] }));

const actors = z
  .union([
    z.literal('all'),
    z.strictObject({
      allWorkloads: z.boolean().optional(),
      labels: labelMap.optional(),
      labelGroups: z.array(name).optional(),
      workloads: z.array(name).optional(),
      ipLists: z.array(name).optional(),
      userGroups: z.array(name).optional(),
    }),
  ])
  .transform((a, ctx): Actors => {
    if (a === 'all') return { allWorkloads: true, selector: null, workloads: [], ipLists: [], userGroups: [] };
    const hasSelector = (a.labels && Object.keys(a.labels).length > 0) || (a.labelGroups?.length ?? 0) > 0;
    const result: Actors = {
      allWorkloads: a.allWorkloads ?? false,
      selector: hasSelector ? { labels: a.labels ?? {}, labelGroups: a.labelGroups ?? [] } : null,
      workloads: a.workloads ?? [],
      ipLists: a.ipLists ?? [],
      userGroups: a.userGroups ?? [],
    };
    if (!result.allWorkloads && !result.selector && !result.workloads.length && !result.ipLists.length && !result.userGroups.length) {
      ctx.addIssue({ code: 'custom', message: 'names no actors (write "all", or give labels, labelGroups, workloads, ipLists or userGroups)' });
    }
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
  addresses: z.array(addressEntry).min(1, 'a workload needs at least one address'),
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

export const DOCUMENT_KINDS = ['Workload', 'LabelGroup', 'IpList', 'UserGroup', 'Service', 'Ruleset', 'Settings'] as const;

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
