/**
 * Fake adapters for the agent's unit tests: a kernel firewall that holds what was loaded and
 * can be tampered with, a conntrack that emits recorded lines, a host, and a control plane
 * that can be switched off. Each records what the agent asked of it, in one shared order.
 */
import { readFileSync } from 'node:fs';
import { agentLogger } from '../../../src/agent/log.js';
import type { ConntrackAdapter } from '../../../src/agent/adapters/conntrack.js';
import type { FirewallAdapter } from '../../../src/agent/adapters/firewall.js';
import type { HostAdapter } from '../../../src/agent/adapters/host.js';
import type { ChildExit, LineStream } from '../../../src/agent/adapters/lines.js';
import type {
  ControlPlane,
  EventStreamHandlers,
} from '../../../src/agent/channel/control-plane.js';
import { ControlPlaneRefused, ControlPlaneUnavailable } from '../../../src/agent/errors.js';
import type { SocketEntry } from '../../../src/agent/parse/ss.js';
import type {
  AckRequest,
  CompiledPolicy,
  FlowBatch,
  FlowsDroppedReport,
  HeartbeatRequest,
  Inventory,
  InterfaceReport,
  PairRequest,
  PolicyNotice,
  TamperReport,
} from '../../../src/agent/wire.js';

export const fixture = (name: string): string =>
  readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8');

/** The recorded `nft -j list table inet bulkhead` of shop-db-1's table. */
export const TABLE_JSON = (): unknown => JSON.parse(fixture('nft-j-list-table.out')) as unknown;

export const silentLog = agentLogger('silent');

/** Every fake call in order, e.g. `firewall.load`, `cp.heartbeat`. */
export type Journal = string[];

function stream(): LineStream & { end(): void } {
  let end!: (exit: ChildExit) => void;
  const ended = new Promise<ChildExit>((r) => (end = r));
  return {
    stop: () => end({ code: null, signal: 'SIGTERM', stderr: '' }),
    ended,
    end: () => end({ code: 1, signal: null, stderr: 'died' }),
  };
}

export class FakeFirewall implements FirewallAdapter {
  readonly loads: string[] = [];
  /** What `readTable` returns: the kernel's table. */
  kernel: unknown = null;
  /** Makes the next loads fail (nft refusing a script), one error per load. */
  failures: Error[] = [];
  /** Whether the watch tells the agent's loads from others' (it never reports them here). */
  recognisesOwnLoads = false;
  private readonly watchers = new Set<() => void>();

  constructor(
    private readonly journal: Journal = [],
    /** What a load leaves in the kernel. */
    readonly afterLoad: (script: string) => unknown = (script) =>
      script.includes('table inet bulkhead {') || script.startsWith('# Bulkhead update')
        ? TABLE_JSON()
        : null,
  ) {}

  async load(script: string): Promise<void> {
    this.journal.push('firewall.load');
    const failure = this.failures.shift();
    if (failure) throw failure;
    this.loads.push(script);
    this.kernel = this.afterLoad(script);
  }

  async readTable(): Promise<unknown> {
    this.journal.push('firewall.read');
    return this.kernel === null ? null : structuredClone(this.kernel);
  }

  watch(onChange: () => void): LineStream {
    this.watchers.add(onChange);
    const s = stream();
    void s.ended.then(() => this.watchers.delete(onChange));
    return s;
  }

  /** Someone changes the kernel's table behind the agent's back. */
  tamper(change: (kernel: unknown) => unknown): void {
    this.kernel = change(this.kernel);
    for (const w of this.watchers) w();
  }
}

export class FakeConntrack implements ConntrackAdapter {
  /** What a dump lists. */
  table: string[] = [];
  private onLine: ((line: string) => void) | null = null;

  events(onLine: (line: string) => void): LineStream {
    this.onLine = onLine;
    return stream();
  }

  emit(...lines: string[]): void {
    for (const l of lines) this.onLine?.(l);
  }

  async dump(onLine: (line: string) => void): Promise<void> {
    for (const l of this.table) onLine(l);
  }

  async enableAccounting(): Promise<boolean> {
    return false;
  }
}

export class FakeHost implements HostAdapter {
  interfaceList: InterfaceReport[] = [
    { name: 'lo', addresses: ['127.0.0.1/8', '::1/128'] },
    { name: 'eth0', addresses: ['198.18.250.1/24', 'fe80::1/64'] },
  ];
  socketList: SocketEntry[] = [];
  users: string[] = ['alice'];

  constructor(readonly name = 'db-1') {}

  hostname(): string {
    return this.name;
  }
  async osDescription(): Promise<string | undefined> {
    return 'Debian GNU/Linux 12 (bookworm); Linux 6.1.0';
  }
  async interfaces(): Promise<InterfaceReport[]> {
    return this.interfaceList;
  }
  async sockets(): Promise<SocketEntry[]> {
    return this.socketList;
  }
  async processDetails(pid: number): Promise<{ path?: string; user?: string }> {
    return { path: `/usr/bin/proc-${pid}`, user: 'root' };
  }
  async loggedInUsers(): Promise<string[]> {
    return this.users;
  }
  async resolve(name: string): Promise<string[]> {
    return name === 'cp.example' ? ['198.18.0.1'] : [];
  }
}

/** A compiled policy for the fake control plane to hand out, from the recorded table's workload. */
export function policyOf(
  revision: number,
  nft: CompiledPolicy['nft'],
  policyVersion = revision,
): CompiledPolicy {
  return { workload: nft.workload, policyVersion, revision, mode: nft.mode, nft, warnings: [] };
}

export class FakeControlPlane implements ControlPlane {
  readonly url = 'http://198.18.0.1:7480';
  available = true;
  /** Answer to pairing: an error code, or success. */
  pairRefusal: string | null = null;
  current: CompiledPolicy | null = null;
  readonly acks: AckRequest[] = [];
  readonly heartbeats: HeartbeatRequest[] = [];
  readonly inventories: Inventory[] = [];
  readonly pairings: PairRequest[] = [];
  readonly batches: FlowBatch[] = [];
  /** Batch ids stored, as the server keeps them: once each. */
  readonly stored = new Map<string, FlowBatch>();
  readonly tampers: TamperReport[] = [];
  readonly drops: FlowsDroppedReport[] = [];
  /** Loses the answer to the next flows call after storing the batch (a timeout). */
  loseNextFlowsAnswer = false;
  /** While set, flows calls wait for it (a slow control plane). */
  flowsGate: Promise<void> | null = null;
  private streams = new Set<EventStreamHandlers>();

  constructor(private readonly journal: Journal = []) {}

  private reach(call: string): void {
    this.journal.push(`cp.${call}`);
    if (!this.available) throw new ControlPlaneUnavailable(this.url, 'connect ECONNREFUSED');
  }

  async pair(request: PairRequest) {
    this.reach('pair');
    if (this.pairRefusal)
      throw new ControlPlaneRefused(
        'pair',
        401,
        this.pairRefusal,
        'the activation code is not valid',
      );
    this.pairings.push(request);
    return {
      agentId: 'agent-1',
      credential: 'bha_secret_credential',
      workload: request.hostname,
      pollIntervalSeconds: 30,
    };
  }
  async heartbeat(request: HeartbeatRequest) {
    this.reach('heartbeat');
    this.heartbeats.push(request);
    return {
      workload: 'db-1',
      revision: this.current?.revision ?? null,
      policyVersion: this.current?.policyVersion ?? null,
      mode: this.current?.mode ?? 'visibility',
      pollIntervalSeconds: 30,
    };
  }
  async inventory(report: Inventory) {
    this.reach('inventory');
    this.inventories.push(report);
  }
  async policy(etag: string | null) {
    this.reach('policy');
    if (!this.current) throw new ControlPlaneRefused('policy', 404, 'NOT_FOUND', 'no policy');
    const tags = (etag ?? '').split(',').map((t) => t.trim());
    return tags.includes(`"${this.current.revision}"`) ? null : this.current;
  }
  async ack(request: AckRequest) {
    this.reach('ack');
    this.acks.push(request);
  }
  async flows(batch: FlowBatch) {
    this.reach('flows');
    if (this.flowsGate) await this.flowsGate;
    this.batches.push(batch);
    const duplicate = this.stored.has(batch.batchId);
    if (!duplicate) this.stored.set(batch.batchId, batch);
    if (this.loseNextFlowsAnswer) {
      this.loseNextFlowsAnswer = false;
      throw new ControlPlaneUnavailable(this.url, 'timed out');
    }
    return { duplicate };
  }
  async tamper(report: TamperReport) {
    this.reach('tamper');
    this.tampers.push(report);
  }
  async flowsDropped(report: FlowsDroppedReport) {
    this.reach('flowsDropped');
    this.drops.push(report);
  }
  async events(handlers: EventStreamHandlers, signal: AbortSignal): Promise<void> {
    this.reach('events');
    this.streams.add(handlers);
    handlers.onOpen();
    await new Promise<void>((resolve, reject) => {
      const check = setInterval(() => {
        if (!this.available) {
          clearInterval(check);
          reject(new ControlPlaneUnavailable(this.url, 'event stream ended'));
        }
      }, 5);
      signal.addEventListener('abort', () => {
        clearInterval(check);
        resolve();
      });
    }).finally(() => this.streams.delete(handlers));
  }
  /** Publishes a new revision, as a provision does. */
  publish(policy: CompiledPolicy): void {
    this.current = policy;
    const notice: PolicyNotice = { workload: policy.workload, revision: policy.revision };
    for (const s of this.streams) s.onPolicy(notice);
  }
  get streamsOpen(): number {
    return this.streams.size;
  }
}

/** Waits until `check` holds (polling), or fails with `what`. */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 3000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
