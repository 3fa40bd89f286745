/**
 * What each rule action, and the default, does in each enforcement mode: decide()'s table,
 * for backends that evaluate rules first-match in precedence order (override-deny, allow,
 * deny). Full drops everything but what an allow admits; selective drops what override-deny
 * and deny name and records the rest as potentially blocked; visibility drops nothing and
 * records what full mode would drop.
 */
import type { EnforcementMode, RuleAction } from '../model.js';

export type Verdict = 'accept' | 'block' | 'potential';
export type EnforcingMode = Exclude<EnforcementMode, 'idle'>;

export const VERDICTS: Readonly<
  Record<EnforcingMode, Readonly<Record<RuleAction | 'default', Verdict>>>
> = {
  full: { 'override-deny': 'block', allow: 'accept', deny: 'block', default: 'block' },
  selective: { 'override-deny': 'block', allow: 'accept', deny: 'block', default: 'potential' },
  visibility: {
    'override-deny': 'potential',
    allow: 'accept',
    deny: 'potential',
    default: 'potential',
  },
};
