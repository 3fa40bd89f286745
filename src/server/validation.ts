/**
 * Schema problems as the API reports them: one detail per problem, located in the request
 * (`body.summaries[3].dport`), in the same plain words as policy files.
 */
import type { $ZodIssue } from 'zod/v4/core';
import { plainIssues } from '../policy-as-code/schema.js';
import type { ErrorDetail } from './errors.js';

/** `part` then each path step: `body.summaries[3].dport`. */
export function formatPath(part: string, path: readonly PropertyKey[]): string {
  let out = part;
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `.${String(p)}`;
  return out;
}

export function issueDetails(issues: readonly $ZodIssue[], part: string): ErrorDetail[] {
  return plainIssues(issues).map((i) => ({ path: formatPath(part, i.path), message: i.message }));
}
