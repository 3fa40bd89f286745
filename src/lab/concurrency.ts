/**
 * Runs `work` over `items` with at most `limit` at once, results in order. Starting many
 * node processes at the same moment on a small machine makes every one of them slow to come
 * up; a few at a time is faster overall and keeps start-up timeouts meaningful.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!, i);
    }
  };
  // Every worker runs to the end even when one fails, so nothing is left half-started
  // unseen; the first failure is reported.
  const settled = await Promise.allSettled(
    Array.from({ length: Math.min(limit, items.length) }, worker),
  );
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  return results;
}
