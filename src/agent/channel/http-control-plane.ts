/**
 * The control-plane channel over HTTP(S), with node's own http client: one kept-alive
 * connection for the calls, one for the event stream. Every answer the agent acts on is
 * checked (check.ts); every failure becomes ControlPlaneUnavailable (retry later) or
 * ControlPlaneRefused (the control plane said no).
 */
import http from 'node:http';
import type { Schema } from '../check.js';
import {
  ControlPlaneAnswerInvalid,
  ControlPlaneRefused,
  ControlPlaneUnavailable,
  errorText,
} from '../errors.js';
import {
  compiledPolicy,
  errorAnswer,
  flowsAnswer,
  pairAnswer,
  policyNotice,
  policyStanding,
} from '../wire.js';
import type { ControlPlane, EventStreamHandlers } from './control-plane.js';
import { SseParser } from './sse.js';

export interface HttpControlPlaneOptions {
  /** The control plane's base URL, e.g. `https://cp.example:7480`. */
  readonly server: string;
  /** The agent's credential; null before pairing. */
  readonly credential: string | null;
  /** Extra CA certificates (PEM) to trust for an https control plane. */
  readonly ca?: string | Buffer;
  readonly timeoutMs?: number;
  /** The stream sends a keep-alive comment every 15 s: this long without one, it is dead. */
  readonly streamIdleMs?: number;
}

interface Answer {
  readonly status: number;
  readonly text: string;
}

/** Policies for large estates are big, but nothing the agent accepts is bigger than this. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/**
 * The channel to `options.server`. https (TLS, a megabyte and a half of the agent's memory)
 * is loaded only for an https URL.
 */
export async function httpControlPlane(options: HttpControlPlaneOptions): Promise<ControlPlane> {
  const base = new URL(options.server);
  if (base.protocol !== 'http:' && base.protocol !== 'https:')
    throw new Error(`--server: ${options.server} is not an http:// or https:// URL`);
  const secure = base.protocol === 'https:';
  const https = secure ? await import('node:https') : null;
  const request: typeof http.request = https ? https.request : http.request;
  const prefix = `${base.pathname.replace(/\/+$/, '')}/api/v1`;
  const url = base.origin;
  const timeoutMs = options.timeoutMs ?? 15_000;
  const streamIdleMs = options.streamIdleMs ?? 45_000;
  const tls = options.ca ? { ca: options.ca } : {};
  const agent = https
    ? new https.Agent({ keepAlive: true, maxSockets: 2, ...tls })
    : new http.Agent({ keepAlive: true, maxSockets: 2 });

  function headers(extra: Record<string, string> = {}): Record<string, string> {
    return {
      accept: 'application/json',
      ...(options.credential ? { authorization: `Bearer ${options.credential}` } : {}),
      ...extra,
    };
  }

  function send(
    method: string,
    path: string,
    body?: unknown,
    extra: Record<string, string> = {},
  ): Promise<Answer> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          protocol: base.protocol,
          hostname: base.hostname.replace(/^\[|\]$/g, ''),
          port: base.port || (secure ? 443 : 80),
          method,
          path: `${prefix}${path}`,
          agent,
          headers: headers({
            ...(payload !== undefined
              ? {
                  'content-type': 'application/json',
                  'content-length': String(Buffer.byteLength(payload)),
                }
              : {}),
            ...extra,
          }),
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_ANSWER_BYTES) {
              req.destroy(new Error(`answer larger than ${MAX_ANSWER_BYTES} bytes`));
              return;
            }
            chunks.push(c);
          });
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', (e) =>
            reject(new ControlPlaneUnavailable(url, errorText(e), { cause: e })),
          );
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (e) => reject(new ControlPlaneUnavailable(url, errorText(e), { cause: e })));
      req.end(payload);
    });
  }

  function judge(call: string, answer: Answer): void {
    if (answer.status >= 500 || answer.status === 0)
      throw new ControlPlaneUnavailable(url, `${call} answered ${answer.status}`);
    if (answer.status >= 400) {
      let code: string | null = null;
      let message = answer.text.slice(0, 300);
      try {
        const e = errorAnswer.safeParse(JSON.parse(answer.text));
        if (e.success) ({ code, message } = e.data.error);
      } catch {
        // not JSON: the raw text says what it can
      }
      throw new ControlPlaneRefused(call, answer.status, code, message);
    }
  }

  function parse<T>(call: string, answer: Answer, schema: Schema<T>): T {
    let value: unknown;
    try {
      value = JSON.parse(answer.text);
    } catch {
      throw new ControlPlaneAnswerInvalid(call, 'not JSON');
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success)
      throw new ControlPlaneAnswerInvalid(
        call,
        parsed.error.issues
          .slice(0, 3)
          .map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`)
          .join('; '),
      );
    return parsed.data;
  }

  async function call<T>(
    name: string,
    method: string,
    path: string,
    body: unknown,
    schema: Schema<T>,
  ): Promise<T> {
    const answer = await send(method, path, body);
    judge(name, answer);
    return parse(name, answer, schema);
  }

  async function fire(name: string, method: string, path: string, body: unknown): Promise<void> {
    judge(name, await send(method, path, body));
  }

  return {
    url,
    pair: (request) => call('pair', 'POST', '/agents/pair', request, pairAnswer),
    heartbeat: (request) => call('heartbeat', 'POST', '/agent/heartbeat', request, policyStanding),
    inventory: (report) => fire('inventory', 'PUT', '/agent/inventory', report),
    async policy(etag) {
      const answer = await send(
        'GET',
        '/agent/policy',
        undefined,
        etag ? { 'if-none-match': etag } : {},
      );
      if (answer.status === 304) return null;
      judge('policy', answer);
      return parse('policy', answer, compiledPolicy);
    },
    ack: (request) => fire('policy acknowledgement', 'POST', '/agent/policy/ack', request),
    async flows(batch) {
      const a = await call('flows', 'POST', '/agent/flows', batch, flowsAnswer);
      return { duplicate: a.duplicate };
    },
    tamper: (report) => fire('tamper report', 'POST', '/agent/tamper', report),
    flowsDropped: (report) => fire('dropped-flows report', 'POST', '/agent/flows-dropped', report),
    events: (handlers, signal) => openStream(handlers, signal),
  };

  function openStream(handlers: EventStreamHandlers, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return resolve();
      const req = request({
        protocol: base.protocol,
        hostname: base.hostname.replace(/^\[|\]$/g, ''),
        port: base.port || (secure ? 443 : 80),
        method: 'GET',
        path: `${prefix}/agent/events`,
        headers: headers({ accept: 'text/event-stream' }),
        timeout: timeoutMs,
        ...tls,
      });
      let settled = false;
      let idle: NodeJS.Timeout | undefined;
      const finish = (error: Error | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(idle);
        signal.removeEventListener('abort', onAbort);
        req.destroy();
        if (error) reject(error);
        else resolve();
      };
      const onAbort = () => finish(null);
      signal.addEventListener('abort', onAbort);
      const watchIdle = () => {
        clearTimeout(idle);
        idle = setTimeout(
          () =>
            finish(new ControlPlaneUnavailable(url, `event stream silent for ${streamIdleMs} ms`)),
          streamIdleMs,
        );
      };
      req.on('timeout', () =>
        finish(new ControlPlaneUnavailable(url, `no answer within ${timeoutMs} ms`)),
      );
      req.on('error', (e) => finish(new ControlPlaneUnavailable(url, errorText(e), { cause: e })));
      req.on('response', (res) => {
        if (res.statusCode !== 200) {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c.slice(0, 2000)));
          res.on('end', () => {
            try {
              judge('event stream', { status: res.statusCode ?? 0, text });
              finish(new ControlPlaneUnavailable(url, `event stream answered ${res.statusCode}`));
            } catch (e) {
              finish(e as Error);
            }
          });
          return;
        }
        req.setTimeout(0);
        watchIdle();
        handlers.onOpen();
        const parser = new SseParser();
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          watchIdle();
          for (const e of parser.push(chunk)) {
            if (e.event !== 'policy') continue;
            try {
              handlers.onPolicy(parse('event stream', { status: 200, text: e.data }, policyNotice));
            } catch (err) {
              finish(err as Error);
            }
          }
        });
        res.on('end', () => finish(new ControlPlaneUnavailable(url, 'event stream ended')));
        res.on('error', (e) =>
          finish(new ControlPlaneUnavailable(url, errorText(e), { cause: e })),
        );
      });
      req.end();
    });
  }
}
