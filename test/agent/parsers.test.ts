/**
 * The parsers over output recorded on a real host (test/agent/fixtures): conntrack events
 * and dumps, ss, ip -j addr, nft -j, nft monitor, who, os-release.
 */
import { describe, expect, it } from 'vitest';
import { isEventLossNotice, parseConntrackLine } from '../../src/agent/parse/conntrack.js';
import { localAddresses, parseIpAddr, workloadAddresses } from '../../src/agent/parse/ip-addr.js';
import { parseNftListing, recordedElements } from '../../src/agent/parse/nft-json.js';
import { monitorLine } from '../../src/agent/parse/nft-monitor.js';
import { describeOs, parseOsRelease } from '../../src/agent/parse/os-release.js';
import { isListening, parseSs, parseSsLine } from '../../src/agent/parse/ss.js';
import { parsePasswd, parseWho, statusUid } from '../../src/agent/parse/users.js';
import { fixture, TABLE_JSON } from './support/fakes.js';

const lines = (name: string) => fixture(name).split('\n').filter(Boolean);

describe('conntrack lines', () => {
  it('reads events: the original direction, ports, bytes when accounted, the conntrack id', () => {
    const records = lines('conntrack-events.out').map(parseConntrackLine);
    expect(records.map((r) => r?.event)).toEqual([
      'new',
      'new',
      'new',
      'new',
      'destroy',
      'new',
      'new',
      'update',
    ]);
    expect(records[0]).toEqual({
      event: 'new',
      proto: 'tcp',
      src: '198.18.250.2',
      dst: '198.18.250.1',
      sport: 33766,
      dport: 8080,
      bytes: -1,
      id: 2183007099,
    });
    expect(records[2]).toMatchObject({
      src: '2001:db8::250:2',
      dst: '2001:db8::250:1',
      dport: 9090,
    });
    // Both directions' bytes: 60 out, 40 back.
    expect(records[4]).toMatchObject({ event: 'destroy', dport: 7777, bytes: 100, id: 3893612310 });
    expect(records[5]).toMatchObject({ proto: 'udp', dport: 5353 });
    // ICMP: no ports; the echo id (4660) is not the conntrack id.
    expect(records[6]).toMatchObject({ proto: 'icmp', sport: -1, dport: -1, id: 1899990169 });
  });

  it('reads a dump, and ignores what is not a connection', () => {
    const records = lines('conntrack-dump.out').map(parseConntrackLine);
    expect(records.every((r) => r?.event === 'entry')).toBe(true);
    expect(records.map((r) => [r!.proto, r!.dport, r!.bytes, r!.id])).toEqual([
      ['tcp', 9090, 594, 3939065737],
      ['udp', 5353, 58, 1609375701],
      ['tcp', 8080, 542, 128588903],
      ['tcp', 8080, 1380, 853841190],
      ['icmp', -1, 72, 1899990169],
    ]);
    for (const junk of [
      'conntrack v1.4.7 (conntrack-tools): 4 flow entries have been shown.',
      '',
      'sctp     132 10 CLOSED src=1.2.3.4 dst=5.6.7.8 sport=1 dport=2 id=3',
      '[NEW] tcp 6 120 SYN_SENT src=198.18.0.1',
    ])
      expect(parseConntrackLine(junk)).toBeNull();
    expect(
      parseConntrackLine(
        'ipv4     2 tcp      6 116 TIME_WAIT src=198.18.250.2 dst=198.18.250.1 sport=43640 dport=8080 packets=6 bytes=820 src=198.18.250.1 dst=198.18.250.2 sport=8080 dport=43640 packets=4 bytes=716 [ASSURED] mark=0 use=1 id=2386884498',
      ),
    ).toMatchObject({ proto: 'tcp', dport: 8080, bytes: 1536, id: 2386884498 });
  });

  it('recognises the event-loss warning', () => {
    expect(isEventLossNotice('WARNING: We have hit ENOBUFS! We are losing events.')).toBe(true);
    expect(
      isEventLossNotice('NOTICE: Netlink socket buffer size has been set to 16777216 bytes.'),
    ).toBe(false);
  });
});

describe('ss', () => {
  it('reads listeners with their processes: wildcards, IPv6, no process', () => {
    const listening = parseSs(fixture('ss-listen.out'));
    expect(listening).toEqual([
      {
        proto: 'udp',
        state: 'UNCONN',
        local: { address: '*', port: 5353 },
        peer: null,
        process: { name: 'node', pid: 10515 },
      },
      {
        proto: 'tcp',
        state: 'LISTEN',
        local: { address: '*', port: 8080 },
        peer: null,
        process: { name: 'node', pid: 10515 },
      },
      {
        proto: 'tcp',
        state: 'LISTEN',
        local: { address: '*', port: 9090 },
        peer: null,
        process: { name: 'node', pid: 10515 },
      },
    ]);
    expect(listening.every(isListening)).toBe(true);
    const host = parseSs(fixture('ss-host-listen.out'));
    expect(
      host.find((s) => s.local.port === 6379 && s.local.address === '::1')?.process?.name,
    ).toBe('redis-server');
    const anonymous = host.find((s) => s.local.port === 2024)!;
    expect(anonymous.process).toBeNull();
    expect(host.find((s) => s.local.port === 3306)).toMatchObject({
      local: { address: '127.0.0.1' },
      process: { name: 'mariadbd', pid: 3779 },
    });
  });

  it('reads connected sockets, with and without a process', () => {
    const client = parseSs(fixture('ss-client.out'));
    expect(client[0]).toEqual({
      proto: 'tcp',
      state: 'ESTAB',
      local: { address: '198.18.250.2', port: 33766 },
      peer: { address: '198.18.250.1', port: 8080 },
      process: { name: 'node', pid: 10552 },
    });
    expect(client[1]).toMatchObject({ state: 'TIME-WAIT', process: null });
    const server = parseSs(fixture('ss-server.out'));
    expect(server.find((s) => s.state === 'TIME-WAIT')?.local).toEqual({
      address: '2001:db8::250:1',
      port: 9090,
    });
  });

  it('reads the one-protocol form, interface scopes, IPv4-mapped addresses and names with spaces', () => {
    expect(
      parseSsLine('LISTEN 0 511 *:45678 *:* users:(("pgsrv",pid=13739,fd=19))', 'tcp'),
    ).toMatchObject({
      proto: 'tcp',
      local: { address: '*', port: 45678 },
      process: { name: 'pgsrv' },
    });
    expect(
      parseSsLine(
        'udp UNCONN 0 0 127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=1,fd=13))',
      )?.local,
    ).toEqual({ address: '127.0.0.53', port: 53 });
    expect(
      parseSsLine(
        'tcp ESTAB 0 0 [::ffff:198.18.0.5]:8080 [::ffff:198.18.0.9]:5000 users:(("Web Content",pid=7,fd=3))',
      ),
    ).toMatchObject({
      local: { address: '198.18.0.5', port: 8080 },
      process: { name: 'Web Content' },
    });
    expect(
      parseSsLine('Netid State Recv-Q Send-Q Local Address:Port Peer Address:Port'),
    ).toBeNull();
  });
});

describe('ip -j addr', () => {
  it('reads interfaces and addresses; the workload is known by neither loopback nor link-local', () => {
    const interfaces = parseIpAddr(fixture('ip-j-addr.out'));
    expect(interfaces).toEqual([
      { name: 'lo', addresses: ['127.0.0.1/8', '::1/128'] },
      {
        name: 'bhaxb',
        addresses: ['198.18.250.2/24', '2001:db8::250:2/64', 'fe80::6868:c6ff:fe1c:8785/64'],
      },
    ]);
    expect(workloadAddresses(interfaces)).toEqual(['198.18.250.2', '2001:db8::250:2']);
    expect([...localAddresses(interfaces)]).toContain('127.0.0.1');
    expect(() => parseIpAddr('{"not": "ip"}')).toThrow(/unexpected output/);
  });
});

describe('nft -j list table', () => {
  it("reads Bulkhead's table and the attempts its recording sets hold", () => {
    const listing = parseNftListing(TABLE_JSON());
    expect(listing.sets).toHaveLength(22);
    expect(listing.chains.map((c) => c.name)).toEqual([
      'block_in',
      'potential_in',
      'block_out',
      'potential_out',
      'input',
      'output',
    ]);
    expect(listing.rules.filter((r) => r.chain === 'input')).toHaveLength(15);
    expect(recordedElements(listing)).toEqual([
      {
        set: 'blocked_in4',
        verdict: 'blocked',
        direction: 'inbound',
        remote: '198.18.250.2',
        proto: 'tcp',
        port: 23,
        packets: 2,
        bytes: 120,
        expiresSeconds: 3599,
        timeoutSeconds: 3600,
      },
      {
        set: 'blocked_in4',
        verdict: 'blocked',
        direction: 'inbound',
        remote: '198.18.250.2',
        proto: 'tcp',
        port: 8080,
        packets: 2,
        bytes: 120,
        expiresSeconds: 3599,
        timeoutSeconds: 3600,
      },
      {
        set: 'blocked_in4',
        verdict: 'blocked',
        direction: 'inbound',
        remote: '198.18.250.2',
        proto: 'udp',
        port: 5353,
        packets: 1,
        bytes: 29,
        expiresSeconds: 3598,
        timeoutSeconds: 3600,
      },
      {
        set: 'blocked_in6',
        verdict: 'blocked',
        direction: 'inbound',
        remote: '2001:db8::250:2',
        proto: 'tcp',
        port: 9090,
        packets: 2,
        bytes: 160,
        expiresSeconds: 3599,
        timeoutSeconds: 3600,
      },
    ]);
    expect(() => parseNftListing({ tables: [] })).toThrow(/unexpected output/);
  });
});

describe('nft monitor', () => {
  it("groups lines into transactions: whether each touched Bulkhead's table, and who committed it", () => {
    // Recorded with stderr in the same stream: an incremental update, someone adding a peer
    // (nft 1.0.6 lost track of the set when the update deleted the rules naming it, so it
    // warns instead of printing the element), the host's own table, `nft flush ruleset`.
    const transactions: { touched: boolean; pid: number | null }[] = [];
    let touched = false;
    for (const line of lines('nft-monitor.out')) {
      const m = monitorLine(line, 'inet bulkhead');
      if (m?.kind === 'touched') touched = true;
      if (m?.kind === 'committed') {
        transactions.push({ touched, pid: m.pid });
        touched = false;
      }
    }
    expect(transactions).toEqual([
      { touched: true, pid: 14142 },
      { touched: true, pid: 14144 },
      { touched: false, pid: 14148 },
      { touched: true, pid: 14151 },
    ]);
    expect(monitorLine('# ERROR: We lost some netlink events!', 'inet bulkhead')).toEqual({
      kind: 'lost',
    });
    expect(monitorLine('# new generation 7', 'inet bulkhead')).toEqual({
      kind: 'committed',
      pid: null,
    });
    expect(monitorLine('add table inet bulkhead_lab', 'inet bulkhead')).toBeNull();
  });
});

describe('users and OS', () => {
  it('reads who, passwd and /proc status', () => {
    expect(parseWho(fixture('who.out'))).toEqual(['alice', 'bob', 'root']);
    expect(parseWho('')).toEqual([]);
    const passwd = parsePasswd(
      'root:x:0:0:root:/root:/bin/bash\npostgres:x:105:111::/var/lib/postgresql:/bin/bash\n',
    );
    expect(passwd.get(105)).toBe('postgres');
    expect(statusUid('Name:\tgrep\nPPid:\t11229\nUid:\t105\t105\t105\t105\n')).toBe(105);
  });

  it('reads os-release', () => {
    expect(parseOsRelease(fixture('os-release'))).toMatchObject({ ID: 'debian', VERSION_ID: '12' });
    expect(describeOs(fixture('os-release'), '6.1.0')).toBe(
      'Debian GNU/Linux 12 (bookworm); Linux 6.1.0',
    );
    expect(describeOs(null, null)).toBeUndefined();
  });
});
