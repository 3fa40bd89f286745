/**
 * The draft policy: every non-workload object as the policy-as-code document a person wrote.
 * Writes are validated by the same schema as the YAML files, then the whole would-be draft
 * is resolved against the estate; a draft that would not resolve is refused (422) with every
 * problem located, and nothing is stored.
 */
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Transaction } from 'kysely';
import { PolicyError } from '../../policy/issues.js';
import type { Workload } from '../../policy/model.js';
import type { ResolvedPolicy } from '../../policy/resolve.js';
import { plainIssues, policyDocument } from '../../policy-as-code/schema.js';
import type { Database } from '../../store/schema.js';
import type { Db } from '../../store/store.js';
import type { Principal } from '../auth.js';
import { change, type Audit } from '../change.js';
import { errors, type ErrorDetail } from '../errors.js';
import {
  activePolicy,
  loadDraft,
  loadWorkloads,
  POLICY_KINDS,
  resolveStored,
  type PolicyKind,
  type StoredDocument,
} from '../policy-state.js';
import type { RouteOptions } from '../context.js';

/** Most documents one apply may carry. */
export const MAX_APPLY_DOCUMENTS = 10_000;

/** JSON with sorted keys: equal for equal documents, whatever order their fields were sent in. */
export function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, value: unknown) =>
    value && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(
          Object.entries(value as Record<string, unknown>).sort(([a], [b]) =>
            a < b ? -1 : a > b ? 1 : 0,
          ),
        )
      : value,
  );
}

function formatPath(prefix: string, path: readonly PropertyKey[]): string {
  let out = prefix;
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `.${String(p)}`;
  return out;
}

/** The engine's issues as API error details: `Kind "name": path` and the message. */
export function policyErrorDetails(e: PolicyError): ErrorDetail[] {
  return e.issues
    .filter((i) => i.severity === 'error')
    .map((i) => ({
      path: `${i.kind} "${i.name}"${i.path ? `: ${i.path}` : ''}`,
      message: i.message,
    }));
}

/** Resolves documents against workloads, or throws 422 POLICY_INVALID naming every problem. */
export function requireResolvable(
  documents: readonly StoredDocument[],
  workloads: readonly Workload[],
  what?: string,
): ResolvedPolicy {
  try {
    return resolveStored(documents, workloads);
  } catch (e) {
    if (e instanceof PolicyError) {
      const details = policyErrorDetails(e);
      throw errors.invalidPolicy(
        what
          ? details.map((d) => ({ path: d.path, message: `${d.message} (in ${what})` }))
          : details,
      );
    }
    throw e;
  }
}

/** After a change to workloads: the draft and the active version must both still resolve. */
export async function requireEstateResolvable(db: Db): Promise<void> {
  const workloads = await loadWorkloads(db);
  requireResolvable(await loadDraft(db), workloads, 'the draft');
  const { version, documents } = await activePolicy(db);
  if (version) requireResolvable(documents, workloads, `active policy version ${version}`);
}

/**
 * Validates one document as sent (`at` locates it in the request). Returns the document to
 * store (as sent, a Settings document named), or pushes located problems.
 */
function validateDocument(
  raw: unknown,
  at: string,
  problems: ErrorDetail[],
): StoredDocument | null {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push({ path: at, message: 'a document must be a mapping with a "kind"' });
    return null;
  }
  const kind = (raw as { kind?: unknown }).kind;
  if (kind === 'Workload') {
    problems.push({
      path: `${at}.kind`,
      message: 'workloads are the estate, not the draft: send them to /api/v1/workloads',
    });
    return null;
  }
  if (typeof kind !== 'string' || !(POLICY_KINDS as readonly string[]).includes(kind)) {
    problems.push({
      path: `${at}.kind`,
      message:
        kind === undefined
          ? `is required (one of ${POLICY_KINDS.join(', ')})`
          : `${JSON.stringify(kind)} is not one of ${POLICY_KINDS.join(', ')}`,
    });
    return null;
  }
  const result = policyDocument.safeParse(raw, { reportInput: true });
  if (!result.success) {
    for (const i of plainIssues(result.error.issues))
      problems.push({ path: formatPath(at, i.path), message: i.message });
    return null;
  }
  const name = result.data.name;
  if (kind === 'Settings' && name !== 'settings') {
    problems.push({
      path: `${at}.name`,
      message: 'there is one Settings document, named "settings"',
    });
    return null;
  }
  const spec = { ...(raw as Record<string, unknown>), name };
  return { kind: kind as PolicyKind, name, spec };
}

function withinScope(
  scope: Readonly<Record<string, readonly string[]>>,
  doc: StoredDocument,
): boolean {
  if (doc.kind !== 'Ruleset') return false;
  const parsed = policyDocument.parse(doc.spec);
  if (parsed.kind !== 'Ruleset') return false;
  const labels = parsed.scope?.labels ?? {};
  return Object.entries(scope).every(([key, allowed]) => {
    const values = labels[key];
    return values !== undefined && values.every((v) => allowed.includes(v));
  });
}

/** A policy editor with a scope may write only rulesets whose scope lies within it. */
function requireInScope(
  principal: Principal | null,
  docs: readonly (StoredDocument | undefined)[],
): void {
  if (principal?.kind !== 'user' || principal.role !== 'policy-editor' || !principal.scope) return;
  const scope = principal.scope;
  const shown = Object.entries(scope)
    .map(([k, v]) => `${k}=${v.join('|')}`)
    .join(', ');
  for (const d of docs) {
    if (!d) continue;
    if (!withinScope(scope, d)) {
      throw errors.forbidden(
        d.kind === 'Ruleset'
          ? `change Ruleset "${d.name}": its scope does not lie within your scope (${shown})`
          : `change a ${d.kind}: your key may change only rulesets within its scope (${shown})`,
      );
    }
  }
}

const keyOf = (kind: string, name: string) => `${kind}/${name}`;

export type DraftAction = 'created' | 'changed' | 'unchanged' | 'deleted';

/**
 * Sets and removes draft documents in the caller's transaction, checks the would-be draft
 * resolves, and audits each real change. `target` replaces the whole draft when `replaceAll`.
 */
export async function writeDraft(
  trx: Transaction<Database>,
  audit: Audit,
  principal: Principal | null,
  edits: { put: readonly StoredDocument[]; remove: readonly { kind: string; name: string }[] },
  replaceAll = false,
): Promise<{ kind: string; name: string; action: DraftAction }[]> {
  const current = await loadDraft(trx);
  const byKey = new Map(current.map((d) => [keyOf(d.kind, d.name), d]));
  const next = new Map(replaceAll ? [] : byKey);
  const results: { kind: string; name: string; action: DraftAction }[] = [];
  const removed = replaceAll
    ? current.filter((d) => !edits.put.some((p) => keyOf(p.kind, p.name) === keyOf(d.kind, d.name)))
    : edits.remove.map((r) => {
        const d = byKey.get(keyOf(r.kind, r.name));
        if (!d) throw errors.notFound(r.kind, r.name);
        return d;
      });
  for (const d of removed) next.delete(keyOf(d.kind, d.name));
  for (const d of edits.put) next.set(keyOf(d.kind, d.name), d);
  // Both what is written and what it replaces or removes must lie within an editor's scope.
  requireInScope(principal, [
    ...edits.put,
    ...edits.put.map((d) => byKey.get(keyOf(d.kind, d.name))),
    ...removed,
  ]);
  requireResolvable([...next.values()], await loadWorkloads(trx));

  const now = new Date().toISOString();
  for (const d of removed) {
    await trx
      .deleteFrom('policy_objects')
      .where('kind', '=', d.kind)
      .where('name', '=', d.name)
      .execute();
    await audit({ type: 'draft.delete', kind: d.kind, name: d.name, before: d.spec });
    results.push({ kind: d.kind, name: d.name, action: 'deleted' });
  }
  for (const d of edits.put) {
    const before = byKey.get(keyOf(d.kind, d.name));
    if (before && stableJson(before.spec) === stableJson(d.spec)) {
      results.push({ kind: d.kind, name: d.name, action: 'unchanged' });
      continue;
    }
    if (before) {
      await trx
        .updateTable('policy_objects')
        .set({ spec: JSON.stringify(d.spec), updated_at: now })
        .where('kind', '=', d.kind)
        .where('name', '=', d.name)
        .execute();
    } else {
      await trx
        .insertInto('policy_objects')
        .values({ kind: d.kind, name: d.name, spec: JSON.stringify(d.spec), updated_at: now })
        .execute();
    }
    await audit({
      type: before ? 'draft.replace' : 'draft.create',
      kind: d.kind,
      name: d.name,
      ...(before ? { before: before.spec } : {}),
      after: d.spec,
    });
    results.push({ kind: d.kind, name: d.name, action: before ? 'changed' : 'created' });
  }
  return results;
}

const documentView = z.record(z.string(), z.unknown());
const kindParam = z.enum(POLICY_KINDS);
const resultView = z.object({
  kind: z.string(),
  name: z.string(),
  action: z.enum(['created', 'changed', 'unchanged', 'deleted']),
});

export const policyRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { ctx }) => {
  app.get(
    '/policy/draft',
    {
      config: { permission: 'read' },
      schema: {
        summary: 'The draft policy: every document (optionally of one kind)',
        tags: ['policy'],
        querystring: z.strictObject({ kind: kindParam.optional() }),
        response: { 200: z.object({ items: z.array(documentView) }) },
      },
    },
    async (request) => {
      const draft = await loadDraft(ctx.store.db);
      const kind = request.query.kind;
      return { items: draft.filter((d) => !kind || d.kind === kind).map((d) => d.spec) };
    },
  );

  app.get(
    '/policy/draft/:kind/:name',
    {
      config: { permission: 'read' },
      schema: {
        summary: 'One draft document',
        tags: ['policy'],
        params: z.object({ kind: kindParam, name: z.string() }),
        response: { 200: documentView },
      },
    },
    async (request) => {
      const { kind, name } = request.params;
      const row = await ctx.store.db
        .selectFrom('policy_objects')
        .select('spec')
        .where('kind', '=', kind)
        .where('name', '=', name)
        .executeTakeFirst();
      if (!row) throw errors.notFound(kind, name);
      return JSON.parse(row.spec) as Record<string, unknown>;
    },
  );

  app.put(
    '/policy/draft/:kind/:name',
    {
      config: { permission: 'policy:write' },
      schema: {
        summary: 'Create or replace one draft document',
        tags: ['policy'],
        params: z.object({ kind: kindParam, name: z.string() }),
        body: documentView,
        response: { 200: resultView },
      },
    },
    async (request) => {
      const { kind, name } = request.params;
      const problems: ErrorDetail[] = [];
      const doc = validateDocument(request.body, 'body', problems);
      if (doc && doc.kind !== kind)
        problems.push({
          path: 'body.kind',
          message: `is "${doc.kind}" but the URL says "${kind}"`,
        });
      if (doc && doc.name !== name)
        problems.push({
          path: 'body.name',
          message: `is "${doc.name}" but the URL says "${name}"`,
        });
      if (problems.length || !doc) throw errors.validation(problems);
      const [result] = await change(ctx, request, (trx, audit) =>
        writeDraft(trx, audit, request.principal, { put: [doc], remove: [] }),
      );
      return result!;
    },
  );

  app.delete(
    '/policy/draft/:kind/:name',
    {
      config: { permission: 'policy:write' },
      schema: {
        summary: 'Delete one draft document (refused while anything refers to it)',
        tags: ['policy'],
        params: z.object({ kind: kindParam, name: z.string() }),
        response: { 200: resultView },
      },
    },
    async (request) => {
      const { kind, name } = request.params;
      const [result] = await change(ctx, request, (trx, audit) =>
        writeDraft(trx, audit, request.principal, { put: [], remove: [{ kind, name }] }),
      );
      return result!;
    },
  );

  app.post(
    '/policy/draft/apply',
    {
      config: { permission: 'policy:write' },
      schema: {
        summary: 'Create or replace each document, all in one transaction (like kubectl apply)',
        tags: ['policy'],
        body: z.strictObject({
          documents: z.array(z.unknown()).max(MAX_APPLY_DOCUMENTS),
        }),
        response: { 200: z.object({ results: z.array(resultView) }) },
      },
    },
    async (request) => {
      const problems: ErrorDetail[] = [];
      const docs: StoredDocument[] = [];
      const seen = new Map<string, number>();
      request.body.documents.forEach((raw, i) => {
        const at = `body.documents[${i}]`;
        const doc = validateDocument(raw, at, problems);
        if (!doc) return;
        const first = seen.get(keyOf(doc.kind, doc.name));
        if (first !== undefined) {
          problems.push({
            path: at,
            message: `${doc.kind} "${doc.name}" is also documents[${first}]`,
          });
          return;
        }
        seen.set(keyOf(doc.kind, doc.name), i);
        docs.push(doc);
      });
      if (problems.length) throw errors.validation(problems);
      const results = await change(ctx, request, (trx, audit) =>
        writeDraft(trx, audit, request.principal, { put: docs, remove: [] }),
      );
      return { results };
    },
  );
};
