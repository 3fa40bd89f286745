/**
 * Problems found in a policy, located precisely enough for a person to fix them.
 *
 * The engine does not know about files; it names the object (`Ruleset "shop-prod"`) and the
 * path inside it (`rules[3].services[0]`). The policy-as-code loader adds the file and line.
 */

export type PolicyObjectKind =
  'Workload' | 'LabelGroup' | 'IpList' | 'UserGroup' | 'Service' | 'Ruleset' | 'Settings';

export interface PolicyIssue {
  readonly severity: 'error' | 'warning';
  readonly kind: PolicyObjectKind;
  readonly name: string;
  /** Path inside the object, e.g. `rules[3].services[0].port`; empty for the whole object. */
  readonly path: string;
  readonly message: string;
}

export function formatIssue(issue: PolicyIssue): string {
  const where = issue.path ? `${issue.path}: ` : '';
  return `${issue.kind} "${issue.name}": ${where}${issue.message}`;
}

export class PolicyError extends Error {
  constructor(readonly issues: readonly PolicyIssue[]) {
    const errors = issues.filter((i) => i.severity === 'error');
    super(
      `${errors.length} problem${errors.length === 1 ? '' : 's'} in the policy:\n` +
        errors.map((i) => `  ${formatIssue(i)}`).join('\n'),
    );
    this.name = 'PolicyError';
  }
}
