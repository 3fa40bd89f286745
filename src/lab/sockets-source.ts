/**
 * The socket code every lab program runs inside a namespace: listeners and probes, as
 * plain CommonJS on Node's core modules only, because it runs as its own process (under
 * `ip netns exec`, often under another process name) where none of Bulkhead's modules are
 * loaded. Written once here; the service daemons, the traffic client and the prober (the
 * lab's and the kernel tests') all include it.
 *
 * Evidence, as a probe reports it: `connected` (TCP handshake completed), `replied` (a UDP
 * answer came back), `refused` (a TCP RST, or an ICMP port-unreachable on a connected UDP
 * socket), `unreachable` (ICMP host/admin-prohibited), `refused-locally` (the source's own
 * firewall refused to send: EPERM), `timeout` (nothing came back in time).
 */
export const SOCKETS_SOURCE = String.raw`
const net = require('node:net');
const dgram = require('node:dgram');
const family = (a) => (a.includes(':') ? 6 : 4);

const EVIDENCE = { EPERM: 'refused-locally', ECONNREFUSED: 'refused', EHOSTUNREACH: 'unreachable',
  ENETUNREACH: 'unreachable', EACCES: 'unreachable' };
const evidenceOf = (e) => (EVIDENCE[e.code] ? { evidence: EVIDENCE[e.code] } : { error: e.code + ' ' + e.message });

// A TCP service greets each client, then holds the connection until the client closes it
// (or goes quiet for a minute), as a real server would.
function listenTcp(address, port, greeting, onConnection) {
  return new Promise((resolve, reject) => {
    const server = net.createServer((s) => {
      s.on('error', () => {});
      s.setTimeout(60000, () => s.destroy());
      if (onConnection) onConnection(s);
      if (greeting) s.write(greeting);
      s.on('data', () => {});
      s.on('end', () => s.end());
    });
    server.once('error', reject);
    server.listen({ host: address, port, ipv6Only: family(address) === 6 }, () => {
      server.on('error', () => {});
      resolve(server);
    });
  });
}

// A UDP service echoes every datagram, so a delivered datagram is told apart from a dropped one.
function listenUdp(address, port, onDatagram) {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(family(address) === 6 ? 'udp6' : 'udp4');
    sock.on('message', (msg, rinfo) => {
      if (onDatagram) onDatagram(rinfo);
      sock.send(msg, rinfo.port, rinfo.address);
    });
    sock.once('error', reject);
    sock.bind({ address, port }, () => { sock.on('error', () => {}); resolve(sock); });
  });
}

function probeTcp(p, timeoutMs) {
  return new Promise((resolve) => {
    const s = net.connect({ host: p.to, port: p.port, localAddress: p.from });
    const done = (r) => { clearTimeout(timer); s.destroy(); resolve(r); };
    const timer = setTimeout(() => done({ evidence: 'timeout' }), timeoutMs);
    s.on('connect', () => done({ evidence: 'connected' }));
    s.on('error', (e) => done(evidenceOf(e)));
  });
}

// holdMs: how long the socket stays open after the echo (traffic holds it, as a TCP session
// is held, so that an agent sampling sockets sees the client process behind it).
function probeUdp(p, timeoutMs, holdMs = 0) {
  return new Promise((resolve) => {
    const s = dgram.createSocket(family(p.to) === 6 ? 'udp6' : 'udp4');
    let finished = false;
    const done = (r) => { if (finished) return; finished = true; clearTimeout(timer); s.close(); resolve(r); };
    const timer = setTimeout(() => done({ evidence: 'timeout' }), timeoutMs);
    const fail = (e) => done(evidenceOf(e));
    s.on('message', () => {
      clearTimeout(timer);
      if (holdMs > 0) setTimeout(() => done({ evidence: 'replied' }), holdMs);
      else done({ evidence: 'replied' });
    });
    s.on('error', fail);
    // Connected, so an ICMP port-unreachable comes back as ECONNREFUSED.
    s.bind({ address: p.from, port: 0 }, () => {
      s.connect(p.port, p.to, () => s.send('probe', (e) => { if (e) fail(e); }));
    });
  });
}

// At most 'concurrency' probes in flight, so that first contact with many neighbours does
// not overflow the kernel's queue of packets awaiting ARP/NDP resolution.
async function probeAll(probes, timeoutMs, concurrency) {
  const results = new Array(probes.length);
  let next = 0;
  const worker = async () => {
    while (next < probes.length) {
      const i = next++;
      const p = probes[i];
      results[i] = await (p.proto === 'tcp' ? probeTcp(p, timeoutMs) : probeUdp(p, timeoutMs));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, probes.length) }, worker));
  return results;
}
`;
