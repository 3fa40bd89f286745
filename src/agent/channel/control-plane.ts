/**
 * The agent's channel to the control plane, as the agent core sees it. The real one speaks
 * HTTP (http-control-plane.ts); tests use a fake or a real server.
 */
import type {
  AckRequest,
  CompiledPolicy,
  FlowBatch,
  FlowsDroppedReport,
  HeartbeatRequest,
  Inventory,
  PairAnswer,
  PairRequest,
  PolicyNotice,
  PolicyStanding,
  TamperReport,
} from '../wire.js';

export interface EventStreamHandlers {
  /** The stream is open: the control plane is reachable again. */
  onOpen(): void;
  onPolicy(notice: PolicyNotice): void;
}

export interface ControlPlane {
  readonly url: string;
  /** `POST /agents/pair` with an activation code; the answer holds the agent's credential. */
  pair(request: PairRequest): Promise<PairAnswer>;
  heartbeat(request: HeartbeatRequest): Promise<PolicyStanding>;
  inventory(report: Inventory): Promise<void>;
  /** The compiled policy, or null when the revision `etag` names is still current (304). */
  policy(etag: string | null): Promise<CompiledPolicy | null>;
  ack(request: AckRequest): Promise<void>;
  /** Idempotent by batch id: a retried batch is stored once. */
  flows(batch: FlowBatch): Promise<{ duplicate: boolean }>;
  tamper(report: TamperReport): Promise<void>;
  flowsDropped(report: FlowsDroppedReport): Promise<void>;
  /**
   * Holds the event stream open until it fails (rejects) or `signal` aborts it (resolves).
   */
  events(handlers: EventStreamHandlers, signal: AbortSignal): Promise<void>;
}
