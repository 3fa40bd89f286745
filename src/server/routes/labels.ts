/**
 * Labels in and out as CSV: export one row per workload (hostname, address, one column per
 * label key); import rows that name a workload by hostname or address and set its labels
 * (an empty cell removes a label). A dry run shows the changes and the rows that could not
 * be used, and why; a real import applies every usable row in one transaction, audits each
 * changed workload, checks that the policy still resolves, and redistributes.
 */
import { parse } from 'csv-parse/sync';
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { addressValue } from '../../policy/addresses.js';
import { ENFORCEMENT_MODES } from '../../policy/model.js';
import type { Db } from '../../store/store.js';
import { change } from '../change.js';
import { redistribute } from '../distribution.js';
import { errors } from '../errors.js';
import { loadWorkloads } from '../policy-state.js';
import { requireEstateResolvable } from './policy.js';
import type { RouteOptions } from '../context.js';

/** Largest CSV accepted, in bytes. */
export const CSV_BODY_LIMIT = 4 * 1024 * 1024;
export const CSV_MAX_ROWS = 100_000;
const LABEL_KEY = /^[a-z][a-z0-9_.-]{0,62}$/;
const LABEL_VALUE_MAX = 128;
const RESERVED = new Set(['hostname', 'address', 'mode']);

type Labels = Record<string, string>;

export interface LabelChange {
  readonly row: number;
  readonly workload: string;
  readonly before: Labels;
  readonly after: Labels;
  readonly mode?: { readonly before: string; readonly after: string };
}

export interface UnusableRow {
  readonly row: number;
  readonly message: string;
}

export interface ImportPlan {
  readonly changes: LabelChange[];
  readonly unusable: UnusableRow[];
  readonly unchanged: number;
}

const sortedLabels = (labels: Labels): Labels =>
  Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

const addressKey = (text: string): string | null => {
  try {
    const { family, value } = addressValue(text.replace(/\/(32|128)$/, ''));
    return `${family}:${value}`;
  } catch {
    return null;
  }
};

function csvCell(v: string): string {
  return /[",\r\n]/.test(v) || v !== v.trim() ? `"${v.replace(/"/g, '""')}"` : v;
}

/** Reads the CSV and works out, against the current workloads, what an import would change. */
export async function planImport(db: Db, text: string): Promise<ImportPlan> {
  let records: string[][];
  try {
    records = parse(text, {
      bom: true,
      relax_column_count: true,
      skip_empty_lines: false,
      trim: true,
      max_record_size: 64 * 1024,
    });
  } catch (e) {
    throw errors.badRequest(`the body is not valid CSV: ${(e as Error).message}`);
  }
  if (records.length === 0) throw errors.badRequest('the CSV is empty: send a header row first');
  if (records.length > CSV_MAX_ROWS + 1)
    throw errors.badRequest(`the CSV has more than ${CSV_MAX_ROWS} rows; split it`);

  const unusable: UnusableRow[] = [];
  const bad = (row: number, message: string) =>
    unusable.push({ row, message: `row ${row}: ${message}` });

  const header = records[0]!;
  const columns: {
    index: number;
    name: string;
    role: 'hostname' | 'address' | 'mode' | 'label';
  }[] = [];
  const seen = new Set<string>();
  header.forEach((name, index) => {
    if (name === '') return bad(1, `column ${index + 1} has no name`);
    if (seen.has(name)) return bad(1, `column "${name}" appears more than once (ignored)`);
    seen.add(name);
    if (RESERVED.has(name))
      return columns.push({ index, name, role: name as 'hostname' | 'address' | 'mode' });
    if (!LABEL_KEY.test(name))
      return bad(
        1,
        `"${name}" is not a label key (up to 63 lower-case letters, digits, "_", ".", "-", starting with a letter); column ignored`,
      );
    columns.push({ index, name, role: 'label' });
  });
  const col = (role: string) => columns.find((c) => c.role === role);
  const hostCol = col('hostname');
  const addrCol = col('address');
  const modeCol = col('mode');
  if (!hostCol && !addrCol)
    throw errors.badRequest('the CSV header needs a "hostname" or an "address" column');

  const workloads = await loadWorkloads(db);
  const byName = new Map(workloads.map((w) => [w.name, w]));
  const byAddress = new Map<string, string>();
  for (const w of workloads)
    for (const a of w.addresses) {
      const k = addressKey(a);
      if (k) byAddress.set(k, w.name);
    }

  const firstRow = new Map<string, number>();
  const changes: LabelChange[] = [];
  let unchanged = 0;
  for (let i = 1; i < records.length; i++) {
    const row = i + 1;
    const cells = records[i]!;
    if (cells.every((c) => c === '')) continue;
    if (cells.length > header.length) {
      bad(row, `has ${cells.length} cells but the header names ${header.length} columns`);
      continue;
    }
    const cell = (c: { index: number } | undefined) => (c ? (cells[c.index] ?? '') : '');
    const hostname = cell(hostCol);
    const address = cell(addrCol);
    let name: string | undefined;
    if (hostname) {
      if (!byName.has(hostname)) {
        bad(row, `no workload named ${JSON.stringify(hostname)}`);
        continue;
      }
      name = hostname;
      if (address) {
        const k = addressKey(address);
        if (!k || byAddress.get(k) !== hostname) {
          bad(row, `workload "${hostname}" does not have address ${address}`);
          continue;
        }
      }
    } else if (address) {
      const k = addressKey(address);
      if (!k) {
        bad(row, `${JSON.stringify(address)} is not an IP address`);
        continue;
      }
      name = byAddress.get(k);
      if (!name) {
        bad(row, `no workload with address ${address}`);
        continue;
      }
    } else {
      bad(row, 'names no workload: give a hostname or an address');
      continue;
    }
    const earlier = firstRow.get(name);
    if (earlier !== undefined) {
      bad(row, `workload "${name}" was already set by row ${earlier} (duplicate row ignored)`);
      continue;
    }
    firstRow.set(name, row);

    const w = byName.get(name)!;
    const after: Labels = { ...w.labels };
    const problems: string[] = [];
    for (const c of columns) {
      if (c.role !== 'label') continue;
      const value = cell(c);
      if (value === '') delete after[c.name];
      else if (value.length > LABEL_VALUE_MAX)
        problems.push(`the value of "${c.name}" is longer than ${LABEL_VALUE_MAX} characters`);
      else after[c.name] = value;
    }
    let mode: LabelChange['mode'];
    const modeText = cell(modeCol);
    if (modeText) {
      if (!(ENFORCEMENT_MODES as readonly string[]).includes(modeText))
        problems.push(`mode "${modeText}" is not one of ${ENFORCEMENT_MODES.join(', ')}`);
      else if (modeText !== w.mode) mode = { before: w.mode, after: modeText };
    }
    if (problems.length) {
      bad(row, problems.join('; '));
      continue;
    }
    const before = sortedLabels(w.labels);
    const sortedAfter = sortedLabels(after);
    if (JSON.stringify(before) === JSON.stringify(sortedAfter) && !mode) {
      unchanged++;
      continue;
    }
    changes.push({ row, workload: name, before, after: sortedAfter, ...(mode ? { mode } : {}) });
  }
  unusable.sort((a, b) => a.row - b.row);
  return { changes, unusable, unchanged };
}

const labelsView = z.record(z.string(), z.string());
const importResult = z.object({
  dryRun: z.boolean(),
  changes: z.array(
    z.object({
      row: z.number(),
      workload: z.string(),
      before: labelsView,
      after: labelsView,
      mode: z.object({ before: z.string(), after: z.string() }).optional(),
    }),
  ),
  unusable: z.array(z.object({ row: z.number(), message: z.string() })),
  unchanged: z.number(),
});

export const labelRoutes: FastifyPluginAsyncZod<RouteOptions> = async (app, { ctx }) => {
  // Only this plugin's routes take CSV.
  app.addContentTypeParser(
    ['text/csv', 'application/csv'],
    { parseAs: 'string', bodyLimit: CSV_BODY_LIMIT },
    (_request, body, done) => done(null, body),
  );

  app.get(
    '/labels',
    {
      config: { permission: 'read' },
      schema: {
        summary: 'Every label key in use, its values, and how many workloads carry each',
        tags: ['labels'],
        response: {
          200: z.object({
            keys: z.array(
              z.object({
                key: z.string(),
                workloads: z.number(),
                values: z.array(z.object({ value: z.string(), workloads: z.number() })),
              }),
            ),
          }),
        },
      },
    },
    async () => {
      const counts = new Map<string, Map<string, number>>();
      for (const w of await loadWorkloads(ctx.store.db)) {
        for (const [key, value] of Object.entries(w.labels)) {
          let values = counts.get(key);
          if (!values) counts.set(key, (values = new Map<string, number>()));
          values.set(value, (values.get(value) ?? 0) + 1);
        }
      }
      const keys = [...counts.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([key, values]) => ({
          key,
          workloads: [...values.values()].reduce((a, b) => a + b, 0),
          values: [...values.entries()]
            .sort(([a], [b]) => a.localeCompare(b))
            .map(([value, workloads]) => ({ value, workloads })),
        }));
      return { keys };
    },
  );

  app.get(
    '/labels/export.csv',
    {
      config: { permission: 'read' },
      schema: {
        summary: 'Every workload with its labels as CSV: hostname, address, one column per key',
        tags: ['labels'],
        produces: ['text/csv'],
      },
    },
    async (_request, reply) => {
      const workloads = await loadWorkloads(ctx.store.db);
      const keys = [...new Set(workloads.flatMap((w) => Object.keys(w.labels)))].sort();
      const lines = [['hostname', 'address', ...keys].map(csvCell).join(',')];
      for (const w of workloads)
        lines.push(
          [w.name, w.addresses[0] ?? '', ...keys.map((k) => w.labels[k] ?? '')]
            .map(csvCell)
            .join(','),
        );
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', 'attachment; filename="labels.csv"')
        .send(`${lines.join('\r\n')}\r\n`);
    },
  );

  app.post(
    '/labels/import',
    {
      config: { permission: 'estate:write' },
      bodyLimit: CSV_BODY_LIMIT,
      schema: {
        summary:
          'Set workload labels from CSV (hostname or address, then one column per label key; an empty cell removes the label)',
        description:
          'With dryRun=true nothing is stored: the answer shows the changes and the rows that could not be used, and why.',
        tags: ['labels'],
        consumes: ['text/csv'],
        querystring: z.strictObject({
          dryRun: z.enum(['true', 'false']).default('false'),
        }),
        body: z.string().min(1, 'send the CSV as the body (Content-Type: text/csv)'),
        response: { 200: importResult },
      },
    },
    async (request) => {
      const dryRun = request.query.dryRun === 'true';
      if (dryRun) return { dryRun, ...(await planImport(ctx.store.db, request.body)) };
      const { plan, announced } = await change(ctx, request, async (trx, audit) => {
        const plan = await planImport(trx, request.body);
        if (plan.changes.length === 0) return { plan, announced: [] };
        const now = new Date().toISOString();
        for (const c of plan.changes) {
          await trx
            .updateTable('workloads')
            .set({
              labels: JSON.stringify(c.after),
              ...(c.mode ? { mode: c.mode.after } : {}),
              updated_at: now,
            })
            .where('name', '=', c.workload)
            .execute();
          if (JSON.stringify(c.before) !== JSON.stringify(c.after))
            await audit({
              type: 'workload.labels',
              kind: 'Workload',
              name: c.workload,
              before: c.before,
              after: c.after,
            });
          if (c.mode)
            await audit({
              type: 'workload.mode',
              kind: 'Workload',
              name: c.workload,
              before: c.mode.before,
              after: c.mode.after,
            });
        }
        // The draft and the active version must both still resolve over the new labels.
        await requireEstateResolvable(trx);
        return { plan, announced: await redistribute(trx, ctx.compileCache) };
      });
      ctx.policies.announce(announced);
      return { dryRun, ...plan };
    },
  );
};
