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

const QUOTE = 34;
const OPEN = 123;
const CLOSE = 125;
const SEMICOLON = 59;
const HASH = 35;

/** Why `text` could leave its block, or null. `semicolons`: allowed outside quotes. */
function escapes(text: string, semicolons: boolean): string | null {
  let depth = 0;
  let quoted = false;
  // Character codes, not a string iterator: every rule of every policy passes through here.
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || c === 13 || c === 0) return 'a line break';
    if (c === QUOTE) {
      quoted = !quoted;
      continue;
    }
    if (quoted) continue;
    if (c === OPEN) depth++;
    else if (c === CLOSE) {
      depth--;
      if (depth < 0) return 'a "}" that closes the enclosing block';
    } else if (c === SEMICOLON && !semicolons) return 'a ";" that ends the statement early';
    else if (c === HASH) return 'a "#" that comments out the rest of the line';
  }
  if (quoted) return 'an unclosed quote';
  if (depth !== 0) return 'an unclosed "{"';
  return null;
}

/**
 * Sets and chains already found contained. They are immutable values, and the table the
 * agent loads shares most of them with the policy it was made from, checked just before.
 */
const contained = new WeakSet<object>();

/** Throws UnsafePolicyError naming the first piece of `state` that could escape its block. */
export function assertContained(state: NftState): void {
  const fail = (where: string, why: string): never => {
    throw new UnsafePolicyError(`refusing the policy for ${state.workload}: ${where} holds ${why}`);
  };
  for (const set of state.sets) {
    if (contained.has(set)) continue;
    const why = escapes(set.declaration, true);
    if (why) fail(`set ${set.name}'s declaration`, why);
    for (const e of set.elements)
      if (!ELEMENT.test(e))
        fail(
          `set ${set.name}'s element ${JSON.stringify(e)}`,
          'a character that is not part of an address',
        );
    contained.add(set);
  }
  for (const chain of state.chains) {
    if (contained.has(chain)) continue;
    if (chain.declaration !== null) {
      const why = escapes(chain.declaration, true);
      if (why) fail(`chain ${chain.name}'s declaration`, why);
    }
    chain.rules.forEach((rule, i) => {
      const why = escapes(rule, false);
      if (why) fail(`chain ${chain.name}'s rule ${i + 1}`, why);
    });
    contained.add(chain);
  }
}
