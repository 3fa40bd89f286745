/**
 * The push half of policy delivery: a server-sent-event stream per connected agent. It
 * opens with the workload's current revision, then sends a `policy` event for every new
 * revision the hub announces for that workload, and a comment every so often so proxies
 * and the agent can tell a quiet stream from a dead one. The agent fetches
 * `GET /agent/policy` when a revision is newer than the one it holds (and polls that route
 * when it cannot hold a stream open).
 */
import type { FastifyReply } from 'fastify';
import type { PolicyHub } from './distribution.js';

export const KEEP_ALIVE_MS = 15_000;

export interface PolicyNotice {
  readonly revision: number | null;
  readonly policyVersion?: number | null;
}

interface Stream {
  readonly agentId: string;
  end(): void;
}

/** Every open agent stream, so revocation and shutdown can end them. */
export class AgentStreams {
  private readonly open = new Set<Stream>();

  get size(): number {
    return this.open.size;
  }

  /**
   * Takes over the reply and streams events until the client goes away (or the stream is
   * ended by `endFor`/`endAll`). `current` gives the opening event.
   */
  serve(
    reply: FastifyReply,
    hub: PolicyHub,
    agentId: string,
    workload: string,
    current: PolicyNotice,
    keepAliveMs = KEEP_ALIVE_MS,
  ): void {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    const send = (notice: PolicyNotice): void => {
      const id = notice.revision === null ? '' : `id: ${notice.revision}\n`;
      res.write(`${id}event: policy\ndata: ${JSON.stringify({ workload, ...notice })}\n\n`);
    };
    // Tell the client how long to wait before reconnecting, then where it stands.
    res.write('retry: 5000\n\n');
    send(current);
    const onRevision = (w: string, revision: number): void => {
      if (w === workload) send({ revision });
    };
    hub.on('revision', onRevision);
    const timer = setInterval(() => res.write(': keep-alive\n\n'), keepAliveMs);
    timer.unref();
    let closed = false;
    const stream: Stream = {
      agentId,
      end: () => {
        cleanup();
        res.end();
      },
    };
    const cleanup = (): void => {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      hub.off('revision', onRevision);
      this.open.delete(stream);
    };
    this.open.add(stream);
    res.on('close', cleanup);
    res.on('error', cleanup);
  }

  /** Ends the streams of one agent (its credential was revoked). */
  endFor(agentId: string): void {
    for (const s of [...this.open]) if (s.agentId === agentId) s.end();
  }

  endAll(): void {
    for (const s of [...this.open]) s.end();
  }
}
