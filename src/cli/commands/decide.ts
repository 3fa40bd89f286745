import type { Command } from 'commander';
import {
  decide,
  endpoint,
  formatDecidedBy,
  type Flow,
  type FlowDecision,
  type SideJudgement,
} from '../../policy/decide.js';
import { loadPolicy } from '../../policy-as-code/load.js';
import { CliError, json, type CliIo } from '../io.js';

/** `443/tcp`, `53/udp`, `icmp/8`, `icmpv6/128`, `icmp` */
export function parseServiceArg(text: string): Pick<Flow, 'proto' | 'port' | 'icmpType'> {
  const m = /^(?:(\d+)\/(tcp|udp)|(icmp|icmpv6)(?:\/(\d+))?)$/.exec(text.trim());
  if (!m) throw new CliError(`--port: "${text}" is not a port like 443/tcp, 53/udp or icmp/8`, 2);
  if (m[1] !== undefined) {
    const port = Number(m[1]);
    if (port < 1 || port > 65535) throw new CliError(`--port: ${port} is not a port (1-65535)`, 2);
    return { proto: m[2] as 'tcp' | 'udp', port };
  }
  const type = m[4] === undefined ? undefined : Number(m[4]);
  if (type !== undefined && type > 255)
    throw new CliError(`--port: ${type} is not an ICMP type (0-255)`, 2);
  return type === undefined
    ? { proto: m[3] as 'icmp' | 'icmpv6' }
    : { proto: m[3] as 'icmp' | 'icmpv6', icmpType: type };
}

function describeSide(j: SideJudgement | null, label: string): string {
  if (!j) return `  ${label}: not judged (idle, unmanaged or not one of ours)`;
  const outcome = { allow: 'allows', block: 'blocks', mark: 'would block in full mode (marks)' }[
    j.outcome
  ];
  return `  ${label}: ${j.workload} in ${j.mode} mode ${outcome}, by ${formatDecidedBy(j.decidedBy)}`;
}

export function formatDecision(flow: Flow, d: FlowDecision): string {
  const end = (e: Flow['source']) => (e.workload ? `${e.workload.name} (${e.address})` : e.address);
  const svc =
    flow.port !== undefined
      ? `${flow.proto}/${flow.port}`
      : `${flow.proto}${flow.icmpType !== undefined ? `/${flow.icmpType}` : ''}`;
  return [
    `${d.decision}: ${end(flow.source)} -> ${end(flow.destination)} ${svc}${flow.process ? ` (${flow.process})` : ''}`,
    `  decided by ${formatDecidedBy(d.decidedBy)}${d.side ? ` on the ${d.side} side` : ''}`,
    describeSide(d.outbound, 'outbound (source)'),
    describeSide(d.inbound, 'inbound (destination)'),
  ].join('\n');
}

export function registerDecide(program: Command, io: CliIo): void {
  program
    .command('decide')
    .description(
      'decide one flow under a policy: allowed, potentially blocked or blocked, and by which rule',
    )
    .requiredOption('-f, --file <path...>', 'policy files or directories')
    .requiredOption('--from <name|ip>', 'source workload name or address')
    .requiredOption('--to <name|ip>', 'destination workload name or address')
    .requiredOption('--port <service>', 'destination service: 443/tcp, 53/udp, icmp/8, icmpv6/128')
    .option('--process <name>', 'the process serving the destination port')
    .option('--json', 'print the decision as JSON')
    .action(
      async (opts: {
        file: string[];
        from: string;
        to: string;
        port: string;
        process?: string;
        json?: boolean;
      }) => {
        const { resolved } = await loadPolicy(opts.file);
        const service = parseServiceArg(opts.port);
        const at = (what: string, value: string) => {
          try {
            return endpoint(resolved, value);
          } catch (e) {
            throw new CliError(`${what}: ${(e as Error).message}`, 2);
          }
        };
        const flow: Flow = {
          source: at('--from', opts.from),
          destination: at('--to', opts.to),
          ...service,
          ...(opts.process ? { process: opts.process } : {}),
        };
        const decision = decide(resolved, flow);
        if (opts.json) {
          io.out(
            json({
              flow: {
                from: opts.from,
                fromAddress: flow.source.address,
                to: opts.to,
                toAddress: flow.destination.address,
                ...service,
                process: opts.process,
              },
              ...decision,
            }),
          );
        } else io.out(formatDecision(flow, decision));
      },
    );
}
