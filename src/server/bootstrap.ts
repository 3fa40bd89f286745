/**
 * First start: the store has no API key yet, so the server creates the owner key. With
 * BULKHEAD_OWNER_KEY set (automation) it takes that value; otherwise it issues a random key
 * and returns it to be printed once. Only the hash is kept either way.
 */
import type { ServerContext } from './context.js';
import { change } from './change.js';
import { hashSecret, issueSecret, newId } from './credentials.js';

export interface OwnerKey {
  /** The key to print, when the server made it up; null when it came from the environment. */
  readonly printOnce: string | null;
}

export async function ensureOwnerKey(
  ctx: ServerContext,
  fromEnvironment: string | undefined,
): Promise<OwnerKey | null> {
  const existing = await ctx.store.db
    .selectFrom('api_keys')
    .select('id')
    .limit(1)
    .executeTakeFirst();
  if (existing) return null;
  if (fromEnvironment !== undefined && fromEnvironment.length < 16) {
    throw new Error('BULKHEAD_OWNER_KEY must be at least 16 characters');
  }
  const issued = fromEnvironment
    ? {
        secret: fromEnvironment,
        hash: hashSecret(fromEnvironment),
        prefix: fromEnvironment.slice(0, 4),
      }
    : issueSecret('key');
  const id = newId();
  await change(ctx, null, async (trx, audit) => {
    await trx
      .insertInto('api_keys')
      .values({
        id,
        name: 'owner',
        role: 'owner',
        scope: null,
        prefix: issued.prefix,
        hash: issued.hash,
        created_at: new Date().toISOString(),
        created_by: null,
        revoked_at: null,
        last_used_at: null,
      })
      .execute();
    await audit({
      type: 'key.create',
      kind: 'ApiKey',
      name: id,
      after: {
        id,
        name: 'owner',
        role: 'owner',
        from: fromEnvironment ? 'BULKHEAD_OWNER_KEY' : 'first start',
      },
    });
  });
  return { printOnce: fromEnvironment ? null : issued.secret };
}
