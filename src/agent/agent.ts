/**
 * The agent core: what `bulkhead agent` does, with every platform part (firewall,
 * conntrack, host, control-plane channel, state directory) handed in as an adapter.
 *
 * Start-up order is the fail-safe:
 *   1. re-apply the last applied policy from the state directory, before connecting
 *      anywhere, so a restart (or a reboot) never leaves the host open while the control
 *      plane is away;
 *   2. start telemetry and the tamper watch;
 *   3. pair, if there is no credential yet (the only time the activation code is used);
 *   4. hold the event stream open (reconnecting with backoff and jitter), heartbeat, poll
 *      when the stream is down, report inventory when it changes, flush flow summaries
 *      every interval to the spool and deliver the spool when the control plane answers.
 *
 * Losing the control plane changes nothing on the host: the last policy stays enforced,
 * tampering is still repaired, flows are still spooled.
 */
import type { Logger } from './log.js';
import { isIP } from 'node:net';
import type { ConntrackAdapter } from './adapters/conntrack.js';
import type { FirewallAdapter } from './adapters/firewall.js';
import type { HostAdapter } from './adapters/host.js';
import type { LineStream } from './adapters/lines.js';
import { Backoff } from './backoff.js';
import type { ControlPlane } from './channel/control-plane.js';
import {
  AgentConfigError,
  ControlPlaneRefused,
  ControlPlaneUnavailable,
  errorText,
} from './errors.js';
import { Enforcer, TABLE_NAME, type TamperFinding } from './firewall/enforcer.js';
import { takeInventory } from './inventory.js';
import { Outbox } from './outbox.js';
import { workloadAddresses } from './parse/ip-addr.js';
import { PolicySync } from './policy-sync.js';
import type { StateDir } from './state/state-dir.js';
import { FlowCollector } from './telemetry/collector.js';
import type { Endpoint, InterfaceReport, SavedCredential } from './wire.js';

export interface AgentSettings {
  readonly server: string;
  readonly activationCode: string | null;
  readonly hostname: string | null;
  readonly flushIntervalMs: number;
  readonly heartbeatIntervalMs: number;
  readonly inventoryIntervalMs: number;
  readonly conntrackDumpIntervalMs: number;
  readonly socketScanIntervalMs: number;
  readonly reconnectMaxMs: number;
}

export interface AgentParts {
  readonly firewall: FirewallAdapter;
  readonly conntrack: ConntrackAdapter;
  readonly host: HostAdapter;
  readonly state: StateDir;
  /** The channel to the control plane, with the agent's credential (null before pairing). */
  readonly connect: (credential: string | null) => Promise<ControlPlane>;
  readonly log: Logger;
  readonly random?: () => number;
}

/** What the agent is doing, for logs and tests. */
export interface AgentStatus {
  readonly paired: boolean;
  readonly workload: string | null;
  readonly streamOpen: boolean;
  readonly appliedRevision: number | null;
  readonly mode: string | null;
  readonly spooledBatches: number;
  readonly queuedReports: number;
}

const DEFAULT_POLL_MS = 30_000;
const TAMPER_DEBOUNCE_MS = 100;
/**
 * Least time between the checks the watch asks for: on a host whose other tables churn, nft
 * also reports changes it cannot attribute to a table, and each check reads the table.
 */
const TAMPER_CHECK_GAP_MS = 1000;
const VERIFY_EVERY_FLUSHES = 6;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

export class Agent {
  readonly enforcer: Enforcer;
  private readonly collector: FlowCollector;
  private readonly outbox: Outbox;
  private readonly sync: PolicySync;
  private readonly stopping = new AbortController();
  private readonly timers: NodeJS.Timeout[] = [];
  /** Periodic tasks under way: stop waits for them, so none writes to the state after it. */
  private readonly tasks = new Set<Promise<void>>();
  private credential: SavedCredential | null = null;
  private cp: ControlPlane | null = null;
  private endpoints: readonly Endpoint[] = [];
  private interfaces: readonly InterfaceReport[] = [];
  private streamOpen = false;
  private pollMs = DEFAULT_POLL_MS;
  private lastInventory: string | null = null;
  private deliveryBackoff: Backoff;
  private deliveryNotBefore = 0;
  private watch: LineStream | null = null;
  private tamperTimer: NodeJS.Timeout | null = null;
  private tamperCheckedAt = 0;
  private flushing = false;
  private flushes = 0;
  private loops: Promise<void>[] = [];
  private fatal: ((e: Error) => void) | null = null;

  constructor(
    private readonly settings: AgentSettings,
    private readonly parts: AgentParts,
  ) {
    this.enforcer = new Enforcer(parts.firewall, {
      onFullLoad: () => this.collector.tableReloaded(),
      watchRecognisesLoads: () => this.watch !== null && parts.firewall.recognisesOwnLoads,
    });
    this.collector = new FlowCollector(parts.conntrack, parts.host, parts.log, {
      dumpIntervalMs: settings.conntrackDumpIntervalMs,
      socketScanIntervalMs: settings.socketScanIntervalMs,
    });
    this.outbox = new Outbox(parts.state, parts.log);
    this.deliveryBackoff = this.backoff();
    this.sync = new PolicySync({
      enforcer: this.enforcer,
      state: parts.state,
      log: parts.log,
      controlPlane: () => this.cp,
      endpoints: () => this.endpoints,
      onApplied: (policy, outcome) => {
        if (outcome.ok) this.collector.setMode(policy.mode);
      },
    });
  }

  get status(): AgentStatus {
    const applied = this.enforcer.applied;
    return {
      paired: this.credential !== null,
      workload: this.credential?.workload ?? null,
      streamOpen: this.streamOpen,
      appliedRevision: applied?.policy.revision ?? null,
      mode: applied?.policy.mode ?? null,
      spooledBatches: this.outbox.pending.batches,
      queuedReports: this.outbox.pending.reports,
    };
  }

  private get log(): Logger {
    return this.parts.log;
  }

  private backoff(): Backoff {
    return new Backoff({
      initialMs: Math.min(500, this.settings.reconnectMaxMs),
      maxMs: this.settings.reconnectMaxMs,
      ...(this.parts.random ? { random: this.parts.random } : {}),
    });
  }

  private get hostname(): string {
    return this.settings.hostname ?? this.parts.host.hostname();
  }

  /**
   * Runs the agent until `stop()`; rejects if it cannot go on (it cannot pair, or the
   * activation code was refused). Enforcement starts before this first awaits the network.
   */
  async run(): Promise<void> {
    const { state, log } = this.parts;

    // 1. Enforce before anything else: the saved policy, with the channel it kept open.
    const saved = await state.readPolicy().catch((e: unknown) => {
      log.error({ err: errorText(e) }, 'cannot read the saved policy; nothing to re-apply');
      return null;
    });
    if (saved) {
      this.endpoints = saved.controlPlane;
      const outcome = await this.enforcer.apply(saved.policy, saved.controlPlane, { full: true });
      if (outcome.ok) {
        this.collector.setMode(saved.policy.mode);
        log.info(
          { revision: saved.policy.revision, mode: saved.policy.mode },
          'enforcing the saved policy (before connecting)',
        );
      } else log.error({ err: outcome.error }, 'cannot re-apply the saved policy');
    }
    await this.resolveControlPlane(saved?.controlPlane ?? []);
    if (saved && this.enforcer.applied && !sameEndpoints(saved.controlPlane, this.endpoints)) {
      // The control plane moved (a new --server, or its name resolves elsewhere now).
      const outcome = await this.enforcer.apply(saved.policy, this.endpoints);
      if (!outcome.ok)
        log.error({ err: outcome.error }, 'cannot open the channel to the control plane');
    }

    // Only now what needs the network: a damaged or missing credential must not stand
    // between the host and its last policy.
    this.credential = await state.readCredential().catch((e: unknown) => {
      log.error({ err: errorText(e) }, 'cannot read the credential');
      return null;
    });
    if (!this.credential && !this.settings.activationCode)
      throw new AgentConfigError(
        `not paired yet (no credential in ${state.path}): give --activation-code (or BULKHEAD_AGENT_ACTIVATION_CODE)`,
      );
    if (this.credential && this.credential.server !== this.settings.server)
      log.warn(
        { paired: this.credential.server, server: this.settings.server },
        'the state directory was paired with another control plane URL; using its credential with --server',
      );

    // 2. Telemetry and the tamper watch.
    this.interfaces = await this.parts.host.interfaces().catch((e: unknown) => {
      log.warn({ err: errorText(e) }, 'cannot list interfaces');
      return [];
    });
    this.collector.setInterfaces(this.interfaces);
    this.collector.start();
    this.startTamperWatch();
    this.every(this.settings.flushIntervalMs, () => this.flush());

    const stopped = new Promise<void>((resolve, reject) => {
      this.fatal = reject;
      this.stopping.signal.addEventListener('abort', () => resolve());
    });
    // 3. and 4., in the background: a dead control plane must not hold up enforcement.
    this.loops.push(this.connectAndServe().catch((e: unknown) => this.fatal?.(e as Error)));
    return stopped;
  }

  /** Stops every loop and child; the table stays in the kernel, enforced. */
  async stop(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    this.stopping.abort();
    for (const t of this.timers) clearInterval(t);
    if (this.tamperTimer) clearTimeout(this.tamperTimer);
    this.watch?.stop();
    this.collector.stop();
    await Promise.allSettled(this.loops);
    await Promise.allSettled(this.tasks);
    // What was collected since the last flush goes to the spool, not to waste.
    await this.flush(true).catch(() => undefined);
  }

  private every(ms: number, work: () => Promise<unknown>): void {
    this.timers.push(
      setInterval(() => {
        const task = work().then(
          () => undefined,
          (e: unknown) => this.log.warn({ err: errorText(e) }, 'periodic task failed'),
        );
        this.tasks.add(task);
        void task.finally(() => this.tasks.delete(task));
      }, ms),
    );
  }

  /** The control plane's addresses, for the exception that keeps its channel open. */
  private async resolveControlPlane(fallback: readonly Endpoint[]): Promise<void> {
    const url = new URL(this.settings.server);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    try {
      const addresses = isIP(host) ? [host] : await this.parts.host.resolve(host);
      this.endpoints = addresses.map((address) => ({ address, port }));
    } catch (e) {
      this.endpoints = fallback;
      this.log.warn(
        { err: errorText(e), using: fallback },
        `cannot resolve ${host}; keeping the control-plane addresses saved with the policy`,
      );
    }
  }

  private async connectAndServe(): Promise<void> {
    const signal = this.stopping.signal;
    if (!this.credential) await this.pair();
    if (signal.aborted || !this.credential) return;
    this.cp = await this.parts.connect(this.credential.credential);
    this.every(this.settings.heartbeatIntervalMs, () => this.heartbeat());
    this.every(this.settings.inventoryIntervalMs, () => this.reportInventory());
    this.timers.push(
      setInterval(
        () => {
          if (!this.streamOpen) void this.sync.request('poll');
        },
        Math.min(this.pollMs, DEFAULT_POLL_MS),
      ),
    );
    const backoff = this.backoff();
    let warned = false;
    while (!signal.aborted) {
      try {
        await this.cp.events(
          {
            onOpen: () => {
              backoff.reset();
              warned = false;
              this.connected();
            },
            onPolicy: (notice) => {
              if (
                notice.revision !== null &&
                notice.revision !== this.enforcer.applied?.policy.revision
              )
                void this.sync.request(`event: revision ${notice.revision}`);
            },
          },
          signal,
        );
      } catch (e) {
        const level = warned ? 'debug' : 'warn';
        warned = true;
        this.log[level](
          { err: errorText(e) },
          'event stream down; enforcing the last policy while reconnecting',
        );
        if (e instanceof ControlPlaneRefused && (e.status === 401 || e.status === 403))
          this.log.error('the control plane refuses this agent credential (revoked?)');
      }
      if (this.streamOpen) this.log.info('event stream closed');
      this.streamOpen = false;
      if (signal.aborted) break;
      await sleep(backoff.next(), signal);
    }
  }

  /** The control plane answers again: catch up on everything. */
  private connected(): void {
    this.streamOpen = true;
    this.log.info({ server: this.cp?.url }, 'connected to the control plane');
    this.deliveryBackoff.reset();
    this.deliveryNotBefore = 0;
    void this.sync.request('connected');
    void this.heartbeat();
    void this.reportInventory();
    void this.deliver();
  }

  private async pair(): Promise<void> {
    const { log, state } = this.parts;
    const signal = this.stopping.signal;
    const code = this.settings.activationCode!;
    const cp = await this.parts.connect(null);
    const backoff = this.backoff();
    while (!signal.aborted) {
      try {
        const sockets = await this.collector.scan();
        const inventory = await takeInventory(
          this.parts.host,
          this.hostname,
          this.interfaces,
          sockets,
        );
        const addresses = workloadAddresses(inventory.interfaces);
        if (addresses.length === 0)
          throw new ControlPlaneUnavailable(cp.url, 'this host has no address to pair with yet');
        const answer = await cp.pair({ activationCode: code, addresses, ...inventory });
        this.credential = {
          agentId: answer.agentId,
          credential: answer.credential,
          workload: answer.workload,
          server: this.settings.server,
          pairedAt: new Date().toISOString(),
        };
        await state.writeCredential(this.credential);
        this.pollMs = answer.pollIntervalSeconds * 1000;
        this.lastInventory = JSON.stringify(inventory);
        log.info(
          { agentId: answer.agentId, workload: answer.workload },
          'paired with the control plane',
        );
        return;
      } catch (e) {
        if (e instanceof ControlPlaneRefused)
          throw new AgentConfigError(`pairing failed: ${e.message}`);
        log.warn({ err: errorText(e) }, 'cannot pair yet; retrying');
      }
      await sleep(backoff.next(), signal);
    }
  }

  private heartbeatStatus(): string {
    return this.sync.failing ? 'apply-failed' : 'ok';
  }

  private async heartbeat(): Promise<void> {
    if (!this.cp) return;
    const applied = this.enforcer.applied;
    try {
      const standing = await this.cp.heartbeat({
        ...(applied
          ? {
              appliedRevision: applied.policy.revision,
              appliedVersion: applied.policy.policyVersion,
            }
          : {}),
        status: this.heartbeatStatus(),
      });
      this.pollMs = standing.pollIntervalSeconds * 1000;
      if (standing.revision !== null && standing.revision !== applied?.policy.revision)
        void this.sync.request('heartbeat');
      // The stream may still be reconnecting; the spool need not wait for it.
      if (!this.streamOpen) void this.deliver();
    } catch (e) {
      this.log.debug({ err: errorText(e) }, 'heartbeat failed');
    }
  }

  private async reportInventory(): Promise<void> {
    const cp = this.cp;
    if (!cp) return;
    try {
      this.interfaces = await this.parts.host.interfaces();
      this.collector.setInterfaces(this.interfaces);
      const sockets = await this.collector.scan();
      const inventory = await takeInventory(
        this.parts.host,
        this.hostname,
        this.interfaces,
        sockets,
      );
      const text = JSON.stringify(inventory);
      if (text === this.lastInventory) return;
      await cp.inventory(inventory);
      this.lastInventory = text;
      this.log.info(
        { listening: inventory.listening.length, interfaces: inventory.interfaces.length },
        'reported inventory',
      );
    } catch (e) {
      this.log.debug({ err: errorText(e) }, 'inventory not reported');
    }
  }

  private async deliver(): Promise<void> {
    const cp = this.cp;
    if (!cp || Date.now() < this.deliveryNotBefore) return;
    const result = await this.outbox.deliver(cp);
    if (result === 'delivered') {
      this.deliveryBackoff.reset();
      this.deliveryNotBefore = 0;
    } else this.deliveryNotBefore = Date.now() + this.deliveryBackoff.next();
  }

  /** Every flush interval: check the table, turn the interval's flows into a spooled batch, deliver. */
  private async flush(final = false): Promise<void> {
    if (this.flushing && !final) return;
    this.flushing = true;
    try {
      let listing = null;
      try {
        // The ruleset watch finds tampering at once; the flush double-checks now and then,
        // and every time while the watch is down.
        const verify = this.watch === null || ++this.flushes % VERIFY_EVERY_FLUSHES === 0;
        const inspection = await this.enforcer.inspect({ verify });
        listing = inspection.listing;
        if (inspection.tamper) await this.tampered(inspection.tamper);
      } catch (e) {
        this.log.warn({ err: errorText(e) }, 'cannot read the firewall table');
      }
      const { summaries, overflow } = this.collector.drain(listing);
      if (overflow > 0)
        this.log.warn(
          { overflow },
          'too many distinct flows in one interval; some were not summarised',
        );
      if (summaries.length > 0) await this.outbox.spool(summaries);
      if (!final) await this.deliver();
    } finally {
      this.flushing = false;
    }
  }

  private startTamperWatch(): void {
    if (this.stopping.signal.aborted) return;
    const check = () => {
      if (this.tamperTimer) return;
      const wait = Math.max(
        TAMPER_DEBOUNCE_MS,
        this.tamperCheckedAt + TAMPER_CHECK_GAP_MS - Date.now(),
      );
      this.tamperTimer = setTimeout(() => {
        this.tamperTimer = null;
        this.tamperCheckedAt = Date.now();
        this.enforcer
          .inspect({ verify: true, changedByOthers: true })
          .then((i) => (i.tamper ? this.tampered(i.tamper) : undefined))
          .catch((e: unknown) => this.log.warn({ err: errorText(e) }, 'tamper check failed'));
      }, wait);
    };
    try {
      this.watch = this.parts.firewall.watch(check);
    } catch (e) {
      this.log.error(
        { err: errorText(e) },
        'cannot watch the ruleset; tampering is found at each flush',
      );
      return;
    }
    void this.watch.ended
      .then(
        () => 'exited',
        (e: unknown) => errorText(e),
      )
      .then((why) => {
        this.watch = null;
        if (this.stopping.signal.aborted) return;
        this.log.warn({ why }, 'ruleset watch stopped; checking the table and watching again');
        check();
        const t = setTimeout(() => this.startTamperWatch(), 1000);
        this.timers.push(t);
      });
  }

  private async tampered(finding: TamperFinding): Promise<void> {
    const applied = this.enforcer.applied;
    this.log[finding.restored ? 'warn' : 'error'](
      { differences: finding.differences, restored: finding.restored, err: finding.error },
      `table ${TABLE_NAME} was tampered with${finding.restored ? '; restored it' : ' and cannot be restored'}`,
    );
    await this.outbox.report({
      kind: 'tamper',
      report: {
        detectedAt: finding.detectedAt,
        table: TABLE_NAME,
        kind: finding.kind,
        differences: finding.differences.slice(0, 50).map((d) => d.slice(0, 512)),
        restored: finding.restored,
        ...(finding.error !== undefined ? { error: finding.error.slice(0, 4096) } : {}),
        ...(applied
          ? { revision: applied.policy.revision, policyVersion: applied.policy.policyVersion }
          : {}),
      },
    });
    this.deliveryNotBefore = 0;
    await this.deliver();
  }
}

function sameEndpoints(a: readonly Endpoint[], b: readonly Endpoint[]): boolean {
  const key = (l: readonly Endpoint[]) =>
    l
      .map((e) => `${e.address}|${e.port}`)
      .sort()
      .join(',');
  return key(a) === key(b);
}
