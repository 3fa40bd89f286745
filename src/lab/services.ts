/**
 * A workload's services: one daemon per process name (nginx, mysqld...), listening on each
 * of the workload's addresses for each of that process's ports, inside its namespace.
 */
import { join } from 'node:path';
import { netnsOf } from './network.js';
import { executableFor, programPaths } from './programs.js';
import { startDaemon } from './processes.js';
import type { LabPaths, ServiceRecord } from './state.js';
import { serviceProcesses, type WorkloadSpec } from './topology.js';

/**
 * Starts the workload's services one after another, each serving before the next starts;
 * `recorded` hears of each as soon as it runs, so a crash never leaves one off the record.
 */
export async function startServices(
  paths: LabPaths,
  prefix: string,
  w: WorkloadSpec,
  recorded: (r: ServiceRecord) => Promise<void>,
): Promise<void> {
  const program = programPaths(paths).service;
  for (const { process: name, listen } of serviceProcesses(w)) {
    const config = {
      workload: w.name,
      process: name,
      listen: w.addresses.flatMap((address) =>
        listen.map((l) => ({ address, port: l.port, proto: l.proto })),
      ),
    };
    const daemon = await startDaemon({
      what: `${name} on ${w.name}`,
      netns: netnsOf(prefix, w.name),
      command: [executableFor(paths, name), program, JSON.stringify(config)],
      log: join(paths.logs, `${w.name}.${name}.log`),
      comm: name,
      waitReady: true,
    });
    daemon.release();
    await recorded({
      ...daemon.record,
      process: name,
      listen: listen.map((l) => ({ port: l.port, proto: l.proto })),
    });
  }
}
