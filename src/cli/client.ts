/**
 * The CLI's view of a control plane: `BULKHEAD_URL` (default http://127.0.0.1:7480) and
 * `BULKHEAD_TOKEN`. The API's JSON errors become CliErrors with their code and message.
 */
import { CliError } from './io.js';

export const DEFAULT_URL = 'http://127.0.0.1:7480';

interface ApiErrorBody {
  error?: { code?: string; message?: string; details?: { path: string; message: string }[] };
}

export class ApiClient {
  readonly base: string;
  constructor(
    url: string = process.env.BULKHEAD_URL || DEFAULT_URL,
    private readonly token: string | undefined = process.env.BULKHEAD_TOKEN,
  ) {
    this.base = url.replace(/\/+$/, '');
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = `${this.base}/api/v1${path}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (e) {
      const cause = (e as { cause?: { message?: string } }).cause?.message ?? (e as Error).message;
      throw new CliError(
        `cannot reach the control plane at ${this.base} (${cause}): is it running? Set BULKHEAD_URL to its address`,
      );
    }
    const text = await response.text();
    let parsed: unknown = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (!response.ok) {
      const err = (parsed as ApiErrorBody | null)?.error;
      if (!err?.code) {
        throw new CliError(
          `${method} ${url} answered HTTP ${response.status}${text ? `: ${text.slice(0, 200)}` : ''}`,
        );
      }
      const details =
        err.details && err.details.length > 1
          ? `\n${err.details.map((d) => `  ${d.path}: ${d.message}`).join('\n')}`
          : '';
      const hint =
        err.code === 'UNAUTHENTICATED' && !this.token ? ' (set BULKHEAD_TOKEN to an API key)' : '';
      throw new CliError(`${err.code}: ${err.message ?? ''}${hint}${details}`);
    }
    return parsed as T;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }
  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }
}
