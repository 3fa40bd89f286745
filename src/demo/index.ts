/**
 * The demo estate a newcomer loads with one click (`POST /api/v1/demo`, `bulkhead demo`):
 * workloads, a draft to provision, and weeks of traffic for the flow store. Pure and
 * seeded, so tests and screenshots see the same estate every time.
 */
import type { TrafficRecord } from '../analysis/flows/model.js';
import {
  demoDocuments,
  demoHosts,
  workloadOf,
  type DemoDocument,
  type DemoWorkload,
} from './estate.js';
import { demoConversations, demoTraffic, type Conversation } from './traffic.js';

export type { DemoDocument, DemoWorkload } from './estate.js';
export type { Conversation } from './traffic.js';

export const DEMO_SEED = 20261124;
export const DEMO_WEEKS = { min: 1, max: 8, default: 3 } as const;

export interface DemoOptions {
  /** The end of the simulated history (the caller's clock: this module reads none). */
  readonly now: Date;
  readonly weeks?: number;
  readonly seed?: number;
  /** The hours counted per minute, the current one included (default 7). */
  readonly minuteHours?: number;
}

export interface DemoEstate {
  readonly workloads: readonly DemoWorkload[];
  /** The draft, to be provisioned as the active version. */
  readonly documents: readonly DemoDocument[];
  readonly conversations: readonly Conversation[];
  /** Traffic per (bucket, conversation), oldest first. */
  readonly traffic: readonly TrafficRecord[];
}

export function generateDemo(options: DemoOptions): DemoEstate {
  const weeks = options.weeks ?? DEMO_WEEKS.default;
  if (!Number.isInteger(weeks) || weeks < DEMO_WEEKS.min || weeks > DEMO_WEEKS.max)
    throw new RangeError(
      `weeks must be a whole number from ${DEMO_WEEKS.min} to ${DEMO_WEEKS.max}`,
    );
  const seed = options.seed ?? DEMO_SEED;
  const hosts = demoHosts();
  const conversations = demoConversations(hosts, seed);
  return {
    workloads: hosts.map(workloadOf),
    documents: demoDocuments(),
    conversations,
    traffic: demoTraffic(conversations, {
      now: options.now,
      weeks,
      seed,
      ...(options.minuteHours !== undefined ? { minuteHours: options.minuteHours } : {}),
    }),
  };
}
