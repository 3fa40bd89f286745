/**
 * The generator's judge answers with decide() for a class of alike flows at once, and hands
 * decide() only the rules that select either end. Both shortcuts must give decide()'s own
 * answer: here, on seeded random policies (label OR/AND, label groups, user groups, named
 * workloads, IP lists with exclusions, always-allowed endpoints, every action), for every
 * pair of ends (workloads by name and by each address, and addresses of no workload) and
 * every service of the pool, the judge is compared with plain decide() on the whole policy.
 */
import { describe, expect, it } from 'vitest';
import { decide, type FlowDecision } from '../../src/policy/decide.js';
import { EndpointResolver, type Endpoint } from '../../src/policy/generate/endpoints.js';
import {
  FullEnforcementJudge,
  fullEnforcement,
  type Verdict,
} from '../../src/policy/generate/judge.js';
import type { FlowPeer, ObservedService } from '../../src/policy/generate/types.js';
import { resolvePolicy } from '../../src/policy/resolve.js';
import { OUTSIDER_ADDRESSES, PORT_POOL, randomPolicy } from '../support/random-policy.js';

const SERVICES: readonly ObservedService[] = [
  ...PORT_POOL.flatMap((port) => [
    { proto: 'tcp' as const, port },
    { proto: 'udp' as const, port },
  ]),
  { proto: 'tcp', port: 5432, process: 'postgres' },
  { proto: 'icmp', icmpType: 8 },
  { proto: 'icmpv6', icmpType: 128 },
  { proto: 'icmpv6', icmpType: 135 },
];

/** What holds for every flow of a class: the decision, who decided, and each side's outcome. */
function project(d: FlowDecision | Verdict) {
  const side = (j: FlowDecision['inbound'] | Verdict['inbound']) =>
    j && { side: j.side, outcome: j.outcome, decidedBy: j.decidedBy };
  return {
    decision: d.decision,
    decidedBy: d.decidedBy,
    side: d.side,
    inbound: side(d.inbound),
    outbound: side(d.outbound),
  };
}

describe('the generator judge', () => {
  it.each(Array.from({ length: 30 }, (_, i) => i + 1))(
    'equals decide() on the whole policy, in full enforcement (seed %i)',
    (seed) => {
      const policy = randomPolicy(seed);
      const judge = new FullEnforcementJudge(policy);
      const plain = resolvePolicy(fullEnforcement(policy));
      const resolver = new EndpointResolver(judge.resolved);
      const peers: FlowPeer[] = [
        ...policy.workloads.map((w) => ({ workload: w.name })),
        ...policy.workloads.flatMap((w) => w.addresses.map((address) => ({ address }))),
        ...OUTSIDER_ADDRESSES.map((address) => ({ address })),
      ];
      const ends = peers.map((p) => resolver.resolve(p) as Endpoint);
      let compared = 0;
      for (const src of ends) {
        for (const dst of ends) {
          if (src.kind === 'address' && dst.kind === 'address') continue;
          for (const service of SERVICES) {
            const flow = {
              source:
                src.kind === 'workload'
                  ? { address: src.address, workload: plain.workloadByName.get(src.workload.name)! }
                  : { address: src.address },
              destination:
                dst.kind === 'workload'
                  ? { address: dst.address, workload: plain.workloadByName.get(dst.workload.name)! }
                  : { address: dst.address },
              ...('port' in service
                ? { proto: service.proto, port: service.port, process: service.process }
                : { proto: service.proto, icmpType: service.icmpType }),
            };
            expect(project(judge.decide(src, dst, service)), `${src.text} -> ${dst.text}`).toEqual(
              project(decide(plain, flow)),
            );
            compared++;
          }
        }
      }
      // The classes must actually share decisions, or the test proves nothing about them.
      expect(judge.decisionsComputed).toBeLessThan(compared);
    },
  );
});
