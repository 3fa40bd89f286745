/**
 * A compiled policy is loaded into the kernel as nft script text, and the agent must leave
 * every other table alone. Each piece of the policy (a rule, a set declaration, an element,
 * a name) is therefore checked to stay inside its own block before it is printed: no line
 * breaks, no `;` ending a rule early, braces balanced and never closing the enclosing
 * block, quotes closed. A policy that fails is refused, never half-loaded.
 *
 * Pure: no I/O.
 */
import type { NftState } from '../../policy/compile/nft.js';
import { UnsafePolicyError } from '../errors.js';

const ELEMENT = /^[0-9A-Fa-f:./-]+$/;

/** Why `text` could leave its block, or null. `semicolons`: allowed outside quotes. */
function escapes(text: string, semicolons: boolean): string | null {
  let depth = 0;
  let quoted = false;
  for (const ch of text) {
    if (ch === '\n' || ch === '\r' || ch === '\0') return 'a line break';
    if (ch === '"') {
      quoted = !quoted;
      continue;
    }
    if (quoted) continue;
    if (ch === '{') depth++;
    else if (ch === '}') {
      depth--;
      if (depth < 0) return 'a "}" that closes the enclosing block';
    } else if (ch === ';' && !semicolons) return 'a ";" that ends the statement early';
    else if (ch === '#') return 'a "#" that comments out the rest of the line';
  }
  if (quoted) return 'an unclosed quote';
  if (depth !== 0) return 'an unclosed "{"';
  return null;
}

/** Throws UnsafePolicyError naming the first piece of `state` that could escape its block. */
export function assertContained(state: NftState): void {
  const fail = (where: string, why: string): never => {
    throw new UnsafePolicyError(`refusing the policy for ${state.workload}: ${where} holds ${why}`);
  };
  for (const set of state.sets) {
    const why = escapes(set.declaration, true);
    if (why) fail(`set ${set.name}'s declaration`, why);
    for (const e of set.elements)
      if (!ELEMENT.test(e))
        fail(
          `set ${set.name}'s element ${JSON.stringify(e)}`,
          'a character that is not part of an address',
        );
  }
  for (const chain of state.chains) {
    if (chain.declaration !== null) {
      const why = escapes(chain.declaration, true);
      if (why) fail(`chain ${chain.name}'s declaration`, why);
    }
    chain.rules.forEach((rule, i) => {
      const why = escapes(rule, false);
      if (why) fail(`chain ${chain.name}'s rule ${i + 1}`, why);
    });
  }
}
