/**
 * The flow importers over each format a person brings: what is read from good files, and
 * that a file with any bad line is refused whole with the line and field named.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  ImportError,
  readFlowFile,
  type FlowImportFormat,
} from '../../src/importers/flows/index.js';

function rejection(format: FlowImportFormat, text: string): string {
  try {
    readFlowFile(format, text);
  } catch (e) {
    expect(e).toBeInstanceOf(ImportError);
    return (e as Error).message;
  }
  throw new Error('the file was accepted');
}

describe('Bulkhead CSV', () => {
  const header = 'src,dst,proto,port,process,first_seen,last_seen,connections,bytes';

  it('reads each row as one summary, in canonical form', () => {
    const r = readFlowFile(
      'csv',
      [
        header,
        '10.0.0.1,10.0.0.2,tcp,443,nginx,2026-11-23T10:00:00Z,2026-11-23T11:05:00+01:00,12,3400',
        '2001:DB8::1,2001:db8::2,ICMP,,,2026-11-23T10:00:00.000Z,2026-11-23T10:00:00.000Z,1,84',
        '',
      ].join('\r\n'),
    );
    expect(r.skipped).toBe(0);
    expect(r.summaries).toEqual([
      {
        src: '10.0.0.1',
        dst: '10.0.0.2',
        proto: 'tcp',
        dport: 443,
        process: 'nginx',
        first_seen: '2026-11-23T10:00:00.000Z',
        last_seen: '2026-11-23T10:05:00.000Z',
        connections: 12,
        bytes: 3400,
      },
      {
        src: '2001:db8::1',
        dst: '2001:db8::2',
        proto: 'icmp',
        dport: null,
        process: null,
        first_seen: '2026-11-23T10:00:00.000Z',
        last_seen: '2026-11-23T10:00:00.000Z',
        connections: 1,
        bytes: 84,
      },
    ]);
  });

  it('takes the columns in any order, without process', () => {
    const r = readFlowFile(
      'csv',
      'bytes,connections,last_seen,first_seen,port,proto,dst,src\n5,1,2026-11-23T10:00:00Z,2026-11-23T10:00:00Z,53,udp,10.0.0.53,10.0.0.1\n',
    );
    expect(r.summaries).toMatchObject([
      { src: '10.0.0.1', dst: '10.0.0.53', dport: 53, process: null },
    ]);
  });

  it('names each bad line and field, and stores nothing', () => {
    const msg = rejection(
      'csv',
      [
        header,
        '10.0.0.1,10.0.0.2,tcp,443,nginx,2026-11-23T10:00:00Z,2026-11-23T10:05:00Z,12,3400',
        '10.0.0.1,10.0.0.999,tcp,70000,,2026-11-23T10:00:00Z,2026-11-23T10:05:00Z,1,1',
        '10.0.0.1,10.0.0.2,tcp,22,,yesterday,2026-11-23T10:05:00Z,-1,1',
        '10.0.0.1,10.0.0.2,tcp,22,,2026-11-23T10:05:00Z,2026-11-23T10:00:00Z,1,1',
      ].join('\n'),
    );
    expect(msg).toContain('nothing was stored');
    expect(msg).toContain('line 3, dst: "10.0.0.999" is not an IP address');
    expect(msg).toContain('line 3, port: "70000" is not a port (1-65535)');
    expect(msg).toContain('line 4, first_seen: "yesterday" is not a time');
    expect(msg).toContain('line 4, connections: "-1" is not a whole number');
    expect(msg).toContain('line 5, last_seen: 2026-11-23T10:00:00.000Z is before first_seen');
    expect(msg).not.toContain('line 2');
  });

  it('says which header columns are missing or unknown', () => {
    expect(rejection('csv', 'src,dst,proto,port,first,last_seen,connections,bytes\n')).toContain(
      'line 1, first_seen: the header has no first_seen column',
    );
    expect(rejection('csv', 'src,dst,proto,port,first,last_seen,connections,bytes\n')).toContain(
      'line 1, first: "first" is not a column',
    );
    expect(rejection('csv', '')).toContain('line 1: the file is empty');
    expect(rejection('csv', `${header}\n10.0.0.1,10.0.0.2,tcp,443\n`)).toContain(
      'line 2: 4 fields where the header has 9',
    );
  });

  it('an ICMP row may not carry a port; a TCP row must', () => {
    const msg = rejection(
      'csv',
      `${header}\n10.0.0.1,10.0.0.2,icmp,8,,2026-11-23T10:00:00Z,2026-11-23T10:00:00Z,1,1\n10.0.0.1,10.0.0.2,tcp,,,2026-11-23T10:00:00Z,2026-11-23T10:00:00Z,1,1\n`,
    );
    expect(msg).toContain('line 2, port: "8": icmp has no port');
    expect(msg).toContain('line 3, port: tcp needs a port');
  });
});

describe('Bulkhead JSON', () => {
  it('reads an array of camelCase summaries', () => {
    const r = readFlowFile(
      'json',
      JSON.stringify([
        {
          src: '10.0.0.1',
          dst: '10.0.0.2',
          proto: 'tcp',
          port: 5432,
          process: 'postgres',
          firstSeen: '2026-11-23T10:00:00Z',
          lastSeen: '2026-11-23T11:00:00Z',
          connections: 40,
          bytes: 1_000_000,
        },
      ]),
    );
    expect(r.summaries).toEqual([
      {
        src: '10.0.0.1',
        dst: '10.0.0.2',
        proto: 'tcp',
        dport: 5432,
        process: 'postgres',
        first_seen: '2026-11-23T10:00:00.000Z',
        last_seen: '2026-11-23T11:00:00.000Z',
        connections: 40,
        bytes: 1_000_000,
      },
    ]);
  });

  it('names the line and element of each bad field', () => {
    const good = {
      src: '10.0.0.1',
      dst: '10.0.0.2',
      proto: 'udp',
      port: 53,
      firstSeen: '2026-11-23T10:00:00Z',
      lastSeen: '2026-11-23T10:00:00Z',
      connections: 1,
      bytes: 1,
    };
    const text = JSON.stringify(
      [good, { ...good, proto: 'gre' }, { ...good, bytes: 1.5, port: '53' }],
      null,
      2,
    );
    const msg = rejection('json', text);
    expect(msg).toContain('line 12, [1].proto: "gre" is not a protocol');
    expect(msg).toContain('line 22, [2].bytes: 1.5 is not a whole number');
    expect(rejection('json', JSON.stringify([{ ...good, dport: 53 }]))).toContain(
      '[0].dport: is not a field',
    );
  });

  it('refuses what is not a JSON array', () => {
    expect(rejection('json', '{"src": "10.0.0.1"}')).toContain('expected one JSON array');
    expect(rejection('json', '[\n{"src": "10.0.0.1",\n}\n]')).toMatch(/line 3: not valid JSON/);
  });
});

describe('conntrack', () => {
  it('reads a dump recorded on a real host: one connection per entry, both directions’ bytes', async () => {
    const text = await readFile('test/agent/fixtures/conntrack-dump.out', 'utf8');
    const now = new Date('2026-11-23T12:00:00Z');
    const r = readFlowFile('conntrack', text, now);
    const byPort = Object.fromEntries(
      r.summaries.map((s) => [`${s.dst}:${s.proto}/${s.dport}`, s]),
    );
    expect(byPort['198.18.250.1:tcp/8080']).toMatchObject({
      src: '198.18.250.2',
      connections: 2,
      bytes: 323 + 219 + 716 + 664,
      first_seen: now.toISOString(),
    });
    expect(byPort['2001:db8::250:1:tcp/9090']).toMatchObject({ connections: 1, bytes: 594 });
    expect(byPort['198.18.250.1:udp/5353']).toMatchObject({ connections: 1 });
    expect(byPort['198.18.250.1:icmp/null']).toMatchObject({ connections: 1, bytes: 72 });
  });

  it('reads -o extended and timestamped event logs, counting each NEW once', () => {
    const r = readFlowFile(
      'conntrack',
      [
        '[1763892000.250000]\t    [NEW] ipv4     2 tcp      6 120 SYN_SENT src=10.1.0.5 dst=10.2.0.9 sport=40000 dport=443 [UNREPLIED] src=10.2.0.9 dst=10.1.0.5 sport=443 dport=40000',
        '[1763892001.000000]\t [UPDATE] ipv4     2 tcp      6 60 SYN_RECV src=10.1.0.5 dst=10.2.0.9 sport=40000 dport=443 src=10.2.0.9 dst=10.1.0.5 sport=443 dport=40000',
        '[1763892060.500000]\t[DESTROY] ipv4     2 tcp      6 src=10.1.0.5 dst=10.2.0.9 sport=40000 dport=443 packets=10 bytes=1000 src=10.2.0.9 dst=10.1.0.5 sport=443 dport=40000 packets=8 bytes=2000 [ASSURED]',
        '[1763892061.000000]\t    [NEW] ipv4     2 gre      47 30 src=10.1.0.5 dst=10.2.0.9 srckey=0x0 dstkey=0x0',
        'ipv4     2 tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=5000 dport=6379 packets=1 bytes=60 src=127.0.0.1 dst=127.0.0.1 sport=6379 dport=5000 packets=1 bytes=60 [ASSURED] mark=0 use=1',
        'conntrack v1.4.7 (conntrack-tools): 5 flow entries have been shown.',
      ].join('\n'),
    );
    expect(r.summaries).toEqual([
      {
        src: '10.1.0.5',
        dst: '10.2.0.9',
        proto: 'tcp',
        dport: 443,
        process: null,
        first_seen: '2025-11-23T10:00:00.250Z',
        last_seen: '2025-11-23T10:01:00.500Z',
        connections: 1,
        bytes: 3000,
      },
    ]);
    // The UPDATE, the GRE entry and the loopback one.
    expect(r.skipped).toBe(3);
  });

  it('counts DESTROY events when the log holds no NEW ones', () => {
    const line =
      '[DESTROY] udp      17 src=10.1.0.5 dst=10.2.0.53 sport=5000 dport=53 packets=1 bytes=70 src=10.2.0.53 dst=10.1.0.5 sport=53 dport=5000 packets=1 bytes=120';
    const r = readFlowFile('conntrack', `${line}\n${line}\n`);
    expect(r.summaries).toMatchObject([{ connections: 2, bytes: 380, dport: 53 }]);
  });

  it('names the line and field it cannot read', () => {
    const msg = rejection(
      'conntrack',
      [
        'tcp      6 118 TIME_WAIT src=10.0.0.1 dst=10.0.0.2 sport=1 dport=80 packets=1 bytes=10',
        'tcp      6 118 TIME_WAIT src=10.0.0.1 dst=10.0.0.300 sport=1 dport=80',
        'tcp      6 118 TIME_WAIT src=10.0.0.1 sport=1 dport=80',
        'hello world',
      ].join('\n'),
    );
    expect(msg).toContain('line 2, dst: "10.0.0.300" is not an IP address');
    expect(msg).toContain('line 3, dst: missing');
    expect(msg).toContain('line 4: not a conntrack entry');
  });
});

describe('NetFlow (nfdump -o csv)', () => {
  const header =
    'ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,das,smk,dmk,dtos,dir,nh,nhb,svln,dvln,ismc,odmc,idmc,osmc,mpls1,mpls2,mpls3,mpls4,mpls5,mpls6,mpls7,mpls8,mpls9,mpls10,cl,sl,al,ra,eng,exid,tr';
  const tail =
    ',0,0,0,0,0,0,0,0.0.0.0,0.0.0.0,0,0,00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0.000,0.000,0.000,10.255.0.1,0/0,1,1970-01-01 00:00:00.000';
  const row = (
    ts: string,
    te: string,
    sa: string,
    da: string,
    sp: number,
    dp: string,
    pr: string,
    bytes: number,
  ) => `${ts},${te},1.000,${sa},${da},${sp},${dp},${pr},.AP.SF,0,0,10,${bytes},0,0${tail}`;

  it('reads flows, folds answers into their connection, and stops at the summary', () => {
    const text = [
      header,
      row(
        '2026-11-23 10:00:00.000',
        '2026-11-23 10:00:01.000',
        '10.1.0.5',
        '10.2.0.9',
        40000,
        '443',
        'TCP',
        1000,
      ),
      row(
        '2026-11-23 10:00:00.100',
        '2026-11-23 10:00:01.000',
        '10.2.0.9',
        '10.1.0.5',
        443,
        '40000',
        'TCP',
        5000,
      ),
      row(
        '2026-11-23 10:05:00.000',
        '2026-11-23 10:05:02.000',
        '10.1.0.5',
        '10.2.0.9',
        40001,
        '443',
        'TCP',
        800,
      ),
      row(
        '2026-11-23 10:06:00.000',
        '2026-11-23 10:06:00.000',
        '10.1.0.5',
        '10.2.0.9',
        0,
        '8.0',
        'ICMP',
        84,
      ),
      row(
        '2026-11-23 10:06:00.000',
        '2026-11-23 10:06:00.000',
        '10.1.0.5',
        '10.2.0.9',
        0,
        '0',
        'GRE',
        84,
      ),
      '',
      'Summary',
      'flows,bytes,packets,avg_bps,avg_pps,avg_bpp',
      '5,6968,50,0,0,0',
    ].join('\n');
    const r = readFlowFile('netflow', text);
    expect(r.skipped).toBe(1);
    expect(r.summaries).toEqual([
      {
        src: '10.1.0.5',
        dst: '10.2.0.9',
        proto: 'tcp',
        dport: 443,
        process: null,
        first_seen: '2026-11-23T10:00:00.000Z',
        last_seen: '2026-11-23T10:05:02.000Z',
        connections: 2,
        bytes: 6800,
      },
      {
        src: '10.1.0.5',
        dst: '10.2.0.9',
        proto: 'icmp',
        dport: null,
        process: null,
        first_seen: '2026-11-23T10:06:00.000Z',
        last_seen: '2026-11-23T10:06:00.000Z',
        connections: 1,
        bytes: 84,
      },
    ]);
  });

  it('names the line and column it cannot read', () => {
    const msg = rejection(
      'netflow',
      [
        header,
        row(
          '2026-11-23 10:00:00',
          '2026-11-23 10:00:01',
          '10.1.0.5',
          '10.2.0.9',
          40000,
          '99999',
          'TCP',
          10,
        ),
        row(
          '23/11/2026 10:00',
          '2026-11-23 10:00:01',
          '10.1.0.5',
          'nowhere',
          40000,
          '443',
          'TCP',
          10,
        ),
      ].join('\n'),
    );
    expect(msg).toContain('line 2, dp: "99999" is not a port (1-65535)');
    expect(msg).toContain('line 3, da: "nowhere" is not an IP address');
    expect(msg).toContain('line 3, ts: "23/11/2026 10:00" is not a time');
    expect(rejection('netflow', 'a,b,c\n1,2,3\n')).toContain(
      'line 1, ts: the header has no ts column (is this nfdump -o csv output?)',
    );
  });
});
