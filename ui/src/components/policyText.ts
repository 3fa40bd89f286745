/**
 * Rules as a reviewer reads them: one side of a rule (`role=web, app=shop`, `iplist:partners`)
 * and its services (`8080/tcp`, `5432/tcp (postgres)`), from either the document form
 * (`sources: {labels: {role: web}}`) or the engine's model form (`selector.labels`).
 */
type Loose = Readonly<Record<string, unknown>>;

const isObject = (v: unknown): v is Loose => typeof v === 'object' && v !== null;

/** Scalars as themselves, anything else as JSON. */
const str = (v: unknown): string =>
  typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean'
    ? String(v)
    : (JSON.stringify(v) ?? '');

const values = (v: unknown): string[] =>
  Array.isArray(v) ? v.map(str) : v === undefined || v === null ? [] : [str(v)];

function labelText(labels: unknown): string | null {
  if (!isObject(labels)) return null;
  const parts = Object.entries(labels).map(([k, v]) => `${k}=${values(v).join('|')}`);
  return parts.length ? parts.join(', ') : null;
}

/** Each actor of a rule side, e.g. `['app=shop, role=web', 'iplist:partners']`. */
export function describeActors(side: unknown): string[] {
  if (side === 'all') return ['all workloads'];
  if (!isObject(side)) return side === undefined ? [] : [str(side)];
  const out: string[] = [];
  if (side.allWorkloads === true) out.push('all workloads');
  const selector = isObject(side.selector) ? side.selector : side;
  const labels = labelText(selector.labels);
  if (labels) out.push(labels);
  for (const g of values(selector.labelGroups)) out.push(`group:${g}`);
  for (const w of values(side.workloads)) out.push(`workload:${w}`);
  for (const l of values(side.ipLists)) out.push(`iplist:${l}`);
  for (const u of values(side.userGroups)) out.push(`users:${u}`);
  return out;
}

function portText(p: unknown): string {
  if (typeof p === 'number' || typeof p === 'string') return str(p);
  if (isObject(p) && 'from' in p)
    return p.from === p.to ? str(p.from) : `${str(p.from)}-${str(p.to)}`;
  return '';
}

function serviceText(s: unknown): string {
  if (typeof s === 'string') return s;
  if (!isObject(s)) return str(s);
  if (s.kind === 'named') return str(s.name);
  const port = s.kind === 'inline' && isObject(s.port) ? s.port : s;
  const proto = str(port.proto ?? '');
  if (proto === 'icmp' || proto === 'icmpv6') {
    const type = port.type ?? port.icmpType;
    return type === undefined ? proto : `${proto} type ${str(type)}`;
  }
  const ports = portText(port.ports ?? port.port);
  const text = ports ? `${ports}/${proto}` : proto;
  return port.process ? `${text} (${str(port.process)})` : text;
}

/** A rule's services, e.g. `['8080/tcp', '5432/tcp (postgres)']`. */
export function describeServices(services: unknown): string[] {
  if (services === 'all') return ['all services'];
  if (!Array.isArray(services)) return services === undefined ? [] : [serviceText(services)];
  return services.map(serviceText);
}

export interface RuleView {
  readonly action: string;
  readonly sources: string[];
  readonly destinations: string[];
  readonly services: string[];
}

/** `ruleset/rule` → the rule's ends and services, from Ruleset documents (top level or `spec`). */
export function rulesOf(documents: readonly Loose[]): Map<string, RuleView> {
  const out = new Map<string, RuleView>();
  for (const doc of documents) {
    if (doc.kind !== 'Ruleset') continue;
    const body = isObject(doc.spec) ? { ...doc, ...doc.spec } : doc;
    const rules = Array.isArray(body.rules) ? (body.rules as unknown[]) : [];
    for (const r of rules) {
      if (!isObject(r)) continue;
      out.set(`${str(doc.name)}/${str(r.name)}`, {
        action: typeof r.action === 'string' ? r.action : 'allow',
        sources: describeActors(r.sources),
        destinations: describeActors(r.destinations),
        services: describeServices(r.services),
      });
    }
  }
  return out;
}

/** `app=shop,app=pay, env=prod` → { app: ['shop', 'pay'], env: ['prod'] }, or why it is not. */
export function parseSelector(text: string): Record<string, string[]> | string {
  const out: Record<string, string[]> = {};
  for (const part of text.split(',').map((p) => p.trim())) {
    if (!part) continue;
    const eq = part.indexOf('=');
    if (eq <= 0 || eq === part.length - 1) return `"${part}" is not key=value`;
    (out[part.slice(0, eq).trim()] ??= []).push(part.slice(eq + 1).trim());
  }
  return out;
}

/** Same key ORed, different keys ANDed (as the server's selectors). */
export const selects = (
  selector: Readonly<Record<string, readonly string[]>>,
  labels: Readonly<Record<string, string>>,
): boolean =>
  Object.entries(selector).every(([k, vs]) => labels[k] !== undefined && vs.includes(labels[k]));
