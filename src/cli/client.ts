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

  /**
   * Sends one request and hands back the answer unread (for streams and text uploads); an
   * unreachable server and an error answer become CliErrors.
   */
  async send(
    method: string,
    path: string,
    body?: { readonly text: string; readonly contentType: string },
  ): Promise<Response> {
    const url = `${this.base}/api/v1${path}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body) headers['content-type'] = body.contentType;
    let response: Response;
    try {
      response = await fetch(url, { method, headers, ...(body ? { body: body.text } : {}) });
    } catch (e) {
      const cause = (e as { cause?: { message?: string } }).cause?.message ?? (e as Error).message;
      throw new CliError(
        `cannot reach the control plane at ${this.base} (${cause}): is it running? Set BULKHEAD_URL to its address`,
      );
    }
    if (!response.ok) throw this.answerError(method, url, response.status, await response.text());
    return response;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.send(
      method,
      path,
      body === undefined
        ? undefined
        : { text: JSON.stringify(body), contentType: 'application/json' },
    );
    const text = await response.text();
    try {
      return (text ? JSON.parse(text) : null) as T;
    } catch {
      return null as T;
    }
  }

  private answerError(method: string, url: string, status: number, text: string): CliError {
    let err: NonNullable<ApiErrorBody['error']> | undefined;
    try {
      err = (JSON.parse(text) as ApiErrorBody | null)?.error;
    } catch {
      err = undefined;
    }
    if (!err?.code) {
      return new CliError(
        `${method} ${url} answered HTTP ${status}${text ? `: ${text.slice(0, 200)}` : ''}`,
      );
    }
    const details =
      err.details && err.details.length > 1
        ? `\n${err.details.map((d) => `  ${d.path}: ${d.message}`).join('\n')}`
        : '';
    const hint =
      err.code === 'UNAUTHENTICATED' && !this.token ? ' (set BULKHEAD_TOKEN to an API key)' : '';
    return new CliError(`${err.code}: ${err.message ?? ''}${hint}${details}`);
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }
  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }
}
