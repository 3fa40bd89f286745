/**
 * Short names derived from meaning (peer sets, always-allowed sets), the same on every host
 * and in every version. A module of its own so that the agent, which only renders nft
 * scripts, does not load the compiler to get it.
 */

/** 48 bits of FNV-1a, as hex: short, stable, and the same on every host. */
export function stableId(text: string): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x050c5d1f;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c, 0x01000193 ^ 0x5bd1e995) >>> 0;
  }
  return (h1.toString(16).padStart(8, '0') + h2.toString(16).padStart(8, '0')).slice(0, 12);
}
