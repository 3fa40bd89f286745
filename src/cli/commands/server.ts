import type { Command } from 'commander';
import { FlowQueryError, parseRetention } from '../../analysis/flows/window.js';
import { serve } from '../../server/serve.js';
import { StoreError } from '../../store/store.js';
import { CliError, type CliIo } from '../io.js';

export function registerServer(program: Command, io: CliIo): void {
  program
    .command('server')
    .description(
      'run the control plane (REST API under /api/v1) on the embedded store, or PostgreSQL with DATABASE_URL',
    )
    .option('--host <address>', 'address to listen on', process.env.BULKHEAD_HOST ?? '127.0.0.1')
    .option('--port <port>', 'port to listen on', process.env.BULKHEAD_PORT ?? '7480')
    .option(
      '--data-dir <dir>',
      'where the embedded store lives',
      process.env.BULKHEAD_DATA_DIR ?? '.bulkhead',
    )
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM)')
    .option('--tls-key <file>', 'and this private key (PEM)')
    .option(
      '--flow-retention <spec>',
      'how long flow traffic is kept per resolution, e.g. minute=1d,hour=90d,day=400d',
      process.env.BULKHEAD_FLOW_RETENTION,
    )
    .action(
      async (opts: {
        host: string;
        port: string;
        dataDir: string;
        tlsCert?: string;
        tlsKey?: string;
        flowRetention?: string;
      }) => {
        const port = Number(opts.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535)
          throw new CliError(`--port: "${opts.port}" is not a port`, 2);
        let retention;
        try {
          retention = opts.flowRetention ? parseRetention(opts.flowRetention) : undefined;
        } catch (e) {
          if (!(e instanceof FlowQueryError)) throw e;
          throw new CliError(
            `--flow-retention (or BULKHEAD_FLOW_RETENTION): ${e.message.replace(/^retention: /, '')}`,
            2,
          );
        }
        // A store that cannot be opened (a data directory that cannot be made, a database out
        // of reach) is the operator's to fix: its message, without a stack.
        const running = await serve({
          host: opts.host,
          port,
          dataDir: opts.dataDir,
          ...(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL } : {}),
          ...(process.env.BULKHEAD_DATABASE_SCHEMA
            ? { databaseSchema: process.env.BULKHEAD_DATABASE_SCHEMA }
            : {}),
          ...(process.env.BULKHEAD_OWNER_KEY ? { ownerKey: process.env.BULKHEAD_OWNER_KEY } : {}),
          ...(opts.tlsCert ? { tlsCert: opts.tlsCert } : {}),
          ...(opts.tlsKey ? { tlsKey: opts.tlsKey } : {}),
          ...(retention ? { flows: { retention } } : {}),
        }).catch((e: unknown) => {
          if (e instanceof StoreError) throw new CliError(e.message, 1);
          throw e;
        });
        io.err(
          `bulkhead control plane on ${running.url} (store: ${running.store.dialect.location})`,
        );
        if (running.ownerKey) {
          io.err(
            `first start: the owner API key is\n\n    ${running.ownerKey}\n\nit is shown only this once; use it as BULKHEAD_TOKEN`,
          );
        }
        await new Promise<void>((resolve) => {
          const stop = () => {
            void running.close().then(resolve);
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
      },
    );
}
