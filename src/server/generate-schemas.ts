/**
 * The bodies and answers of policy generation and simulation (issue 6). Scope, granularity
 * and window are read here, so a bad one is a 400 naming the field (`body.scope: "app" is not
 * key=value`), and the answers are described so they appear in /api/v1/openapi.json. A flow
 * file to simulate is read by the flow importers, which name the bad line and field.
 */
import { z } from 'zod';
import { parseDuration } from '../analysis/flows/window.js';
import { DECISIONS } from '../policy/decide.js';
import { GenerationError, GRANULARITIES, parseScope } from '../policy/generate/index.js';
import type { LabelSelector } from '../policy/model.js';
import { FLOW_IMPORT_FORMATS } from '../importers/flows/formats.js';
import { flowRowView, flowWindowView, importQuery } from './flows-schemas.js';

/** Generation and simulation look back 30 days unless told otherwise. */
export const DEFAULT_GENERATE_SINCE = '30d';

const since = z
  .string()
  .max(16)
  .default(DEFAULT_GENERATE_SINCE)
  .refine((v) => parseDuration(v) !== null, {
    error: (iss) => `${JSON.stringify(iss.input)} is not a duration (e.g. 24h, 7d, 30d)`,
  })
  .transform((v) => v.trim());

/** Selector text (`app=payments,env=prod`) as the generator's scope; absent or `all`: null. */
const scope = z
  .string()
  .max(2048)
  .optional()
  .transform((text, ctx): LabelSelector | null => {
    if (text === undefined) return null;
    try {
      return parseScope(text);
    } catch (e) {
      if (!(e instanceof GenerationError)) throw e;
      for (const p of e.problems)
        ctx.addIssue({ code: 'custom', message: p.replace(/^scope: /, ''), input: text });
      return z.NEVER;
    }
  });

export const generateBody = z.strictObject({
  scope,
  granularity: z.enum(GRANULARITIES),
  since,
  /**
   * Also propose rules for connection attempts an enforcing agent blocked. Off by default:
   * a blocked attempt is not a working conversation (it may be an attacker's probe).
   */
  includeBlocked: z.boolean().default(false),
  /** True (the default) only previews; false also writes the documents to the draft. */
  dryRun: z.boolean().default(true),
});
export type GenerateBody = z.output<typeof generateBody>;

export const simulateBody = z.strictObject({ since }).default({ since: DEFAULT_GENERATE_SINCE });

/**
 * Flow summaries one file simulation reads at most: about what the default body limit holds.
 * A larger configured limit must not buy unbounded work (every distinct flow is decided twice,
 * some tens of microseconds each).
 */
export const MAX_SIMULATED_SUMMARIES = 100_000;

/** The same formats, and the same `?format=` parameter, as /flows/import. */
export const simulateFileQuery = importQuery;
export const simulateFileBody = z
  .string()
  .min(1, 'send the flow file as the body (e.g. Content-Type: text/csv)');

// ------------------------------------------------------------------ answers

const list = <T extends z.ZodType>(item: T) => z.array(item).readonly();
const tally = {
  flows: z.number(),
  connections: z.number(),
  firstSeen: z.string(),
  lastSeen: z.string(),
};
const decision = z.enum(DECISIONS);

export const generateView = z.object({
  granularity: z.enum(GRANULARITIES),
  /** The scope as given (`app=payments,env=prod`), or null for the whole estate. */
  scope: z.string().nullable(),
  window: flowWindowView,
  /** New IP lists, then new rulesets, as policy-as-code documents (what /policy/draft stores). */
  documents: list(
    z.object({
      kind: z.enum(['Ruleset', 'IpList']),
      name: z.string(),
      spec: z.record(z.string(), z.unknown()),
    }),
  ),
  /** The same documents as one YAML file. */
  yaml: z.string(),
  evidence: list(
    z.object({ ruleset: z.string(), rule: z.string(), ...tally, examples: list(z.string()) }),
  ),
  coverage: z.object({
    flows: z.object({ inScope: z.number(), allowed: z.number() }),
    connections: z.object({ inScope: z.number(), allowed: z.number() }),
    share: z.number(),
    notAllowed: list(
      z.object({
        source: z.string(),
        destination: z.string(),
        service: z.string(),
        ...tally,
        decision,
        reason: z.string(),
      }),
    ),
  }),
  alreadyAllowed: list(z.object({ by: z.string(), ...tally })),
  blockedByExisting: list(
    z.object({
      rule: z.string(),
      action: z.enum(['deny', 'override-deny']),
      ...tally,
      examples: list(z.string()),
    }),
  ),
  unlabelled: list(z.object({ workload: z.string(), missing: list(z.string()), ...tally })),
  overriddenDenies: list(z.object({ rule: z.string(), existingRule: z.string() })),
  counts: z.object({ flows: z.number(), distinct: z.number(), inScope: z.number() }),
  /** Connection attempts agents reported blocked, left out of generation (see includeBlocked). */
  blockedLeftOut: z.object({ flows: z.number(), connections: z.number() }),
  /** Whether the documents were written to the draft (false on a dry run). */
  written: z.boolean(),
});

const changeTotals = z.object({ flows: z.number(), connections: z.number() });

export const simulateView = z.object({
  window: flowWindowView,
  activeVersion: z.number().nullable(),
  newlyBlocked: changeTotals,
  newlyAllowed: changeTotals,
  /** Connections per destination application (or address group), most newly blocked first. */
  byApplication: list(
    z.object({ application: z.string(), newlyBlocked: z.number(), newlyAllowed: z.number() }),
  ),
  /** Flows whose decision the draft changes, most connections first. */
  changes: list(flowRowView),
  /** Whether `changes` was cut short. */
  truncated: z.boolean(),
});

/** A file's simulation: what it held instead of a window, the rest as for retained flows. */
export const simulateFileView = simulateView.omit({ window: true }).extend({
  file: z.object({
    format: z.enum(FLOW_IMPORT_FORMATS),
    /** Flow summaries read from the file. */
    summaries: z.number(),
    /** Lines read but not simulated (a protocol the flow store does not keep, loopback). */
    skipped: z.number(),
    /** Distinct flows (edges) once summaries of the same one are summed. */
    flows: z.number(),
    /** The earliest first-seen and latest last-seen time in the file (null: no flows). */
    firstSeen: z.string().nullable(),
    lastSeen: z.string().nullable(),
  }),
});
