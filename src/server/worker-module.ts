/**
 * Work handed to a worker thread: a request/answer channel over its message port, so the
 * main thread keeps serving while another core parses, validates or sums. The worker
 * answers requests in order; a worker that dies fails every pending and later request.
 */
import { parentPort, Worker, type Transferable } from 'node:worker_threads';

/**
 * Where a worker thread's module is. Worker threads load plain JavaScript, so when the
 * server runs from source (the test runner compiles TypeScript as it loads it) the worker
 * is the build's copy: `npm test` builds first.
 */
export function workerModule(from: string, name: string): URL {
  const source = /\/src\/(.*)\/[^/]+\.ts$/.exec(from);
  if (source) return new URL(from.slice(0, source.index) + `/dist/src/${source[1]}/${name}.js`);
  return new URL(`./${name}.js`, from);
}

type Answer<A> =
  { readonly id: number; readonly answer: A } | { readonly id: number; readonly error: string };

export interface WorkerChannel<Q, A> {
  call(request: Q, transfer?: readonly Transferable[]): Promise<A>;
  close(): Promise<void>;
}

/** Starts the worker at `module` with `data` as its workerData. `what` names it in errors. */
export function startWorker<Q, A>(what: string, module: URL, data: unknown): WorkerChannel<Q, A> {
  const worker = new Worker(module, { workerData: data });
  // An idle worker must not keep the process alive; whoever owns it closes it.
  worker.unref();
  let next = 1;
  const pending = new Map<number, { resolve: (a: A) => void; reject: (e: Error) => void }>();
  let failure: Error | null = null;
  const failAll = (e: Error) => {
    failure ??= e;
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  worker.on('message', (message: Answer<A>) => {
    const p = pending.get(message.id);
    if (!p) return;
    pending.delete(message.id);
    if ('error' in message) p.reject(new Error(`${what}: ${message.error}`));
    else p.resolve(message.answer);
  });
  worker.on('error', (e) => failAll(new Error(`${what} failed: ${e.message}`)));
  worker.on('exit', (code) => failAll(new Error(`${what} exited (${code})`)));
  return {
    call(request, transfer = []) {
      if (failure) return Promise.reject(failure);
      const id = next++;
      return new Promise<A>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        worker.postMessage({ id, request }, transfer);
      });
    },
    async close() {
      await worker.terminate();
    },
  };
}

/**
 * In the worker: answers each request with `handle`, one at a time, in order. `transfer`
 * names what of an answer moves to the main thread rather than being copied.
 */
export function serveRequests<Q, A>(
  handle: (request: Q) => Promise<A> | A,
  transfer: (answer: A) => Transferable[] = () => [],
): void {
  const port = parentPort;
  if (!port) throw new Error('this module runs as a worker thread only');
  let queue: Promise<void> = Promise.resolve();
  port.on('message', (message: { id: number; request: Q }) => {
    queue = queue.then(async () => {
      try {
        const answer = await handle(message.request);
        port.postMessage({ id: message.id, answer } satisfies Answer<A>, transfer(answer));
      } catch (e) {
        port.postMessage({
          id: message.id,
          error: e instanceof Error ? e.message : String(e),
        } satisfies Answer<A>);
      }
    });
  });
}
