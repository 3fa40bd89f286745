/**
 * A server-sent events parser (the WHATWG event-stream format): `event:`, `data:` (joined
 * by newlines), `id:`, `retry:`, comments (`: keep-alive`), events ended by a blank line,
 * lines ended by LF, CRLF or CR, split anywhere across chunks.
 *
 * Pure: no I/O.
 */

export interface ServerSentEvent {
  readonly event: string;
  readonly data: string;
  readonly id?: string;
}

const MAX_EVENT = 1 << 20;

export class SseParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];
  private id: string | undefined;
  private size = 0;
  /** The reconnection delay the server asked for, if it did. */
  retryMs: number | undefined;

  /** Feeds a chunk; returns the events it completed. */
  push(chunk: string): ServerSentEvent[] {
    const out: ServerSentEvent[] = [];
    this.buffer += chunk;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buffer);
      if (!m) break;
      // A lone CR at the very end may be the first half of a CRLF split across chunks.
      if (m[0] === '\r' && m.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      const done = this.line(line);
      if (done) out.push(done);
    }
    // A stream that never ends its lines cannot grow the agent's memory without bound.
    if (this.buffer.length > MAX_EVENT) this.buffer = '';
    return out;
  }

  private line(line: string): ServerSentEvent | null {
    if (line === '') {
      const hasData = this.data.length > 0;
      const e: ServerSentEvent = {
        event: this.event || 'message',
        data: this.data.join('\n'),
        ...(this.id !== undefined ? { id: this.id } : {}),
      };
      this.event = '';
      this.data = [];
      this.size = 0;
      return hasData ? e : null;
    }
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.event = value;
        break;
      case 'data':
        this.size += value.length;
        if (this.size <= MAX_EVENT) this.data.push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.id = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
    }
    return null;
  }
}
