import { describe, expect, it } from 'vitest';
import type { FlowEnd, TrafficRecord } from '../../src/analysis/flows/model.js';
import { generateDemo, type DemoEstate } from '../../src/demo/index.js';
import { decide, type Decision, type FlowEndpoint } from '../../src/policy/decide.js';
import type { ResolvedPolicy } from '../../src/policy/resolve.js';
import { resolveStored } from '../../src/server/policy-state.js';

const NOW = new Date('2026-11-24T10:17:42Z');
const demo = generateDemo({ now: NOW, weeks: 3 });
const policy = resolveStored(demo.documents, demo.workloads);

function endpoint(p: ResolvedPolicy, end: FlowEnd): FlowEndpoint {
  if (end.workload === undefined) return { address: end.address };
  const w = p.workloadByName.get(end.workload);
  if (!w) throw new Error(`no workload ${end.workload}`);
  return { address: w.addresses[0]!, workload: w };
}

function decisionOf(key: DemoEstate['conversations'][number]['key']): Decision {
  return decide(policy, {
    source: endpoint(policy, key.source),
    destination: endpoint(policy, key.destination),
    proto: key.proto,
    ...(key.port !== null ? { port: key.port } : {}),
    ...(key.process !== null ? { process: key.process } : {}),
  }).decision;
}

const keyText = (r: { key: unknown }) => JSON.stringify(r.key);
const story = (s: string) => {
  const found = demo.conversations.filter((c) => c.story === s);
  expect(found.length, s).toBeGreaterThan(0);
  return found;
};
const seconds = (iso: string) => Date.parse(iso) / 1000;

describe('the demo estate', () => {
  it('is the same estate and traffic for the same seed and time, and other traffic for another seed', () => {
    const again = generateDemo({ now: NOW, weeks: 3 });
    expect(again.workloads).toEqual(demo.workloads);
    expect(again.documents).toEqual(demo.documents);
    expect(again.traffic).toEqual(demo.traffic);
    const other = generateDemo({ now: NOW, weeks: 3, seed: 7 });
    expect(other.workloads).toEqual(demo.workloads);
    expect(other.traffic).not.toEqual(demo.traffic);
  });

  it('looks like a real estate: several apps in prod, staging and dev, mixed modes, unique addresses', () => {
    expect(demo.workloads.length).toBeGreaterThanOrEqual(60);
    expect(demo.workloads.length).toBeLessThanOrEqual(120);
    const apps = new Set(demo.workloads.map((w) => w.labels.app));
    expect([...apps]).toEqual(
      expect.arrayContaining(['shop', 'payments', 'crm', 'hr', 'monitoring', 'directory']),
    );
    expect(new Set(demo.workloads.map((w) => w.labels.env))).toEqual(
      new Set(['prod', 'staging', 'dev']),
    );
    expect(new Set(demo.workloads.map((w) => w.mode))).toEqual(
      new Set(['full', 'selective', 'visibility', 'idle']),
    );
    expect(demo.workloads.some((w) => !w.managed)).toBe(true);
    const addresses = demo.workloads.flatMap((w) => w.addresses);
    expect(new Set(addresses).size).toBe(addresses.length);
    expect(new Set(demo.workloads.map((w) => w.name)).size).toBe(demo.workloads.length);
    expect(demo.documents.filter((d) => d.kind === 'IpList').map((d) => d.name)).toEqual(
      expect.arrayContaining(['corporate-users', 'partners', 'internet']),
    );
  });

  it('has traffic that its own policy allows, potentially blocks and blocks', () => {
    const connections = new Map<string, number>();
    for (const r of demo.traffic)
      connections.set(keyText(r), (connections.get(keyText(r)) ?? 0) + r.connections);
    const byDecision: Record<Decision, number> = {
      allowed: 0,
      'potentially-blocked': 0,
      blocked: 0,
    };
    for (const c of demo.conversations)
      byDecision[decisionOf(c.key)] += connections.get(keyText(c)) ?? 0;
    expect(byDecision.blocked).toBeGreaterThan(0);
    expect(byDecision['potentially-blocked']).toBeGreaterThan(0);
    // Most traffic is what the team already wrote rules for.
    const total = byDecision.allowed + byDecision.blocked + byDecision['potentially-blocked'];
    expect(byDecision.allowed / total).toBeGreaterThan(0.9);

    for (const c of [...story('shoppers'), ...story('web calls api'), ...story('dns')])
      expect(decisionOf(c.key), c.story).toBe('allowed');
    for (const c of [
      ...story('dev reaches prod'),
      ...story('web skips the api'),
      ...story('ssh scan'),
      ...story('staging pointed at prod'),
    ])
      expect(decisionOf(c.key), c.story).toBe('blocked');
    for (const c of [
      ...story('dev uses prod data'),
      ...story('legacy payroll batch'),
      ...story('CRM email SaaS'),
    ])
      expect(decisionOf(c.key), c.story).toBe('potentially-blocked');
  });

  it('reports the scans a fully enforcing destination drops as blocked attempts, and nothing else', () => {
    const dropped = new Set([...story('ssh scan'), ...story('telnet scan')].map(keyText));
    const blocked = demo.traffic.filter((r) => (r.blocked ?? 0) > 0);
    expect(blocked.length).toBeGreaterThan(0);
    for (const r of blocked) {
      expect(dropped.has(keyText(r)), keyText(r)).toBe(true);
      expect(r.blocked).toBe(r.connections);
    }
    for (const c of demo.conversations.filter((c) => dropped.has(keyText(c)))) {
      expect(decisionOf(c.key)).toBe('blocked');
      const target = demo.workloads.find((w) => w.name === c.key.destination.workload);
      expect(target?.mode).toBe('full');
    }
  });

  it('is busier in office hours than at night, and quieter at weekends', () => {
    const staff = new Set(
      demo.conversations.filter((c) => c.shape === 'office').map((c) => keyText(c)),
    );
    const perHour = new Map<number, number>();
    for (const r of demo.traffic) {
      if (!staff.has(keyText(r))) continue;
      const hour = Math.floor(seconds(r.lastSeen) / 3600) * 3600;
      perHour.set(hour, (perHour.get(hour) ?? 0) + r.connections);
    }
    const mean = (pred: (d: Date) => boolean) => {
      const values = [...perHour].filter(([h]) => pred(new Date(h * 1000))).map(([, n]) => n);
      return values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
    };
    const weekday = (d: Date) => d.getUTCDay() >= 1 && d.getUTCDay() <= 5;
    const office = mean((d) => weekday(d) && d.getUTCHours() >= 9 && d.getUTCHours() < 17);
    const night = mean((d) => weekday(d) && d.getUTCHours() >= 1 && d.getUTCHours() < 5);
    const weekendDay = mean((d) => !weekday(d) && d.getUTCHours() >= 9 && d.getUTCHours() < 17);
    expect(office).toBeGreaterThan(5 * night);
    expect(office).toBeGreaterThan(5 * weekendDay);
    // All traffic together: weekdays are busier than weekend days.
    const perDay = new Map<number, number>();
    for (const r of demo.traffic) {
      const day = Math.floor(seconds(r.lastSeen) / 86400);
      perDay.set(day, (perDay.get(day) ?? 0) + r.connections);
    }
    const days = [...perDay].slice(1, -1);
    const isWeekend = (day: number) => [0, 6].includes(new Date(day * 86400_000).getUTCDay());
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(avg(days.filter(([d]) => !isWeekend(d)).map(([, n]) => n))).toBeGreaterThan(
      1.2 * avg(days.filter(([d]) => isWeekend(d)).map(([, n]) => n)),
    );
  });

  it('covers the weeks asked for, per hour, with the last hours per minute', () => {
    const times = demo.traffic.map((r) => seconds(r.lastSeen));
    const nowS = NOW.getTime() / 1000;
    expect(times.reduce((a, b) => Math.min(a, b))).toBeLessThan(nowS - 3 * 7 * 86400 + 3600);
    expect(times.reduce((a, b) => Math.max(a, b))).toBeLessThanOrEqual(nowS);
    // The current hour and the six before it are per minute: any 6-hour window has minutes.
    const minuteFrom = Math.floor(nowS / 3600) * 3600 - 6 * 3600;
    const recent = demo.traffic.filter((r) => seconds(r.firstSeen) >= minuteFrom);
    const older = demo.traffic.filter((r) => seconds(r.lastSeen) < minuteFrom - 3600);
    const bucketOf = (r: TrafficRecord, width: number) => [
      Math.floor(seconds(r.firstSeen) / width),
      Math.floor(seconds(r.lastSeen) / width),
    ];
    // Recent records each fall in one minute; older ones in one hour, spread over it.
    for (const r of recent) expect(new Set(bucketOf(r, 60)).size).toBe(1);
    for (const r of older) expect(new Set(bucketOf(r, 3600)).size).toBe(1);
    expect(older.some((r) => seconds(r.lastSeen) - seconds(r.firstSeen) > 600)).toBe(true);
    // Every minute of the last hour has traffic.
    const lastHourMinutes = new Set(
      recent
        .filter((r) => seconds(r.lastSeen) >= nowS - 3600)
        .map((r) => Math.floor(seconds(r.lastSeen) / 60)),
    );
    expect(lastHourMinutes.size).toBeGreaterThanOrEqual(59);
    // Load size: a few hundred thousand rows at most even at 8 weeks.
    expect(demo.traffic.length).toBeLessThan(250_000);
  });

  it('shows incidents only when they happened', () => {
    const [incident] = story('staging pointed at prod');
    const nowS = NOW.getTime() / 1000;
    const times = demo.traffic
      .filter((r) => keyText(r) === keyText(incident!))
      .map((r) => nowS - seconds(r.lastSeen));
    expect(times.length).toBeGreaterThan(0);
    for (const ago of times) {
      expect(ago).toBeLessThanOrEqual(10 * 86400);
      expect(ago).toBeGreaterThanOrEqual(4 * 86400);
    }
  });

  it('refuses weeks outside 1..8', () => {
    expect(() => generateDemo({ now: NOW, weeks: 0 })).toThrow(/weeks/);
    expect(() => generateDemo({ now: NOW, weeks: 9 })).toThrow(/weeks/);
  });
});
