/**
 * The relay: agents in the namespaces reach the bridge's address, while the control plane
 * usually listens on 127.0.0.1 in the root namespace, which they cannot reach. A small
 * detached TCP pipe in the root namespace joins the two.
 */
import { join } from 'node:path';
import { RELAY_PROCESS, executableFor, programPaths } from './programs.js';
import { startDaemon } from './processes.js';
import type { LabPaths, RelayRecord } from './state.js';

export interface Relay {
  readonly record: RelayRecord;
  /** The control plane's URL as the agents use it: http(s)://BRIDGE:PORT. */
  readonly agentUrl: string;
}

/** Starts the relay from `bridgeAddress:port` (0: any free port) to the control plane. */
export async function startRelay(
  paths: LabPaths,
  bridgeAddress: string,
  port: number,
  controlPlaneUrl: string,
): Promise<Relay> {
  const target = new URL(controlPlaneUrl);
  const targetPort = Number(target.port || (target.protocol === 'https:' ? 443 : 80));
  const targetHost = target.hostname.replace(/^\[(.*)\]$/, '$1');
  const daemon = await startDaemon({
    what: 'the relay to the control plane',
    command: [
      executableFor(paths, RELAY_PROCESS),
      programPaths(paths).relay,
      JSON.stringify({
        listenHost: bridgeAddress,
        listenPort: port,
        targetHost,
        targetPort,
        stateFile: paths.state,
      }),
    ],
    log: join(paths.logs, 'relay.log'),
    comm: RELAY_PROCESS,
    waitReady: true,
  });
  daemon.release();
  // The relay says which port it bound (the one asked for, or the one the kernel chose).
  const listen = `${bridgeAddress}:${daemon.ready}`;
  return {
    record: { ...daemon.record, listen, target: `${targetHost}:${targetPort}` },
    agentUrl: `${target.protocol}//${listen}`,
  };
}
