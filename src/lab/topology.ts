/**
 * The lab topology file (DESIGN.md, "Contracts"): the workloads of an estate with their
 * labels and the services they listen on, and the traffic between them. Parsing checks the
 * shape with a zod schema, then what only the whole file can tell (duplicate names and
 * addresses, traffic to unknown workloads or closed ports), and reports every problem at
 * once as `file: path: problem`. The result has every default filled in, addresses included,
 * so the rest of the lab never guesses.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { addressFamily, canonicalAddress } from '../policy/addresses.js';
import { ENFORCEMENT_MODES, type EnforcementMode } from '../policy/model.js';
import { plainIssues } from '../policy-as-code/schema.js';
import {
  LAB_IPV4_RANGE,
  LAB_IPV6_RANGE,
  addressAllocator,
  bridgeAddress,
  contains,
  parseLabNetwork,
  reservedProblem,
  type LabNetwork,
} from './addressing.js';
import { LabError, TopologyError, type TopologyProblem } from './errors.js';

export type Protocol = 'tcp' | 'udp';

/** A service a workload listens on, served by a process of that name. */
export interface ListenSpec {
  readonly port: number;
  readonly proto: Protocol;
  readonly process: string;
}

export interface WorkloadSpec {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Canonical addresses, IPv4 first as written or assigned. */
  readonly addresses: readonly string[];
  /** The enforcement mode its agent pairs with. */
  readonly mode: EnforcementMode;
  /** False for an appliance nobody can install an agent on. */
  readonly agent: boolean;
  readonly listen: readonly ListenSpec[];
}

export interface TrafficSpec {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly proto: Protocol;
  /** The client's process name (its comm), as the source's agent will see it. */
  readonly process: string;
}

export interface Topology {
  readonly name: string;
  readonly network: {
    readonly ipv4: string;
    readonly ipv6: string;
    /** The bridge's addresses with prefix length: the control plane's side of the lab. */
    readonly bridge: readonly string[];
  };
  readonly workloads: readonly WorkloadSpec[];
  readonly traffic: readonly TrafficSpec[];
}

/** The largest lab one file may ask for (each workload is a namespace and a few processes). */
export const MAX_WORKLOADS = 500;
/** The client name used when a traffic line names none and its source serves nothing. */
export const DEFAULT_CLIENT_PROCESS = 'lab-client';

// --- The schema ------------------------------------------------------------------------

const NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
/** A workload becomes a host: its name is its hostname and part of its namespace's name. */
const HOSTNAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
/** The kernel keeps 15 characters of a process name (comm); the name is also a file name. */
const PROCESS = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,14}$/;

const labName = z.string().regex(NAME, {
  error: (iss) =>
    `${JSON.stringify(iss.input)} is not a name (1-128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit)`,
});
const workloadName = z.string().regex(HOSTNAME, {
  error: (iss) =>
    `${JSON.stringify(iss.input)} is not a workload name (a host name: 1-63 letters, digits or "-", not starting or ending with "-")`,
});
const processName = z.string().regex(PROCESS, {
  error: (iss) =>
    `${JSON.stringify(iss.input)} is not a process name (1-15 letters, digits, ".", "_", "+" or "-", starting with a letter or digit: the kernel keeps 15 characters)`,
});
const labelKey = z.string().regex(/^[a-z][a-z0-9_.-]{0,62}$/, {
  error: (iss) =>
    `${JSON.stringify(iss.input)} is not a label key (up to 63 lower-case letters, digits, "_", ".", "-", starting with a letter)`,
});
const labelValue = z.string().min(1, 'a label value may not be empty').max(128);
const port = z.number().refine((n) => Number.isInteger(n) && n >= 1 && n <= 65535, {
  error: (iss) => `${String(iss.input)} is not a port (1-65535)`,
});
const proto = z.enum(['tcp', 'udp']).default('tcp');
const address = z.string().transform((text, ctx) => {
  try {
    return canonicalAddress(text.trim());
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: e instanceof Error ? e.message : String(e) });
    return z.NEVER;
  }
});

const listenSchema = z.strictObject({ port, proto, process: processName });
const workloadSchema = z.strictObject({
  name: workloadName,
  labels: z.record(labelKey, labelValue).default({}),
  addresses: z.array(address).optional(),
  mode: z.enum(ENFORCEMENT_MODES).default('visibility'),
  agent: z.boolean().default(true),
  listen: z.array(listenSchema).default([]),
});
const trafficSchema = z.strictObject({
  from: z.string().min(1),
  to: z.string().min(1),
  port,
  proto,
  process: processName.optional(),
});
const topologySchema = z.strictObject({
  name: labName,
  network: z
    .strictObject({
      ipv4: z.string().default(LAB_IPV4_RANGE),
      ipv6: z.string().default(LAB_IPV6_RANGE),
    })
    .default({ ipv4: LAB_IPV4_RANGE, ipv6: LAB_IPV6_RANGE }),
  workloads: z
    .array(workloadSchema)
    .min(1, 'a lab needs at least one workload')
    .max(MAX_WORKLOADS, `a lab holds at most ${MAX_WORKLOADS} workloads`),
  traffic: z.array(trafficSchema).default([]),
});

type RawTopology = z.infer<typeof topologySchema>;

// --- Checks across the file ---------------------------------------------------------------

/** `workloads[2].listen[0].port`, as a person reads a path into a YAML file. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out || '(file)';
}

class Problems {
  readonly list: TopologyProblem[] = [];
  add(path: readonly PropertyKey[], message: string): void {
    this.list.push({ path: formatPath(path), message });
  }
}

const serviceKey = (s: { port: number; proto: string }) => `${s.port}/${s.proto}`;

function checkNetworks(raw: RawTopology, problems: Problems): { v4?: LabNetwork; v6?: LabNetwork } {
  const v4 = parseLabNetwork(raw.network.ipv4, 4);
  const v6 = parseLabNetwork(raw.network.ipv6, 6);
  if (typeof v4 === 'string') problems.add(['network', 'ipv4'], v4);
  if (typeof v6 === 'string') problems.add(['network', 'ipv6'], v6);
  return {
    ...(typeof v4 === 'string' ? {} : { v4 }),
    ...(typeof v6 === 'string' ? {} : { v6 }),
  };
}

function checkWorkloads(
  raw: RawTopology,
  nets: { v4?: LabNetwork; v6?: LabNetwork },
  problems: Problems,
): void {
  const names = new Map<string, number>();
  const owners = new Map<string, string>();
  raw.workloads.forEach((w, i) => {
    const first = names.get(w.name);
    if (first !== undefined)
      problems.add(['workloads', i, 'name'], `"${w.name}" is also workloads[${first}]`);
    else names.set(w.name, i);

    const services = new Map<string, number>();
    w.listen.forEach((l, j) => {
      const other = services.get(serviceKey(l));
      if (other !== undefined)
        problems.add(
          ['workloads', i, 'listen', j],
          `${serviceKey(l)} is also listen[${other}] (one process per port)`,
        );
      else services.set(serviceKey(l), j);
    });

    (w.addresses ?? []).forEach((a, j) => {
      const at = ['workloads', i, 'addresses', j];
      const net = addressFamily(a) === 4 ? nets.v4 : nets.v6;
      if (!net) return; // the network itself is already reported
      if (!contains(net, a)) {
        problems.add(at, `${a} is outside the lab network ${net.cidr}`);
        return;
      }
      const reserved = reservedProblem(net, a);
      if (reserved) problems.add(at, reserved);
      const owner = owners.get(a);
      if (owner !== undefined) problems.add(at, `${a} is also an address of ${owner}`);
      else owners.set(a, w.name);
    });
  });
}

function checkTraffic(raw: RawTopology, problems: Problems): void {
  const byName = new Map(raw.workloads.map((w) => [w.name, w]));
  raw.traffic.forEach((t, i) => {
    const from = byName.get(t.from);
    const to = byName.get(t.to);
    if (!from) problems.add(['traffic', i, 'from'], `"${t.from}" is not a workload in this file`);
    if (!to) problems.add(['traffic', i, 'to'], `"${t.to}" is not a workload in this file`);
    if (!from || !to) return;
    if (from === to) {
      problems.add(
        ['traffic', i, 'to'],
        `"${t.to}" is its source: traffic to itself never leaves it`,
      );
      return;
    }
    if (!to.listen.some((l) => l.port === t.port && l.proto === t.proto)) {
      const served = to.listen.map(serviceKey).join(', ') || 'nothing';
      problems.add(
        ['traffic', i, 'port'],
        `${t.to} does not listen on ${serviceKey(t)} (it listens on ${served})`,
      );
    }
  });
}

/** Fills in addresses and client names; reports a network too small for its workloads. */
function complete(
  raw: RawTopology,
  nets: { v4: LabNetwork; v6: LabNetwork },
  problems: Problems,
): Topology {
  const next = addressAllocator(
    nets.v4,
    raw.workloads.flatMap((w) => w.addresses ?? []),
  );
  const workloads: WorkloadSpec[] = raw.workloads.map((w, i) => {
    let addresses = w.addresses ?? [];
    if (addresses.length === 0) {
      const a = next();
      if (a === null) problems.add(['workloads', i], `no free address left in ${nets.v4.cidr}`);
      addresses = a === null ? [] : [a];
    }
    return {
      name: w.name,
      labels: w.labels,
      addresses,
      mode: w.mode,
      agent: w.agent,
      listen: w.listen,
    };
  });
  const byName = new Map(workloads.map((w) => [w.name, w]));
  const traffic = raw.traffic.map((t, i) => {
    const source = byName.get(t.from)!;
    const destination = byName.get(t.to)!;
    const families = new Set(source.addresses.map(addressFamily));
    if (!destination.addresses.some((a) => families.has(addressFamily(a))))
      problems.add(['traffic', i], `${t.from} and ${t.to} have no address family in common`);
    return {
      from: t.from,
      to: t.to,
      port: t.port,
      proto: t.proto,
      // The application on the source host makes its calls, unless the line says who does.
      process: t.process ?? source.listen[0]?.process ?? DEFAULT_CLIENT_PROCESS,
    };
  });
  const usesV6 = workloads.some((w) => w.addresses.some((a) => addressFamily(a) === 6));
  const bridge = [`${bridgeAddress(nets.v4)}/${nets.v4.prefixLength}`];
  if (usesV6) bridge.push(`${bridgeAddress(nets.v6)}/${nets.v6.prefixLength}`);
  return {
    name: raw.name,
    network: { ipv4: nets.v4.cidr, ipv6: nets.v6.cidr, bridge },
    workloads,
    traffic,
  };
}

/** Parses a topology's text; `file` names it in messages. Throws TopologyError. */
export function parseTopology(text: string, file: string): Topology {
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length) {
    throw new TopologyError(
      file,
      doc.errors.map((e) => ({
        path: `line ${text.slice(0, e.pos[0]).split('\n').length}`,
        message: `YAML: ${e.message.split('\n')[0]}`,
      })),
    );
  }
  const value: unknown = doc.toJS();
  const parsed = topologySchema.safeParse(value ?? {}, { reportInput: true });
  if (!parsed.success) {
    throw new TopologyError(
      file,
      plainIssues(parsed.error.issues).map((i) => ({
        path: formatPath(i.path),
        message: i.message,
      })),
    );
  }
  const raw = parsed.data;
  const problems = new Problems();
  const nets = checkNetworks(raw, problems);
  checkWorkloads(raw, nets, problems);
  checkTraffic(raw, problems);
  if (problems.list.length || !nets.v4 || !nets.v6) throw new TopologyError(file, problems.list);
  const topology = complete(raw, { v4: nets.v4, v6: nets.v6 }, problems);
  if (problems.list.length) throw new TopologyError(file, problems.list);
  return topology;
}

/** Reads and parses a topology file. */
export async function loadTopology(path: string): Promise<Topology> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new LabError(
      `${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
      { file: path },
      { cause: e },
    );
  }
  return parseTopology(text, path);
}

/** Every (workload, process) pair that serves something: one daemon each. */
export function serviceProcesses(w: WorkloadSpec): { process: string; listen: ListenSpec[] }[] {
  const groups = new Map<string, ListenSpec[]>();
  for (const l of w.listen) {
    let list = groups.get(l.process);
    if (!list) groups.set(l.process, (list = []));
    list.push(l);
  }
  return [...groups].map(([process, listen]) => ({ process, listen }));
}

/**
 * The addresses a connection between two workloads uses: the source's first address whose
 * family the destination has, and the destination's first of that family.
 */
export function addressPair(
  from: WorkloadSpec,
  to: WorkloadSpec,
): { from: string; to: string } | null {
  for (const a of from.addresses) {
    const peer = to.addresses.find((b) => addressFamily(b) === addressFamily(a));
    if (peer) return { from: a, to: peer };
  }
  return null;
}
