/**
 * Flow telemetry, wired to the host: one long-running `conntrack -E` child streams new and
 * ended connections, a periodic `conntrack -L` dump catches what the stream missed, a
 * periodic socket snapshot names the processes, and each flush interval the recording sets
 * add the blocked and would-be-blocked attempts. `drain` hands over the interval's summaries.
 *
 * Costs stay flat with the connection rate: a line parse and two map look-ups per
 * connection, one `ss` per scan interval (only when there were connections to attribute),
 * and one dump per dump interval.
 */
import type { Logger } from '../log.js';
import type { ConntrackAdapter } from '../adapters/conntrack.js';
import type { HostAdapter } from '../adapters/host.js';
import type { LineStream } from '../adapters/lines.js';
import { Backoff } from '../backoff.js';
import { errorText } from '../errors.js';
import { isEventLossNotice, parseConntrackLine } from '../parse/conntrack.js';
import { localAddresses, workloadAddresses } from '../parse/ip-addr.js';
import { recordedElements, type NftTableListing } from '../parse/nft-json.js';
import type { EnforcementMode, FlowSummary, InterfaceReport } from '../wire.js';
import { FlowAggregator } from './aggregate.js';
import { ConnectionTracker } from './connections.js';
import { RecordedAttempts, type LocalSide } from './recorded.js';
import { SocketTable } from './sockets.js';

/** At most one catch-up dump this often when conntrack reports lost events. */
const LOSS_DUMP_GAP_MS = 10_000;

/** How long a snapshot waits after the first connection it is taken for, to gather a burst. */
const SCAN_GATHER_MS = 50;

/** How old the socket snapshot may grow while connections keep arriving. */
const LISTENER_REFRESH_MS = 30_000;

export interface CollectorOptions {
  readonly dumpIntervalMs: number;
  readonly socketScanIntervalMs: number;
}

export class FlowCollector {
  private readonly aggregator = new FlowAggregator();
  private readonly tracker: ConnectionTracker;
  private readonly recorded = new RecordedAttempts();
  private table = new SocketTable();
  private localSide: LocalSide = {};
  private events: LineStream | null = null;
  private timers: NodeJS.Timeout[] = [];
  private running = false;
  private activity = false;
  private scanning: Promise<SocketTable> | null = null;
  private dumping = false;
  private scannedAt = 0;
  private lossDumpAt = 0;
  private readonly restarts = new Backoff({ initialMs: 1000, maxMs: 30_000 });

  constructor(
    private readonly conntrack: ConntrackAdapter,
    private readonly host: HostAdapter,
    private readonly log: Logger,
    private readonly options: CollectorOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.tracker = new ConnectionTracker((o) => this.aggregator.add(o));
  }

  /** The latest socket snapshot. */
  get sockets(): SocketTable {
    return this.table;
  }

  setInterfaces(interfaces: readonly InterfaceReport[]): void {
    this.tracker.setLocalAddresses(localAddresses(interfaces));
    const addresses = workloadAddresses(interfaces);
    this.localSide = {
      v4: addresses.find((a) => !a.includes(':')),
      v6: addresses.find((a) => a.includes(':')),
    };
  }

  setMode(mode: EnforcementMode | null): void {
    this.tracker.setDecision(mode === 'full' ? 'allowed' : undefined);
  }

  /** The table was loaded whole: its recording sets start again from nothing. */
  tableReloaded(): void {
    this.recorded.forget();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.conntrack
      .enableAccounting()
      .then((turnedOn) => {
        if (turnedOn)
          this.log.info('turned on conntrack byte accounting (net.netfilter.nf_conntrack_acct=1)');
      })
      .catch((e: unknown) =>
        this.log.warn({ err: errorText(e) }, 'cannot turn on conntrack byte accounting'),
      );
    this.startEvents();
    void this.scan().then(() => this.dump());
    this.timers.push(
      setInterval(() => void this.dump(), this.options.dumpIntervalMs),
      setInterval(() => {
        // Only connections no snapshot could name need a new one; listeners are refreshed
        // now and then in case a new service came up.
        const stale = this.now() - this.scannedAt > LISTENER_REFRESH_MS;
        if (this.tracker.waiting > 0 || (stale && this.activity)) void this.scan();
      }, this.options.socketScanIntervalMs),
    );
  }

  stop(): void {
    this.running = false;
    if (this.scanTimer) clearTimeout(this.scanTimer);
    this.scanTimer = null;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.events?.stop();
    this.events = null;
  }

  /** Takes a fresh socket snapshot (at most one at a time) and attributes what waited for it. */
  scan(): Promise<SocketTable> {
    if (this.scanning) return this.scanning;
    this.activity = false;
    this.scannedAt = this.now();
    this.scanning = this.host
      .sockets()
      .then((entries) => {
        this.table = new SocketTable(entries);
        this.tracker.resolvePending(this.table);
        return this.table;
      })
      .catch((e: unknown) => {
        this.log.warn({ err: errorText(e) }, 'cannot read the socket table');
        return this.table;
      })
      .finally(() => {
        this.scanning = null;
      });
    return this.scanning;
  }

  /**
   * The interval's flow summaries: connections conntrack saw, and the attempts the
   * recording sets of `listing` (the table as just read) hold since the last reading.
   */
  drain(listing: NftTableListing | null): { summaries: FlowSummary[]; overflow: number } {
    const { summaries, overflow } = this.aggregator.drain();
    if (listing) {
      const attempts = this.recorded.read(
        recordedElements(listing),
        this.now(),
        this.localSide,
        (proto, address, port) => this.table.listener(proto, address, port)?.name,
      );
      summaries.push(...attempts);
    }
    return { summaries, overflow };
  }

  private readonly onLine = (line: string): void => {
    const record = parseConntrackLine(line);
    if (!record) return;
    if (record.event === 'new') this.activity = true;
    this.tracker.record(record, this.now(), this.table);
    if (this.tracker.waiting > 0) this.scanSoon();
  };

  private scanTimer: NodeJS.Timeout | null = null;

  /**
   * A connection the snapshot cannot name waits for the next one; a short-lived client's
   * socket is gone within a second or two, so take it soon (a short pause gathers a burst),
   * but never more often than the scan interval allows: each snapshot is a process spawn.
   */
  private scanSoon(): void {
    if (this.scanTimer || !this.running) return;
    const at = Math.max(
      this.now() + SCAN_GATHER_MS,
      this.scannedAt + this.options.socketScanIntervalMs,
    );
    this.scanTimer = setTimeout(() => {
      this.scanTimer = null;
      if (this.running && this.tracker.waiting > 0) void this.scan();
    }, at - this.now());
  }

  private startEvents(): void {
    if (!this.running) return;
    const stream = this.conntrack.events(this.onLine, (notice) => {
      if (!isEventLossNotice(notice)) return;
      // Under sustained loss, one catch-up dump at a time and not too often: a dump of a
      // busy table costs more than the events it recovers.
      if (this.now() - this.lossDumpAt < LOSS_DUMP_GAP_MS) return;
      this.lossDumpAt = this.now();
      this.log.warn('conntrack dropped events under load; dumping the table to catch up');
      void this.dump();
    });
    this.events = stream;
    const started = this.now();
    void stream.ended
      .then((exit) => `exited ${exit.code ?? exit.signal}${exit.stderr ? `: ${exit.stderr}` : ''}`)
      .catch((e: unknown) => errorText(e))
      .then((why) => {
        if (!this.running) return;
        if (this.now() - started > 60_000) this.restarts.reset();
        const wait = this.restarts.next();
        this.log.warn({ why, retryInMs: wait }, 'conntrack event stream stopped; restarting it');
        const t = setTimeout(() => {
          this.timers = this.timers.filter((x) => x !== t);
          this.startEvents();
        }, wait);
        this.timers.push(t);
      });
  }

  private async dump(): Promise<void> {
    if (this.dumping || !this.running) return;
    this.dumping = true;
    this.tracker.beginDump();
    try {
      await this.conntrack.dump(this.onLine);
      this.tracker.endDump();
    } catch (e) {
      this.tracker.abandonDump();
      this.log.warn({ err: errorText(e) }, 'cannot dump the conntrack table');
    } finally {
      this.dumping = false;
    }
  }
}
