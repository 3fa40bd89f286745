/**
 * The control plane's REST API as the UI calls it: every request carries the signed-in API
 * key, every error becomes an ApiFailure with the server's code, message and located details,
 * and a 401 signs the user out (the key was revoked, or the session's key is wrong).
 */
import type { Decision } from '../../src/policy/decide.js';
import type {
  FlowPage,
  FlowRow,
  MapResult,
  TimeSeries,
  FlowStoreStatus,
} from '../../src/analysis/flows/model.js';

export type {
  FlowPage,
  FlowRow,
  MapEdge,
  MapNode,
  MapResult,
  TimeSeries,
  EndView,
  FlowStoreStatus,
} from '../../src/analysis/flows/model.js';
export type { Decision } from '../../src/policy/decide.js';

const KEY_STORAGE = 'bulkhead.apiKey';
export const API = '/api/v1';

export interface ErrorDetail {
  readonly path: string;
  readonly message: string;
}

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: readonly ErrorDetail[] = [],
  ) {
    super(message);
    this.name = 'ApiFailure';
  }
}

export const session = {
  key: (): string | null => sessionStorage.getItem(KEY_STORAGE),
  signIn: (key: string) => sessionStorage.setItem(KEY_STORAGE, key),
  signOut: () => {
    sessionStorage.removeItem(KEY_STORAGE);
    for (const listener of signOutListeners) listener();
  },
};

const signOutListeners = new Set<() => void>();
/** Called when the server refuses the key; returns the unsubscribe. */
export function onSignOut(listener: () => void): () => void {
  signOutListeners.add(listener);
  return () => signOutListeners.delete(listener);
}

type QueryValue = string | number | boolean | readonly string[] | undefined | null;
export type Query = Readonly<Record<string, QueryValue>>;

/** Repeated keys for lists (`src=a&src=b`), nothing for empty values. */
export function queryString(query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) {
      for (const item of v as readonly string[]) if (item !== '') params.append(k, item);
    } else params.append(k, String(v));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

async function failure(response: Response): Promise<ApiFailure> {
  let code = `HTTP_${response.status}`;
  let message = response.statusText || `the server answered ${response.status}`;
  let details: ErrorDetail[] = [];
  try {
    const body = (await response.json()) as {
      error?: { code?: string; message?: string; details?: ErrorDetail[] };
    };
    if (body.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
      details = body.error.details ?? [];
    }
  } catch {
    // Not JSON (a proxy's error page): the status line is all there is.
  }
  return new ApiFailure(response.status, code, message, details);
}

/** A raw authenticated request; throws ApiFailure on any non-2xx answer. */
export async function request(
  path: string,
  init: RequestInit & { key?: string } = {},
): Promise<Response> {
  const { key, ...rest } = init;
  const token = key ?? session.key();
  const headers = new Headers(rest.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  if (rest.body !== undefined && !headers.has('content-type'))
    headers.set('content-type', 'application/json');
  const response = await fetch(`${API}${path}`, { ...rest, headers });
  if (response.ok) return response;
  const error = await failure(response);
  if (response.status === 401 && key === undefined) session.signOut();
  throw error;
}

export async function get<T>(path: string, query?: Query): Promise<T> {
  const response = await request(`${path}${queryString(query)}`);
  return (await response.json()) as T;
}

export async function send<T>(
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<T> {
  const response = await request(path, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return (text ? JSON.parse(text) : null) as T;
}

/** Fetches with the key and saves the answer as a file (a plain link could not send the key). */
export async function download(path: string, query: Query, filename: string): Promise<void> {
  const response = await request(`${path}${queryString(query)}`);
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// ------------------------------------------------------------------ the resources' shapes

export const ENFORCEMENT_MODES = ['idle', 'visibility', 'selective', 'full'] as const;

export interface Workload {
  readonly name: string;
  readonly addresses: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  readonly mode: string;
  readonly managed: boolean;
  readonly users: readonly string[];
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface Agent {
  readonly id: string;
  readonly workload: string;
  readonly status: string;
  readonly mode: string | null;
  readonly lastHeartbeatAt: string | null;
  readonly upToDate: boolean;
  readonly revokedAt: string | null;
}

export interface LabelKey {
  readonly key: string;
  readonly workloads: number;
  readonly values: readonly { readonly value: string; readonly workloads: number }[];
}

export type PolicyDocument = Readonly<Record<string, unknown>> & {
  readonly kind: string;
  readonly name?: string;
};

export interface VersionSummary {
  readonly version: number;
  readonly message: string;
  readonly createdAt: string;
  readonly createdBy: string;
  readonly restores: number | null;
  readonly active: boolean;
  readonly objects: number;
}

export interface AccessChange {
  readonly from: string;
  readonly to: string;
  readonly service: string;
  readonly before: string;
  readonly after: string;
  readonly decidedBy: unknown;
  readonly direction: 'gains' | 'loses';
}

export interface ProvisionPreview {
  readonly activeVersion: number | null;
  readonly changes: boolean;
  readonly diff: {
    readonly objects: readonly {
      change: string;
      kind: string;
      name: string;
      fields: readonly string[];
    }[];
    readonly rules: readonly { change: string; ruleId: string; fields: readonly string[] }[];
    readonly access: readonly AccessChange[];
    readonly accessTotal: number;
    readonly accessTruncated: boolean;
    readonly flowsCompared: number;
  };
  readonly workloads: readonly string[];
}

export interface AuditEvent {
  readonly id: number;
  readonly at: string;
  readonly actor: string;
  readonly type: string;
  readonly resource: { readonly kind: string; readonly name: string };
  readonly before: unknown;
  readonly after: unknown;
  readonly source: string | null;
  readonly requestId: string | null;
}

export interface DemoResult {
  readonly workloads: number;
  readonly edges: number;
  readonly buckets: number;
  readonly policyVersion: number;
}

export const flowsApi = {
  map: (query: Query) => get<MapResult>('/flows/map', query),
  page: (query: Query) => get<FlowPage>('/flows', query),
  timeseries: (query: Query) => get<TimeSeries>('/flows/timeseries', query),
  status: () => get<FlowStoreStatus>('/flows/status'),
};

// ------------------------------------------------------------------ generation and rollout

export const GRANULARITIES = ['env', 'app', 'tier', 'service', 'process'] as const;
export type Granularity = (typeof GRANULARITIES)[number];

/** How much observed traffic stands behind something. */
export interface Tally {
  readonly flows: number;
  readonly connections: number;
  readonly firstSeen: string;
  readonly lastSeen: string;
}

export interface RuleEvidence extends Tally {
  readonly ruleset: string;
  readonly rule: string;
  readonly examples: readonly string[];
}

export interface UncoveredFlow extends Tally {
  readonly source: string;
  readonly destination: string;
  readonly service: string;
  readonly decision: Decision;
  readonly reason: string;
}

/** A generated document, as written to the draft (fields at the top or under `spec`). */
export type GeneratedDocument = Readonly<Record<string, unknown>> & {
  readonly kind: string;
  readonly name: string;
  readonly spec?: Readonly<Record<string, unknown>>;
};

/** `POST /policy/generate`: the proposed draft, why each rule exists, and what it covers. */
export interface GenerateResult {
  readonly granularity: Granularity;
  readonly scope: unknown;
  readonly window: { readonly from: string; readonly to: string } | string | null;
  readonly documents: readonly GeneratedDocument[];
  readonly yaml: string;
  readonly evidence: readonly RuleEvidence[];
  readonly coverage: {
    readonly flows: { readonly inScope: number; readonly allowed: number };
    readonly connections: { readonly inScope: number; readonly allowed: number };
    readonly share: number;
    readonly notAllowed: readonly UncoveredFlow[];
  };
  readonly alreadyAllowed: readonly (Tally & { readonly by: string })[];
  /** Connection attempts enforcing agents blocked, left out of generation. */
  readonly blockedLeftOut: { readonly flows: number; readonly connections: number };
  readonly blockedByExisting: readonly (Tally & {
    readonly rule: string;
    readonly action: string;
    readonly examples?: readonly string[];
  })[];
  readonly unlabelled: readonly (Tally & {
    readonly workload: string;
    readonly missing: readonly string[];
  })[];
  readonly overriddenDenies: readonly { readonly rule: string; readonly existingRule: string }[];
  readonly counts: { readonly flows: number; readonly distinct: number; readonly inScope: number };
  readonly written: boolean;
}

/** `POST /policy/simulate`: the retained flows replayed against the draft. */
export interface SimulateResult {
  readonly window: { readonly from: string; readonly to: string } | string | null;
  readonly activeVersion: number | null;
  readonly newlyBlocked: { readonly flows: number; readonly connections: number };
  readonly newlyAllowed: { readonly flows: number; readonly connections: number };
  readonly byApplication: readonly {
    readonly application: string;
    readonly newlyBlocked: number | { readonly flows: number; readonly connections: number };
    readonly newlyAllowed: number | { readonly flows: number; readonly connections: number };
  }[];
  readonly changes: readonly FlowRow[];
  readonly truncated: boolean;
}
