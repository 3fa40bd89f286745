/**
 * The Windows Firewall backend. Windows cannot run here, so these tests hold the script to
 * the documented cmdlet syntax instead: every command is parsed back (PowerShell's quoting
 * rules for single-quoted strings) and its parameters and values are checked against the
 * recorded reference of New-NetFirewallRule and Set-NetFirewallProfile (Microsoft's
 * NetSecurity module documentation, Windows Server 2022), below.
 */
import { describe, expect, it } from 'vitest';
import { loadPolicy } from '../../src/policy-as-code/load.js';
import { AddressSet, isAddressEntry } from '../../src/policy/addresses.js';
import { compilePolicy, type CompiledRule } from '../../src/policy/compile/endpoint.js';
import {
  MAX_REMOTE_ADDRESSES,
  psQuote,
  renderWindowsFirewall,
  servicesOverlap,
} from '../../src/policy/compile/windows.js';
import type { ResolvedAlwaysAllowed } from '../../src/policy/resolve.js';
import { peerSet, setsFor, tcp, rule, endpointOf } from '../support/endpoint-builder.js';

// --- The recorded reference ----------------------------------------------------------------

/** New-NetFirewallRule's parameters (SYNTAX section) with the values the docs accept. */
const NEW_RULE_PARAMETERS: Record<string, ((v: string) => boolean) | 'string'> = {
  Name: 'string',
  DisplayName: 'string',
  Description: 'string',
  Group: 'string',
  Direction: (v) => ['Inbound', 'Outbound'].includes(v),
  Action: (v) => ['NotConfigured', 'Allow', 'Block'].includes(v),
  Profile: (v) => ['Any', 'Domain', 'Private', 'Public', 'NotApplicable'].includes(v),
  // "Protocols by name: TCP, UDP, ICMPv4, or ICMPv6", or a number 0-255.
  Protocol: (v) => ['TCP', 'UDP', 'ICMPv4', 'ICMPv6'].includes(v) || /^\d{1,3}$/.test(v),
  // "Port range: 0-65535. Port number: 80."
  LocalPort: (v) => isPortEntry(v),
  RemotePort: (v) => isPortEntry(v),
  // "ICMP type code: 0-255. ICMP type code pairs: 3:4. Keyword: Any."
  IcmpType: (v) => /^(\d{1,3})(:\d{1,3})?$/.test(v) || v === 'Any',
  // "Single IPv4/IPv6 address, subnet by bit count, IPv4 range 1.2.3.4-1.2.3.7, IPv6 range fe80::1-fe80::9".
  RemoteAddress: (v) => isAddressEntry(v),
};

/** Set-NetFirewallProfile: -Profile Domain,Public,Private -Enabled True -Default*Action NotConfigured|Allow|Block. */
const SET_PROFILE_PARAMETERS: Record<string, (v: string) => boolean> = {
  Profile: (v) => ['Domain', 'Private', 'Public'].includes(v),
  Enabled: (v) => ['True', 'False', 'NotConfigured'].includes(v),
  DefaultInboundAction: (v) => ['NotConfigured', 'Allow', 'Block'].includes(v),
  DefaultOutboundAction: (v) => ['NotConfigured', 'Allow', 'Block'].includes(v),
};

function isPortEntry(v: string): boolean {
  const m = /^(\d+)(?:-(\d+))?$/.exec(v);
  if (!m) return false;
  const from = Number(m[1]);
  const to = Number(m[2] ?? m[1]);
  return from >= 0 && to <= 65535 && from <= to;
}

// --- Reading the script back -------------------------------------------------------------

interface Command {
  readonly cmdlet: string;
  readonly params: Map<string, string[]>;
  readonly pipeline: string;
}

const QUOTES = "'\u2018\u2019\u201a\u201b";

/** Reads one command line the way PowerShell does for our subset: -Name value[,value...]. */
function parseCommand(line: string): Command {
  let i = line.indexOf(' ');
  const cmdlet = line.slice(0, i);
  const params = new Map<string, string[]>();
  const readValue = (): string => {
    if (QUOTES.includes(line[i]!)) {
      let out = '';
      i++;
      for (;;) {
        if (i >= line.length) throw new Error(`unterminated string in: ${line}`);
        const c = line[i]!;
        if (QUOTES.includes(c)) {
          if (QUOTES.includes(line[i + 1] ?? '')) {
            out += c;
            i += 2;
            continue;
          }
          i++;
          return out;
        }
        out += c;
        i++;
      }
    }
    const m = /^[^\s,|]+/.exec(line.slice(i))!;
    i += m[0].length;
    return m[0];
  };
  for (;;) {
    while (line[i] === ' ') i++;
    if (i >= line.length || line[i] === '|') break;
    if (line[i] !== '-') throw new Error(`expected a parameter at ${i} in: ${line}`);
    const name = /^-([A-Za-z]+)/.exec(line.slice(i))![1]!;
    i += name.length + 1;
    while (line[i] === ' ') i++;
    const values = [readValue()];
    while (line[i] === ',') {
      i++;
      values.push(readValue());
    }
    if (params.has(name)) throw new Error(`-${name} given twice in: ${line}`);
    params.set(name, values);
  }
  return { cmdlet, params, pipeline: line.slice(i).trim() };
}

function commands(script: string, cmdlet: string): Command[] {
  return script
    .split('\n')
    .filter((l) => l.startsWith(`${cmdlet} `))
    .map(parseCommand);
}

function newRules(script: string): Command[] {
  return commands(script, 'New-NetFirewallRule');
}

const param = (c: Command, name: string): string[] | undefined => c.params.get(name);
const one = (c: Command, name: string): string | undefined => c.params.get(name)?.[0];

/** Holds every command of a script to the recorded syntax. */
function expectDocumentedSyntax(script: string): void {
  for (const c of newRules(script)) {
    expect(c.pipeline).toBe('| Out-Null');
    expect(c.params.has('DisplayName')).toBe(true); // required when creating a rule
    for (const [name, values] of c.params) {
      const check = NEW_RULE_PARAMETERS[name];
      expect(check, `unknown parameter -${name}`).toBeDefined();
      if (check !== 'string') for (const v of values) expect(check!(v), `-${name} ${v}`).toBe(true);
    }
    // Ports need TCP or UDP; ICMP types need an ICMP protocol.
    if (c.params.has('LocalPort') || c.params.has('RemotePort'))
      expect(['TCP', 'UDP']).toContain(one(c, 'Protocol'));
    if (c.params.has('IcmpType')) expect(['ICMPv4', 'ICMPv6']).toContain(one(c, 'Protocol'));
    // LocalPort on inbound (our port), RemotePort on outbound (the server's port).
    if (c.params.has('LocalPort')) expect(one(c, 'Direction')).toBe('Inbound');
    if (c.params.has('RemotePort')) expect(one(c, 'Direction')).toBe('Outbound');
    const addresses = param(c, 'RemoteAddress');
    if (addresses) {
      expect(addresses.length).toBeGreaterThan(0);
      expect(addresses.length).toBeLessThanOrEqual(MAX_REMOTE_ADDRESSES);
    }
  }
  for (const c of commands(script, 'Set-NetFirewallProfile')) {
    for (const [name, values] of c.params) {
      const check = SET_PROFILE_PARAMETERS[name];
      expect(check, `unknown parameter -${name}`).toBeDefined();
      for (const v of values) expect(check!(v), `-${name} ${v}`).toBe(true);
    }
  }
}

// --- Hand-built endpoint policies ----------------------------------------------------------

const WEB = peerSet('p_web', '198.18.1.11', '198.18.1.12', '2001:db8::11');
const STAGING = peerSet('p_staging', '198.18.2.0/24');
const ADMINS = peerSet('p_admins', '198.18.9.10');

const ourRules = (script: string) =>
  newRules(script).filter((c) => !one(c, 'DisplayName')!.includes('neighbor discovery'));

// --- The example estate ------------------------------------------------------------------

describe('renderWindowsFirewall on the example estate', async () => {
  const loaded = await loadPolicy(['examples/estate']);
  const compiled = compilePolicy(loaded.resolved);

  it('follows the documented cmdlet syntax for every workload, deterministically', () => {
    for (const ep of compiled.endpoints.values()) {
      const out = renderWindowsFirewall(ep, compiled.peerSets);
      expectDocumentedSyntax(out.script);
      expect(renderWindowsFirewall(ep, compiled.peerSets)).toEqual(out);
      for (const c of newRules(out.script)) expect(one(c, 'Group')).toBe('Bulkhead');
    }
  });

  it('removes the previous Bulkhead group before adding, and sets the defaults last', () => {
    const out = renderWindowsFirewall(compiled.endpoints.get('shop-db-1')!, compiled.peerSets);
    const lines = out.script
      .split('\n')
      .filter((l) => l && !l.startsWith('#') && !l.startsWith('$'));
    expect(lines[0]).toBe(
      "Get-NetFirewallRule -Group 'Bulkhead' -ErrorAction SilentlyContinue | Remove-NetFirewallRule",
    );
    expect(lines.at(-1)).toBe(
      'Set-NetFirewallProfile -Profile Domain,Private,Public -Enabled True -DefaultInboundAction Block -DefaultOutboundAction Block',
    );
    expect(lines.slice(1, -1).every((l) => l.startsWith('New-NetFirewallRule '))).toBe(true);
  });

  it('full mode: allows as Allow, the override-deny as Block, no rule for the deny rule', () => {
    const out = renderWindowsFirewall(compiled.endpoints.get('shop-db-1')!, compiled.peerSets);
    const rules = ourRules(out.script);
    const blocks = rules
      .filter((c) => one(c, 'Action') === 'Block')
      .map((c) => one(c, 'DisplayName'));
    expect(blocks).toEqual(['Bulkhead: environment-separation/no-staging-to-prod (inbound block)']);
    const apiToDb = rules.find((c) => one(c, 'DisplayName')!.includes('shop/api-to-db'))!;
    expect(one(apiToDb, 'Direction')).toBe('Inbound');
    expect(one(apiToDb, 'Protocol')).toBe('TCP');
    expect(param(apiToDb, 'LocalPort')).toEqual(['3306']);
    expect(param(apiToDb, 'RemoteAddress')).toEqual(['198.18.1.21']);
    const dba = rules.find((c) => one(c, 'DisplayName')!.includes('dba-to-databases'))!;
    expect(param(dba, 'LocalPort')).toEqual(['22', '3306', '5432']);
    expect(rules.some((c) => one(c, 'DisplayName')!.includes('no-telnet'))).toBe(false);
  });

  it('writes ICMP as ICMPv4/ICMPv6 with -IcmpType, each with its own family of addresses', () => {
    const out = renderWindowsFirewall(compiled.endpoints.get('shop-db-1')!, compiled.peerSets);
    const ping = newRules(out.script).find((c) => one(c, 'DisplayName')!.includes('ping'))!;
    expect(one(ping, 'Protocol')).toBe('ICMPv4');
    expect(param(ping, 'IcmpType')).toEqual(['8']);
    expect(param(ping, 'RemoteAddress')!.every((a) => !a.includes(':'))).toBe(true);
  });

  it('writes ranges a-b for addresses and ports, and the whole IPv6 space as a range', () => {
    const web = renderWindowsFirewall(compiled.endpoints.get('shop-web-1')!, compiled.peerSets);
    const users = newRules(web.script).find((c) =>
      one(c, 'DisplayName')!.includes('users-to-web'),
    )!;
    expect(param(users, 'RemoteAddress')).toContain('198.19.0.0-198.19.98.255');
    expect(param(users, 'RemoteAddress')).toContain('::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
    const api = renderWindowsFirewall(compiled.endpoints.get('shop-web-1')!, compiled.peerSets);
    const toApi = newRules(api.script).find((c) => one(c, 'DisplayName')!.includes('web-to-api'))!;
    expect(param(toApi, 'RemotePort')).toEqual(['8080-8081']);
  });

  it('idle: only removes the Bulkhead rules and resets the defaults', () => {
    const out = renderWindowsFirewall(compiled.endpoints.get('jump-2')!, compiled.peerSets);
    expect(newRules(out.script)).toEqual([]);
    expect(out.script).toContain('Remove-NetFirewallRule');
    expect(out.script).toContain(
      '-DefaultInboundAction NotConfigured -DefaultOutboundAction NotConfigured',
    );
  });

  it('warns that a process-bound service matches the port for any program', () => {
    const out = renderWindowsFirewall(compiled.endpoints.get('shop-db-1')!, compiled.peerSets);
    expect(out.warnings).toEqual([
      expect.stringMatching(/shop\/api-to-db: port 3306\/tcp is bound to process "mysqld"/),
    ]);
  });
});

// --- Modes and precedence ------------------------------------------------------------------

describe('renderWindowsFirewall modes', () => {
  const sets = setsFor(WEB, STAGING, ADMINS);
  const actions = (script: string) =>
    ourRules(script).map((c) => `${one(c, 'DisplayName')!.replace('Bulkhead: ', '')}`);

  const rules = [
    rule('rs/override', 'override-deny', STAGING.id, 'all'),
    rule('rs/allow-web', 'allow', WEB.id, [tcp(443)]),
    rule('rs/deny-admins-telnet', 'deny', ADMINS.id, [tcp(23)]),
    rule('rs/deny-web-https', 'deny', WEB.id, [tcp(400, 500)]),
  ];

  it('full: Block only for override-deny; defaults Block', () => {
    const out = renderWindowsFirewall(endpointOf('full', rules), sets);
    expect(actions(out.script)).toEqual([
      'rs/override (inbound block)',
      'rs/allow-web (inbound allow, TCP)',
    ]);
    expect(out.script).toContain('-DefaultInboundAction Block -DefaultOutboundAction Block');
    expect(out.warnings).toEqual([]);
  });

  it('selective: a deny rule overlapping an allow rule is left out, with a warning naming both', () => {
    const out = renderWindowsFirewall(endpointOf('selective', rules), sets);
    expect(actions(out.script)).toEqual([
      'rs/override (inbound block)',
      'rs/allow-web (inbound allow, TCP)',
      'rs/deny-admins-telnet (inbound block, TCP)',
    ]);
    expect(out.warnings).toEqual([
      expect.stringMatching(
        /selective mode: inbound deny rule rs\/deny-web-https is not enforced on Windows.*allow rule\(s\) rs\/allow-web/,
      ),
    ]);
    expect(out.script).toContain(
      '-Enabled True -DefaultInboundAction NotConfigured -DefaultOutboundAction NotConfigured',
    );
  });

  it('selective: a deny rule whose services do not meet the allow rule is enforced', () => {
    const out = renderWindowsFirewall(
      endpointOf('selective', [
        rule('rs/allow-web', 'allow', WEB.id, [tcp(443)]),
        rule('rs/deny-web-telnet', 'deny', WEB.id, [tcp(23)]),
      ]),
      sets,
    );
    expect(actions(out.script)).toContain('rs/deny-web-telnet (inbound block, TCP)');
    expect(out.warnings).toEqual([]);
  });

  it('visibility: no Block rule at all, and the script says so', () => {
    const out = renderWindowsFirewall(endpointOf('visibility', rules, rules), sets);
    expect(newRules(out.script).filter((c) => one(c, 'Action') === 'Block')).toEqual([]);
    expect(out.script).toContain('# Mode visibility: no Block rules at all');
    expect(out.script).not.toContain('-Enabled True');
  });

  it('outbound rules use RemotePort, inbound rules LocalPort', () => {
    const out = renderWindowsFirewall(
      endpointOf(
        'full',
        [rule('rs/in', 'allow', WEB.id, [tcp(443)])],
        [rule('rs/out', 'allow', WEB.id, [tcp(5432)])],
      ),
      sets,
    );
    const [inbound, outbound] = ourRules(out.script);
    expect(param(inbound!, 'LocalPort')).toEqual(['443']);
    expect(param(outbound!, 'RemotePort')).toEqual(['5432']);
    expect(one(outbound!, 'Direction')).toBe('Outbound');
  });

  it('never writes an empty RemoteAddress (Windows would read it as any address)', () => {
    const empty = peerSet('p_empty');
    const out = renderWindowsFirewall(
      endpointOf('full', [rule('rs/nobody', 'allow', empty.id, 'all')]),
      setsFor(empty),
    );
    expect(ourRules(out.script)).toEqual([]);
    expect(out.script).toContain('# rs/nobody (inbound): no peer addresses, so no rule.');
  });

  it('cuts always-allowed endpoints out of Block rules, and warns when that is not exact', () => {
    const plane: ResolvedAlwaysAllowed = {
      name: 'control-plane',
      addresses: AddressSet.of(['198.18.2.1']),
      ports: [tcp(7480)],
      direction: 'both',
    };
    const exact = renderWindowsFirewall(
      endpointOf(
        'full',
        [],
        [rule('rs/no-staging', 'override-deny', STAGING.id, [tcp(7480)])],
        [plane],
      ),
      sets,
    );
    const block = ourRules(exact.script).find((c) => one(c, 'Action') === 'Block')!;
    expect(param(block, 'RemoteAddress')).toEqual(['198.18.2.0', '198.18.2.2-198.18.2.255']);
    expect(exact.warnings).toEqual([]);

    const partial = renderWindowsFirewall(
      endpointOf('full', [], [rule('rs/no-staging', 'override-deny', STAGING.id, 'all')], [plane]),
      sets,
    );
    expect(
      param(
        ourRules(partial.script).find((c) => one(c, 'Action') === 'Block')!,
        'RemoteAddress',
      ),
    ).not.toContain('198.18.2.1');
    expect(partial.warnings).toEqual([
      expect.stringMatching(/rs\/no-staging does not block always-allowed endpoint control-plane/),
    ]);
  });
});

// --- Services overlap ----------------------------------------------------------------------

describe('servicesOverlap', () => {
  it.each([
    ['all', [tcp(1)], true],
    ['all', [], false],
    [[tcp(80, 90)], [tcp(90, 100)], true],
    [[tcp(80, 89)], [tcp(90, 100)], false],
    [[tcp(53)], [{ proto: 'udp', ports: { from: 53, to: 53 } }], false],
    [[{ proto: 'icmp', icmpType: 8 }], [{ proto: 'icmp' }], true],
    [[{ proto: 'icmp', icmpType: 8 }], [{ proto: 'icmp', icmpType: 0 }], false],
    [[{ proto: 'icmp', icmpType: 8 }], [{ proto: 'icmpv6', icmpType: 8 }], false],
  ] as [CompiledRule['services'], CompiledRule['services'], boolean][])(
    '%j vs %j: %s',
    (a, b, expected) => {
      expect(servicesOverlap(a, b)).toBe(expected);
      expect(servicesOverlap(b, a)).toBe(expected);
    },
  );
});

// --- Large lists and hostile names ---------------------------------------------------------

describe('address lists and quoting', () => {
  it(`splits a RemoteAddress list beyond ${MAX_REMOTE_ADDRESSES} entries into several rules`, () => {
    // 2500 single addresses, none adjacent, so each stays one entry.
    const many = Array.from(
      { length: 2500 },
      (_, i) => `198.18.${Math.floor((2 * i) / 256)}.${(2 * i) % 256}`,
    );
    const big = peerSet('p_big', ...many);
    const out = renderWindowsFirewall(
      endpointOf('full', [rule('rs/big', 'allow', big.id, [tcp(443)])]),
      setsFor(big),
    );
    const parts = ourRules(out.script);
    expect(parts.map((c) => param(c, 'RemoteAddress')!.length)).toEqual([1000, 1000, 500]);
    expect(parts.map((c) => one(c, 'DisplayName'))).toEqual([
      'Bulkhead: rs/big (inbound allow, TCP) part 1/3',
      'Bulkhead: rs/big (inbound allow, TCP) part 2/3',
      'Bulkhead: rs/big (inbound allow, TCP) part 3/3',
    ]);
    expect(parts.flatMap((c) => param(c, 'RemoteAddress')!)).toEqual(many);
    expect(new Set(parts.map((c) => one(c, 'Name'))).size).toBe(3);
    expectDocumentedSyntax(out.script);
  });

  it.each([
    ["it's; rm -rf /", "'it''s; rm -rf /'"],
    ['$(Remove-Item C:\\ -Recurse) `n "x"', '\'$(Remove-Item C:\\ -Recurse) `n "x"\''],
    ['typographic \u2019 quote', "'typographic \u2019\u2019 quote'"],
    ['line\nbreak', "'line break'"],
  ])('quotes %j as %s', (raw, quoted) => {
    expect(psQuote(raw)).toBe(quoted);
  });

  it('keeps a hostile rule and workload name inside their strings and comments', () => {
    const hostile = "it's; rm -rf /\nRemove-NetFirewallRule -All # \u2019$(evil)";
    const sets = setsFor({ ...WEB, label: hostile });
    const out = renderWindowsFirewall(
      endpointOf('selective', [rule(hostile, 'allow', WEB.id, [tcp(443)])], [], [], hostile),
      sets,
    );
    // Every line is a comment, a known command, or blank: the name started no command.
    for (const line of out.script.split('\n')) {
      expect(line).toMatch(
        /^(#.*|\$ErrorActionPreference = 'Stop'|Get-NetFirewallRule .*|New-NetFirewallRule .*|Set-NetFirewallProfile .*|)$/,
      );
    }
    expect(out.script.match(/^Remove-NetFirewallRule/m)).toBeNull();
    const allow = ourRules(out.script)[0]!;
    // Read back by PowerShell's rules, the display name is the original text (line break as a space).
    expect(one(allow, 'DisplayName')).toBe(
      `Bulkhead: ${hostile.replace('\n', ' ')} (inbound allow, TCP)`,
    );
    expect(one(allow, 'Description')).toBe(`Peers: ${hostile.replace('\n', ' ')}`);
    expectDocumentedSyntax(out.script);
  });
});
