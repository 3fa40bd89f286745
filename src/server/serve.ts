/**
 * Starting the control plane: open the store, make sure an owner key exists, listen.
 * Plain HTTP is fine on loopback; anywhere else the server says loudly that it is unencrypted.
 */
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { openStore, type Store, type StoreOptions } from '../store/store.js';
import type { FlowStoreOptions } from './flows/service.js';
import { buildServer } from './app.js';
import { ensureOwnerKey } from './bootstrap.js';
import { syslogFromEnv } from './syslog.js';

export interface ServeOptions {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly databaseUrl?: string;
  /** A PostgreSQL schema of its own (benchmarks and tests use one per run). */
  readonly databaseSchema?: string;
  readonly ownerKey?: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  readonly logLevel?: string;
  /** The flow store's retention (seconds per resolution) and pacing. */
  readonly flows?: FlowStoreOptions;
}

export interface RunningServer {
  readonly app: FastifyInstance;
  readonly store: Store;
  readonly url: string;
  readonly ownerKey: string | null;
  close(): Promise<void>;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/** The warning for serving plain HTTP where others can listen (off loopback), or null. */
export function plainHttpWarning(host: string, tls: boolean): string | null {
  if (tls || LOOPBACK.test(host)) return null;
  return `serving plain HTTP on ${host}: API keys and agent credentials cross the network unencrypted; give --tls-cert and --tls-key`;
}

export async function serve(options: ServeOptions): Promise<RunningServer> {
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
    throw new Error('TLS needs both a certificate and a key (--tls-cert and --tls-key)');
  }
  const logger = pino({ level: options.logLevel ?? 'info' });
  const storeOptions: StoreOptions = {
    dataDir: options.dataDir,
    ...(options.databaseUrl ? { databaseUrl: options.databaseUrl } : {}),
    ...(options.databaseSchema ? { schema: options.databaseSchema } : {}),
  };
  const store = await openStore(storeOptions);
  try {
    const https =
      options.tlsCert && options.tlsKey
        ? { cert: await readFile(options.tlsCert), key: await readFile(options.tlsKey) }
        : undefined;
    const app = await buildServer({
      store,
      logger,
      readFlowBatchesInThread: true,
      ...(https ? { https } : {}),
      flows: {
        ...options.flows,
        // Summing the flow log takes a core of its own, and a question's window is summed by
        // reader threads (SQLite; PostgreSQL sums a large window on parallel workers itself):
        // each opens a connection of its own, which an in-memory database cannot give.
        ...(options.dataDir !== ':memory:' || options.databaseUrl
          ? { summarizeIn: storeOptions, readWindowsIn: storeOptions }
          : {}),
      },
    });
    const owner = await ensureOwnerKey(app.bulkhead, options.ownerKey);
    await app.listen({ host: options.host, port: options.port });
    app.bulkhead.flows.start();
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : options.port;
    const scheme = https ? 'https' : 'http';
    const host = options.host.includes(':') ? `[${options.host}]` : options.host;
    const warning = plainHttpWarning(options.host, https !== undefined);
    if (warning) logger.warn(warning);
    const syslog = syslogFromEnv(app.bulkhead.audit, process.env, (err) =>
      logger.warn({ err }, 'syslog: cannot send an audit event'),
    );
    return {
      app,
      store,
      url: `${scheme}://${host}:${port}`,
      ownerKey: owner?.printOnce ?? null,
      async close() {
        await syslog?.close();
        await app.close();
        await store.close();
      },
    };
  } catch (e) {
    await store.close();
    throw e;
  }
}
