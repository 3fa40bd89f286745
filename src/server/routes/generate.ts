/**
 * Automated segmentation (issue 6): generate a draft from the flows the flow store observed,
 * and simulate what provisioning the draft would change for that traffic.
 *
 * Generation reads the estate and the draft (its rulesets are the existing policy the
 * generator respects), and adds new rulesets and IP lists beside them: it never removes or
 * widens what a person wrote. Writing goes through `writeDraft`, as /policy/draft/apply does,
 * so it is validated, scope-checked for policy editors, and audited.
 *
 * A simulation reads either the flow store's retained flows, or an uploaded flow file
 * (/policy/simulate/file), which is judged in memory and never stored: a what-if over a
 * capture must not add its traffic to the map.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { FlowRow } from '../../analysis/flows/model.js';
import { flowWindow, resolveWindow } from '../../analysis/flows/window.js';
import type { Decision } from '../../policy/decide.js';
import {
  formatProblem,
  ImportError,
  readFlowFile,
  type FlowImportFormat,
} from '../../importers/flows/index.js';
import { draftDocuments, draftYaml, generatePolicy } from '../../policy/generate/index.js';
import { requirePermission } from '../auth.js';
import { change } from '../change.js';
import type { RouteOptions, ServerContext } from '../context.js';
import { ApiError, errors } from '../errors.js';
import { loadEstate } from '../flows/estate.js';
import { eachRow, fileFlowRows } from '../flows-simulation.js';
import {
  generateBody,
  generateView,
  MAX_SIMULATED_SUMMARIES,
  simulateBody,
  simulateFileBody,
  simulateFileQuery,
  simulateFileView,
  simulateView,
  type GenerateBody,
} from '../generate-schemas.js';
import {
  activeVersion,
  loadDraft,
  loadWorkloads,
  policyOf,
  type StoredDocument,
} from '../policy-state.js';
import { writeDraft } from './policy.js';

/** Most changed flows a simulation lists (the totals count them all). */
export const MAX_SIMULATED_CHANGES = 500;

/** The window an answer reports: what the flow store reads for `since` now. */
async function windowOf(ctx: ServerContext, since: string) {
  const { retention } = await ctx.flows.status();
  return flowWindow(resolveWindow({ since }, new Date(), retention));
}

async function generate(ctx: ServerContext, body: GenerateBody) {
  const [observed, workloads, draft, window] = await Promise.all([
    ctx.flows.observedFlows({ since: body.since }, { includeBlocked: body.includeBlocked }),
    loadWorkloads(ctx.store.db),
    loadDraft(ctx.store.db),
    windowOf(ctx, body.since),
  ]);
  const generated = generatePolicy({
    estate: policyOf(draft, workloads),
    flows: observed.flows,
    scope: body.scope,
    granularity: body.granularity,
  });
  // A document's spec is the document itself, as /policy/draft/apply stores it.
  const documents: (StoredDocument & { kind: 'Ruleset' | 'IpList' })[] = draftDocuments(
    generated,
  ).map((spec) => ({
    kind: spec.kind as 'Ruleset' | 'IpList',
    name: spec.name as string,
    spec,
  }));
  return {
    generated,
    documents,
    yaml: draftYaml(generated),
    window,
    blockedLeftOut: observed.blockedLeftOut,
  };
}

// ------------------------------------------------------------------ simulation

const SEVERITY: Readonly<Record<Decision, number>> = {
  allowed: 0,
  'potentially-blocked': 1,
  blocked: 2,
};

/** Who a changed flow is charged to: the destination's application, or its address group. */
function applicationOf(row: FlowRow): string {
  const d = row.destination;
  if (d.workload !== undefined) return d.labels.app ?? `(no app: ${d.workload})`;
  return d.group ?? d.address;
}

export interface Simulation {
  newlyBlocked: { flows: number; connections: number };
  newlyAllowed: { flows: number; connections: number };
  byApplication: { application: string; newlyBlocked: number; newlyAllowed: number }[];
  changes: FlowRow[];
  truncated: boolean;
}

/**
 * What the draft changes among observed rows, read in `rows` order (most connections first).
 * Newly blocked: the draft's decision is more severe than the active one's (allowed to
 * potentially blocked counts: full enforcement would then block it); newly allowed: less.
 */
export async function simulate(rows: AsyncIterable<FlowRow>, limit: number): Promise<Simulation> {
  const newlyBlocked = { flows: 0, connections: 0 };
  const newlyAllowed = { flows: 0, connections: 0 };
  const apps = new Map<string, { newlyBlocked: number; newlyAllowed: number }>();
  const changes: FlowRow[] = [];
  let truncated = false;
  for await (const row of rows) {
    const delta = SEVERITY[row.draftDecision] - SEVERITY[row.decision];
    if (delta === 0) continue;
    const totals = delta > 0 ? newlyBlocked : newlyAllowed;
    totals.flows++;
    totals.connections += row.connections;
    const name = applicationOf(row);
    let app = apps.get(name);
    if (!app) apps.set(name, (app = { newlyBlocked: 0, newlyAllowed: 0 }));
    if (delta > 0) app.newlyBlocked += row.connections;
    else app.newlyAllowed += row.connections;
    if (changes.length < limit) changes.push(row);
    else truncated = true;
  }
  const byApplication = [...apps]
    .map(([application, a]) => ({ application, ...a }))
    .sort(
      (a, b) =>
        b.newlyBlocked - a.newlyBlocked ||
        b.newlyAllowed - a.newlyAllowed ||
        (a.application < b.application ? -1 : a.application > b.application ? 1 : 0),
    );
  return { newlyBlocked, newlyAllowed, byApplication, changes, truncated };
}

/** A flow file's summaries, or a 400 naming each bad line and field (as /flows/import answers). */
function readSimulatedFile(format: FlowImportFormat, text: string) {
  let read;
  try {
    read = readFlowFile(format, text);
  } catch (e) {
    if (!(e instanceof ImportError)) throw e;
    throw new ApiError(
      'VALIDATION_FAILED',
      400,
      `the ${format} file was not simulated: ${e.problems.map(formatProblem).join('; ')}`,
      e.problems.map((p) => ({
        path: `line ${p.line}${p.field ? `, ${p.field}` : ''}`,
        message: p.message,
      })),
    );
  }
  if (read.summaries.length > MAX_SIMULATED_SUMMARIES)
    throw errors.validation([
      {
        path: 'body',
        message: `the file holds ${read.summaries.length} flow summaries; simulate at most ${MAX_SIMULATED_SUMMARIES} at a time (split the file)`,
      },
    ]);
  return read;
}

// ------------------------------------------------------------------ routes

/**
 * The file route takes the file as text whatever its type, as /flows/import does; a plugin of
 * its own keeps that parser away from the JSON bodies of the routes above.
 */
const simulateFileRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { ctx }) => {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(
    ['application/json', 'text/csv', 'application/csv', 'text/plain'],
    { parseAs: 'string' },
    (_request, body, done) => done(null, body),
  );
  app.post(
    '/policy/simulate/file',
    {
      config: { permission: 'read' },
      schema: {
        summary:
          'What provisioning the draft would newly block or allow among the flows of an uploaded flow file (nothing is stored)',
        description:
          'The body is a flow file as text, in any format /flows/import reads (Bulkhead CSV or JSON, conntrack, nfdump CSV). Each flow is attributed to workloads by address, summaries of the same flow are summed, and each is decided under the active version and the draft. A file with any bad line is refused whole, with each bad line and field named. Neither the flow store nor the ingest log is written.',
        tags: ['policy'],
        consumes: ['text/csv', 'text/plain', 'application/json'],
        querystring: simulateFileQuery,
        body: simulateFileBody,
        response: { 200: simulateFileView },
      },
    },
    async (request) => {
      const { format } = request.query;
      const read = readSimulatedFile(format, request.body);
      // Loaded afresh rather than the flow store's cached estate: the answer is then on the
      // draft as it is now, with no wait for the store's re-decision.
      const estate = await loadEstate(ctx.store.db);
      const { rows, firstSeen, lastSeen } = await fileFlowRows(estate, read.summaries);
      return {
        file: {
          format,
          summaries: read.summaries.length,
          skipped: read.skipped,
          flows: rows.length,
          firstSeen,
          lastSeen,
        },
        activeVersion: estate.activeVersion,
        ...(await simulate(eachRow(rows), MAX_SIMULATED_CHANGES)),
      };
    },
  );
};

export const generateRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { ctx }) => {
  app.post(
    '/policy/generate',
    {
      // A dry run only reads; writing asks for policy:write below.
      config: { permission: 'read' },
      schema: {
        summary:
          'Generate allow rules from observed flows at a granularity; preview, or add them to the draft',
        tags: ['policy'],
        body: generateBody,
        response: { 200: generateView },
      },
    },
    async (request) => {
      const body = request.body;
      if (!body.dryRun) requirePermission(request.principal, 'policy:write');
      const { generated, documents, yaml, window, blockedLeftOut } = await generate(ctx, body);
      let written = false;
      if (!body.dryRun && documents.length > 0) {
        await change(ctx, request, (trx, audit) =>
          writeDraft(trx, audit, request.principal, { put: documents, remove: [] }),
        );
        written = true;
      }
      return {
        granularity: generated.granularity,
        scope: body.scope === null ? null : scopeText(body.scope.labels),
        window,
        documents,
        yaml,
        evidence: generated.evidence,
        coverage: generated.coverage,
        alreadyAllowed: generated.alreadyAllowed,
        blockedByExisting: generated.blockedByExisting,
        unlabelled: generated.unlabelled,
        overriddenDenies: generated.overriddenDenies,
        counts: generated.counts,
        blockedLeftOut,
        written,
      };
    },
  );

  app.post(
    '/policy/simulate',
    {
      config: { permission: 'read' },
      schema: {
        summary:
          'What provisioning the draft would newly block or allow among the flows observed in a window',
        tags: ['policy'],
        body: simulateBody,
        response: { 200: simulateView },
      },
    },
    async (request) => {
      const { since } = request.body;
      // The store re-decides edges in the background after a change: answer on current verdicts.
      await ctx.flows.catchUp();
      const [window, version] = await Promise.all([
        windowOf(ctx, since),
        activeVersion(ctx.store.db),
      ]);
      const rows = ctx.flows.exportRows(
        { window: { since } },
        { key: 'connections', descending: true },
      );
      return {
        window,
        activeVersion: version,
        ...(await simulate(rows, MAX_SIMULATED_CHANGES)),
      };
    },
  );

  await app.register(simulateFileRoutes, { ctx });
};

/** `app=payments,env=prod` back from a selector's labels. */
function scopeText(labels: Readonly<Record<string, readonly string[]>>): string {
  return Object.entries(labels)
    .flatMap(([k, vs]) => vs.map((v) => `${k}=${v}`))
    .join(',');
}
