/**
 * What agents send and what the agent routes answer: pairing, inventory, heartbeats, policy
 * acknowledgements and flow-summary batches, each checked field by field so a malformed
 * report is a 400 that says where, never a half-stored row.
 */
import { z } from 'zod';
import { canonicalAddress } from '../policy/addresses.js';
import { ENFORCEMENT_MODES } from '../policy/model.js';

/** A workload's name, as in policy files. An agent's hostname becomes its workload's name. */
export const workloadName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, {
  error: (iss) =>
    `${JSON.stringify(iss.input)} is not a workload name (1-128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit)`,
});
export const labelKey = z.string().regex(/^[a-z][a-z0-9_.-]{0,62}$/, {
  error: (iss) =>
    `${JSON.stringify(iss.input)} is not a label key (up to 63 lower-case letters, digits, "_", ".", "-", starting with a letter)`,
});
export const labelValue = z.string().min(1, 'a label value may not be empty').max(128);
export const labels = z.record(labelKey, labelValue);
export const mode = z.enum(ENFORCEMENT_MODES);

/** One IPv4 or IPv6 address, returned in canonical text. */
export const address = z.string().transform((text, ctx) => {
  try {
    return canonicalAddress(text.trim());
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: e instanceof Error ? e.message : String(e) });
    return z.NEVER;
  }
});
/** An interface address: `10.0.0.5` or `10.0.0.5/24` (the prefix length is dropped). */
const interfaceAddress = z.string().transform((text, ctx) => {
  const [host = '', prefix] = text.trim().split('/');
  if (prefix !== undefined && !/^\d{1,3}$/.test(prefix)) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(text)} has a bad prefix length` });
    return z.NEVER;
  }
  try {
    return canonicalAddress(host);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: e instanceof Error ? e.message : String(e) });
    return z.NEVER;
  }
});

const text = (max: number) => z.string().min(1).max(max);
const port = z.number().int().min(0).max(65535);
export const PROTOCOLS = ['tcp', 'udp', 'icmp', 'icmpv6'] as const;

export const inventoryFields = {
  os: text(256).optional(),
  interfaces: z
    .array(z.strictObject({ name: text(64), addresses: z.array(interfaceAddress).max(256) }))
    .max(256)
    .default([]),
  listening: z
    .array(
      z.strictObject({
        port,
        proto: z.enum(['tcp', 'udp']),
        address: z.string().max(64).optional(),
        process: z.string().max(255).optional(),
        pid: z.number().int().min(0).optional(),
        user: z.string().max(255).optional(),
        path: z.string().max(4096).optional(),
      }),
    )
    .max(10_000)
    .default([]),
  users: z.array(text(256)).max(10_000).default([]),
};

export const inventoryBody = z.strictObject({ hostname: workloadName, ...inventoryFields });
export type Inventory = z.infer<typeof inventoryBody>;

export const pairBody = z.strictObject({
  activationCode: z.string().min(1).max(256),
  hostname: workloadName,
  addresses: z.array(address).min(1, 'an agent reports at least one address').max(256),
  ...inventoryFields,
});

export const heartbeatBody = z.strictObject({
  appliedRevision: z.number().int().min(0).optional(),
  appliedVersion: z.number().int().min(0).optional(),
  status: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,31}$/, 'is not a status (a lower-case word, e.g. "ok" or "degraded")')
    .optional(),
});

export const ackBody = z.strictObject({
  revision: z.number().int().min(0),
  policyVersion: z.number().int().min(0),
  result: z.enum(['applied', 'failed']),
  error: z.string().max(4096).optional(),
});

export const MAX_SUMMARIES = 5000;
const CANONICAL_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
/**
 * An ISO 8601 time with an offset, turned into UTC ISO text (how times are stored, so they
 * sort as text); most agents already send exactly that, which is passed through as it is.
 */
const isoTime = z.iso
  .datetime({ offset: true })
  .transform((text) => (CANONICAL_TIME.test(text) ? text : new Date(text).toISOString()));
export const flowSummary = z
  .strictObject({
    src: address,
    dst: address,
    proto: z.enum(PROTOCOLS),
    dport: port.optional(),
    process: z.string().max(255).optional(),
    firstSeen: isoTime,
    lastSeen: isoTime,
    connections: z.number().int().min(0),
    bytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    decision: z.enum(['allowed', 'blocked', 'potentially-blocked']).optional(),
  })
  // Both are canonical UTC text by now, so text order is time order.
  .refine((s) => s.lastSeen >= s.firstSeen, {
    message: 'lastSeen is before firstSeen',
    path: ['lastSeen'],
  });
export type FlowSummary = z.infer<typeof flowSummary>;

export const flowsBody = z.strictObject({
  batchId: z
    .string()
    .regex(
      /^[A-Za-z0-9._:-]{1,128}$/,
      'is not a batch id (1-128 letters, digits, ".", "_", ":" or "-")',
    ),
  summaries: z
    .array(flowSummary)
    .max(MAX_SUMMARIES, `at most ${MAX_SUMMARIES} summaries per batch`),
});

/** The addresses an inventory gives its workload: every interface's, but loopback and link-local. */
export function inventoryAddresses(inventory: Pick<Inventory, 'interfaces'>): string[] {
  const out = new Set<string>();
  for (const i of inventory.interfaces) {
    for (const a of i.addresses) {
      if (
        /^127\./.test(a) ||
        a === '::1' ||
        /^fe[89ab][0-9a-f]?:/i.test(a) ||
        /^169\.254\./.test(a)
      )
        continue;
      out.add(a);
    }
  }
  return [...out];
}

/** An agent found its firewall table changed behind its back (and what it did about it). */
export const tamperBody = z.strictObject({
  detectedAt: isoTime,
  table: z.string().min(1).max(64),
  kind: z.enum(['missing', 'changed']),
  differences: z.array(z.string().min(1).max(512)).min(1).max(50),
  restored: z.boolean(),
  error: z.string().max(4096).optional(),
  revision: z.number().int().min(0).optional(),
  policyVersion: z.number().int().min(0).optional(),
});
export type TamperBody = z.infer<typeof tamperBody>;

/** An agent had to drop flow batches (its spool was full while the control plane was away). */
export const flowsDroppedBody = z
  .strictObject({
    batches: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    summaries: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    firstDroppedAt: isoTime,
    lastDroppedAt: isoTime,
    reason: z.string().min(1).max(512),
  })
  .refine((b) => Date.parse(b.lastDroppedAt) >= Date.parse(b.firstDroppedAt), {
    message: 'lastDroppedAt is before firstDroppedAt',
    path: ['lastDroppedAt'],
  });
export type FlowsDroppedBody = z.infer<typeof flowsDroppedBody>;
