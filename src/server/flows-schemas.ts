/**
 * The flow API's query strings and answers. Every filter parameter is read by the same pure
 * parsers the CLI uses (src/analysis/flows/filter-text.ts), so a bad value is a 400 naming
 * the parameter and saying what is wrong (`query.port: "70000/tcp" is not a port (1-65535)`),
 * and the answers are described here so they appear in /api/v1/openapi.json.
 */
import { FLOW_IMPORT_FORMATS } from '../importers/flows/formats.js';
import { z } from 'zod';
import {
  DEFAULT_SORT,
  FilterTextError,
  parseDecisions,
  parseDuration,
  parseEndFilter,
  parseGrouping,
  parsePortFilter,
  parseSort,
  parseTime,
} from '../analysis/flows/filter-text.js';
import {
  RESOLUTIONS,
  type FlowFilter,
  type MapQuery,
  type WindowRequest,
} from '../analysis/flows/model.js';
import { DECISIONS } from '../policy/decide.js';
import { PROTOCOLS } from './agent-schemas.js';
import { errors } from './errors.js';

/** How many values one repeatable parameter may carry. */
export const MAX_REPEATS = 100;
export const FLOW_PAGE_MAX = 1000;
export const DEFAULT_SINCE = '24h';

type Ctx = z.core.$RefinementCtx;

/** Runs a text parser, turning its error into an issue at the parameter (and `failed`). */
const failed = Symbol('failed');
function parsed<T>(parse: (text: string) => T, text: string, ctx: Ctx): T | typeof failed {
  try {
    return parse(text);
  } catch (e) {
    if (!(e instanceof FilterTextError)) throw e;
    ctx.addIssue({ code: 'custom', message: e.message, input: text });
    return failed;
  }
}

const textOrList = z.union([z.string().max(1024), z.array(z.string().max(1024))]);

/** A parameter that may be given more than once (`src=a&src=b`); each value read by `parse`. */
function repeated<T>(parse: (text: string) => T, splitCommas = false) {
  return textOrList.optional().transform((v, ctx): T[] | undefined => {
    if (v === undefined) return undefined;
    let texts = typeof v === 'string' ? [v] : v;
    if (splitCommas) texts = texts.flatMap((t) => t.split(',')).filter((t) => t.trim() !== '');
    if (texts.length > MAX_REPEATS) {
      ctx.addIssue({ code: 'custom', message: `at most ${MAX_REPEATS} values` });
      return z.NEVER;
    }
    const out: T[] = [];
    for (const t of texts) {
      const r = parsed(parse, t, ctx);
      if (r === failed) return z.NEVER;
      out.push(r);
    }
    return out;
  });
}

/** A parameter given once, read by `parse`. */
function single<T>(parse: (text: string) => T) {
  return z
    .string()
    .max(1024)
    .optional()
    .transform((v, ctx): T | undefined => {
      if (v === undefined) return undefined;
      const r = parsed(parse, v, ctx);
      return r === failed ? z.NEVER : r;
    });
}

const processName = (text: string): string => {
  const t = text.trim();
  if (t === '' || t.length > 255)
    throw new FilterTextError(`${JSON.stringify(text)} is not a process name`);
  return t;
};

/** The filter parameters every flow question takes. */
export const filterParams = {
  since: z
    .string()
    .max(16)
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return undefined;
      return parsed(parseDuration, v, ctx) === failed ? z.NEVER : v.trim();
    }),
  from: single(parseTime),
  to: single(parseTime),
  src: repeated(parseEndFilter),
  dst: repeated(parseEndFilter),
  any: repeated(parseEndFilter),
  port: repeated(parsePortFilter, true),
  process: repeated(processName),
  decision: repeated(parseDecisions).transform((lists) =>
    lists === undefined ? undefined : [...new Set(lists.flat())],
  ),
  policy: z.enum(['active', 'draft']).optional(),
};

type FilterParams = z.output<z.ZodObject<typeof filterParams>>;

/** The window asked for: `since`, or `from` (and `to`), never both; 24 hours by default. */
function windowOf(q: FilterParams): WindowRequest {
  if (q.since !== undefined && (q.from !== undefined || q.to !== undefined))
    throw errors.validation([
      { path: 'query.since', message: 'give either since or from/to, not both' },
    ]);
  if (q.to !== undefined && q.from === undefined)
    throw errors.validation([{ path: 'query.to', message: 'to needs from' }]);
  if (q.from !== undefined) {
    if (q.to === undefined) return { from: q.from };
    if (q.to <= q.from)
      throw errors.validation([
        { path: 'query.to', message: `${q.to} is not after from (${q.from})` },
      ]);
    return { from: q.from, to: q.to };
  }
  return { since: q.since ?? DEFAULT_SINCE };
}

/** The FlowFilter a validated query string asks for. */
export function flowFilterOf(q: FilterParams): FlowFilter {
  return {
    window: windowOf(q),
    ...(q.src ? { source: q.src } : {}),
    ...(q.dst ? { destination: q.dst } : {}),
    ...(q.any ? { either: q.any } : {}),
    ...(q.port ? { ports: q.port } : {}),
    ...(q.process ? { processes: q.process } : {}),
    ...(q.decision ? { decisions: q.decision } : {}),
    policy: q.policy ?? 'active',
  };
}

export const mapQuery = z.strictObject({
  ...filterParams,
  groupBy: single(parseGrouping),
  expand: repeated((t) => {
    const id = t.trim();
    if (!/^[gwa]:./.test(id) || id.length > 1024)
      throw new FilterTextError(
        `${JSON.stringify(t)} is not a map node id (e.g. "g:app=shop;env=prod")`,
      );
    return id;
  }),
  expandBy: single(parseGrouping),
});

export function mapQueryOf(q: z.output<typeof mapQuery>): MapQuery {
  const { groupBy, expand, expandBy, ...filters } = q;
  return {
    ...flowFilterOf(filters),
    groupBy: groupBy ?? ['app', 'env'],
    ...(expand ? { expand } : {}),
    expandBy: expandBy ?? ['role'],
  };
}

const sortParam = single(parseSort).transform((s) => s ?? DEFAULT_SORT);

export const flowsQuery = z.strictObject({
  ...filterParams,
  sort: sortParam,
  limit: z.coerce.number().int().min(1).max(FLOW_PAGE_MAX).default(100),
  cursor: z.string().min(1).max(1024).optional(),
});

export const EXPORT_FORMATS = ['csv', 'json'] as const;
export const exportQuery = z.strictObject({
  ...filterParams,
  sort: sortParam,
  format: z.enum(EXPORT_FORMATS).default('csv'),
});

export const timeseriesQuery = z.strictObject({
  ...filterParams,
  resolution: z.enum(RESOLUTIONS).optional(),
});

export const importQuery = z.strictObject({ format: z.enum(FLOW_IMPORT_FORMATS) });

/** Drops the non-filter parameters before reading the filter. */
export function filterPart<T extends FilterParams>(q: T): FilterParams {
  const { since, from, to, src, dst, any, port, process, decision, policy } = q;
  return { since, from, to, src, dst, any, port, process, decision, policy };
}

// ------------------------------------------------------------------ answers

/** Answers are built from readonly model types. */
const list = <T extends z.ZodType>(item: T) => z.array(item).readonly();
const decision = z.enum(DECISIONS);
const protocol = z.enum(PROTOCOLS);
const decisionCounts = z.object({
  allowed: z.number(),
  'potentially-blocked': z.number(),
  blocked: z.number(),
});

export const flowWindowView = z.object({
  from: z.string(),
  to: z.string(),
  resolution: z.enum(RESOLUTIONS),
});

export const mapResultView = z.object({
  window: flowWindowView,
  policy: z.enum(['active', 'draft']),
  groupBy: list(z.string()),
  nodes: list(
    z.object({
      id: z.string(),
      kind: z.enum(['group', 'workload', 'addresses']),
      label: z.string(),
      labels: z.record(z.string(), z.string()).readonly(),
      workloads: z.number(),
      parent: z.string().optional(),
      mode: z.string().optional(),
    }),
  ),
  edges: list(
    z.object({
      id: z.string(),
      source: z.string(),
      target: z.string(),
      connections: z.number(),
      bytes: z.number(),
      firstSeen: z.string(),
      lastSeen: z.string(),
      decision,
      byDecision: decisionCounts,
      services: list(
        z.object({
          proto: protocol,
          port: z.number().nullable(),
          process: z.string().nullable(),
          connections: z.number(),
          decision,
        }),
      ),
      flows: z.number(),
    }),
  ),
});

const endView = z.union([
  z.object({ workload: z.string(), labels: z.record(z.string(), z.string()).readonly() }),
  z.object({ address: z.string(), group: z.string().nullable() }),
]);

export const flowRowView = z.object({
  id: z.number(),
  source: endView,
  destination: endView,
  proto: protocol,
  port: z.number().nullable(),
  process: z.string().nullable(),
  connections: z.number(),
  blocked: z.number().describe('Of connections, the attempts an enforcing agent reported blocked'),
  bytes: z.number(),
  firstSeen: z.string(),
  lastSeen: z.string(),
  decision,
  decidedBy: z.string(),
  draftDecision: decision,
  draftDecidedBy: z.string(),
});

export const flowPageView = z.object({
  window: flowWindowView,
  items: list(flowRowView),
  nextCursor: z.string().nullable(),
  total: z.number(),
});

export const timeSeriesView = z.object({
  window: flowWindowView,
  points: list(
    z.object({
      t: z.string(),
      connections: z.number(),
      bytes: z.number(),
      byDecision: decisionCounts,
    }),
  ),
});

export const flowStoreStatusView = z.object({
  rolledUpTo: z.number(),
  pendingSummaries: z.number(),
  edges: z.number(),
  decisionsCurrent: z.boolean(),
  retention: z.object({ minute: z.number(), hour: z.number(), day: z.number() }),
  /** Why the last roll-up or re-decision failed (it is retried). */
  lastError: z.string().optional(),
});

export const importResultView = z.object({
  batchId: z.string(),
  accepted: z.number(),
  /** Lines read but not imported (a protocol the flow store does not keep, e.g. GRE). */
  skipped: z.number(),
});
