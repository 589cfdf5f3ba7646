/**
 * `npm run bench -- server`: load on the coordinator from simulated peers, Node WebSocket clients
 * speaking the real control protocol to a real server process (no browser). Peers join their rooms
 * in waves, heartbeat, report stats, and leave in waves. Measured: join latency (hello to welcome),
 * view propagation (a member's hello or leave to every other member seeing the new membership), the
 * server process's memory and CPU, and whether every member of a room saw the same views. Then
 * {@link benchServerFlood}: honest joins, each from its own address, with and without a reconnecting
 * flooder from one address, under the server's default per-address limits.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { WebSocket } from 'ws';
import { buildApp, PROJECT_ROOT } from '../src/harness/cluster.ts';
import { parseServerMessage, PROTOCOL_VERSION, ProtocolError, type View } from '../src/protocol/index.ts';

/** What a simulated peer reports as its stats. */
const SIM_STATS = {
  state: 'training',
  backend: 'sim',
  step: 0,
  samplesPerSec: 0,
  computeMs: 0,
  readbackMs: 0,
  allreduceMs: 0,
  applyMs: 0,
  sendBytesPerSec: 0,
  shard: 0,
} as const;
import { LIMIT_DEFAULTS } from '../src/server/coordinator.ts';

export interface ServerBenchOptions {
  peers: number;
  roomSize: number;
  /** How long every peer stays after the last one joined, ms. */
  holdMs: number;
}

export interface ServerBenchResult {
  peers: number;
  rooms: number;
  join_p50_ms: number;
  join_p99_ms: number;
  view_p50_ms: number;
  view_p99_ms: number;
  /** The same, split: views after a join, and after a leave. */
  view_join_p99_ms: number;
  view_leave_p99_ms: number;
  server_rss_mb: number;
  server_cpu_s: number;
  wall_s: number;
  views_seen: number;
  consistent: boolean;
  inconsistencies: string[];
}

interface SimPeer {
  id: string;
  room: string;
  ws: WebSocket;
  /** When the socket was opened (before the WebSocket handshake), then hello sent, welcome received. */
  openAt: number;
  helloAt: number;
  welcomeAt: number;
  leftAt: number;
  views: { view: View; at: number }[];
  /** Error codes the server sent after the welcome, and how the socket was closed (0 while open). */
  errors: string[];
  closeCode: number;
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
};

/** RSS (MB) and CPU seconds of a Linux process, from /proc. */
function usage(pid: number): { rssMb: number; cpuS: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { rssMb: rss, cpuS: (Number(fields[11]) + Number(fields[12])) / 100 };
}

/**
 * One honest peer: hello, then heartbeats and stats once it is welcome. `localAddress` binds the
 * client socket to that source address (any 127.x.y.z on loopback), so the server sees it as
 * coming from there. On failure the socket is terminated.
 */
function connect(
  url: string,
  p: Pick<SimPeer, 'id' | 'room'>,
  statsEveryMs: number,
  localAddress?: string,
  timeoutMs = 30_000,
): Promise<SimPeer> {
  return new Promise((resolve, fail) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...(localAddress ? { localAddress } : {}) });
    const peer: SimPeer = { ...p, ws, openAt: performance.now(), helloAt: 0, welcomeAt: 0, leftAt: 0, views: [], errors: [], closeCode: 0 };
    const reject = (e: Error): void => {
      clearTimeout(t);
      ws.terminate();
      fail(e);
    };
    const t = setTimeout(() => reject(new Error(`${p.id}: no welcome within ${timeoutMs / 1000} s`)), timeoutMs);
    let timers: ReturnType<typeof setInterval>[] = [];
    ws.on('open', () => {
      peer.helloAt = performance.now();
      ws.send(JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION, room: p.room, peerId: p.id }));
    });
    ws.on('message', (data) => {
      const m = parseServerMessage(data.toString());
      if (m instanceof ProtocolError) return reject(m);
      if (m.type === 'welcome') {
        peer.welcomeAt = performance.now();
        clearTimeout(t);
        timers = [
          setInterval(() => ws.readyState === ws.OPEN && ws.send('{"type":"heartbeat"}'), m.heartbeatMs),
          setInterval(() => ws.readyState === ws.OPEN && ws.send(JSON.stringify({ type: 'stats', stats: SIM_STATS })), statsEveryMs),
        ];
        resolve(peer);
      } else if (m.type === 'view') {
        peer.views.push({ view: m.view, at: performance.now() });
      } else if (m.type === 'error') {
        if (peer.welcomeAt) peer.errors.push(m.code);
        else reject(new Error(`${p.id}: ${m.code}: ${m.message}`));
      }
    });
    ws.on('close', (code) => {
      peer.closeCode = code;
      timers.forEach(clearInterval);
      if (!peer.welcomeAt) reject(new Error(`${p.id}: closed (${code}) before the welcome`));
    });
    ws.on('error', reject);
  });
}

/**
 * Honest peers join ceil(peers / roomSize) rooms in waves: one new peer in every room at a time, so
 * every join changes a room others are in. Peer r of wave w is `${tag}${r}x${w}`, in `${tag}load${r}`;
 * `address(i)` is the i-th peer's source address. Joins that fail are returned apart, with their error; `deadline` (performance.now()) stops
 * starting waves after it.
 */
async function joinInWaves(
  url: string,
  o: { tag: string; peers: number; roomSize: number; address?: (i: number) => string; timeoutMs?: number; deadline?: number },
  log: (s: string) => void,
): Promise<{ joined: SimPeer[]; failed: string[] }> {
  const rooms = Math.ceil(o.peers / o.roomSize);
  const joined: SimPeer[] = [];
  const failed: string[] = [];
  for (let wave = 0; wave < o.roomSize; wave++) {
    const joins = [];
    for (let r = 0; r < rooms && wave * rooms + r < o.peers; r++) {
      const i = wave * rooms + r;
      const id = `${o.tag}${r}x${wave}`;
      if (o.deadline !== undefined && performance.now() > o.deadline) failed.push(`${id}: not started, past the row's deadline`);
      else joins.push(connect(url, { id, room: `${o.tag}load${r}` }, 1000, o.address?.(i), o.timeoutMs));
    }
    for (const r of await Promise.allSettled(joins)) {
      if (r.status === 'fulfilled') joined.push(r.value);
      else failed.push((r.reason as Error).message);
    }
    log(`  ${joined.length} peers joined${failed.length ? `, ${failed.length} failed` : ''}`);
  }
  return { joined, failed };
}

/** The limits raised for the load run, whose peers all come from 127.0.0.1. */
const RAISED_LIMITS = ['--max-rooms', '10000', '--max-conns-per-address', '100000', '--max-msgs-per-address', '1000000'];

/** Starts the production server in a child process (with `args`); resolves with its URL and pid. */
async function startServerProcess(args: string[]): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  await buildApp(PROJECT_ROOT, true);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(PROJECT_ROOT, 'src/server/main.ts'), '--prod', '--port', '0', ...args],
    {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`server exited with ${code}: ${out}`)));
  });
  // The server logs every join; drain it so the pipe never blocks.
  child.stdout.resume();
  return {
    url,
    pid: child.pid!,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/**
 * Every member must see one view per epoch (the same members for an epoch in every member's
 * eyes), epochs rising without gaps while it is a member.
 */
function checkViews(peers: SimPeer[]): string[] {
  const problems: string[] = [];
  const byEpoch = new Map<string, string>();
  for (const p of peers) {
    let prev = -1;
    for (const { view } of p.views) {
      const key = `${view.room}@${view.epoch}`;
      const members = view.members.map((m) => m.peerId).join(',');
      const seen = byEpoch.get(key);
      if (seen !== undefined && seen !== members) problems.push(`${key}: ${p.id} saw [${members}], another member [${seen}]`);
      byEpoch.set(key, members);
      if (prev >= 0 && view.epoch !== prev + 1) problems.push(`${p.id}: epoch ${prev} then ${view.epoch} (a view missed)`);
      prev = view.epoch;
    }
  }
  return problems;
}

export async function benchServer(o: ServerBenchOptions, log: (s: string) => void): Promise<ServerBenchResult> {
  const server = await startServerProcess(RAISED_LIMITS);
  const url = `${server.url.replace(/^http/, 'ws')}/ring`;
  const rooms = Math.ceil(o.peers / o.roomSize);
  const started = performance.now();
  const peers: SimPeer[] = [];
  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, usage(server.pid).rssMb)), 200);
  try {
    const cpu0 = usage(server.pid).cpuS;
    const { joined, failed } = await joinInWaves(url, { tag: 'sim', peers: o.peers, roomSize: o.roomSize }, log);
    peers.push(...joined);
    if (failed.length) throw new Error(`${failed.length} joins failed: ${failed.slice(0, 3).join('; ')}`);
    await new Promise((r) => setTimeout(r, o.holdMs));
    // Leave in waves too, the oldest member of every room first.
    for (let wave = 0; wave < o.roomSize; wave++) {
      for (const p of peers.filter((x) => x.id.endsWith(`x${wave}`))) {
        p.leftAt = performance.now();
        p.ws.send('{"type":"leave"}');
      }
      await new Promise((r) => setTimeout(r, 150));
    }
    await new Promise((r) => setTimeout(r, 500));
    const cpu = usage(server.pid).cpuS - cpu0;
    for (const p of peers) p.ws.close();
    // Propagation: a change (hello or leave of x) until each other member first sees it in a view.
    const lat: number[] = [];
    const leaveLat: number[] = [];
    for (const x of peers) {
      for (const m of peers) {
        if (m === x || m.room !== x.room) continue;
        if (m.welcomeAt < x.helloAt) {
          const seen = m.views.find((v) => v.view.members.some((y) => y.peerId === x.id));
          if (seen) lat.push(seen.at - x.helloAt);
        }
        if (x.leftAt && (!m.leftAt || m.leftAt > x.leftAt)) {
          const gone = m.views.find((v) => v.at >= x.leftAt && !v.view.members.some((y) => y.peerId === x.id));
          if (gone) leaveLat.push(gone.at - x.leftAt);
        }
      }
    }
    const joins = peers.map((p) => p.welcomeAt - p.helloAt);
    const inconsistencies = checkViews(peers);
    return {
      peers: peers.length,
      rooms,
      join_p50_ms: Math.round(pct(joins, 50) * 10) / 10,
      join_p99_ms: Math.round(pct(joins, 99) * 10) / 10,
      view_p50_ms: Math.round(pct([...lat, ...leaveLat], 50) * 10) / 10,
      view_p99_ms: Math.round(pct([...lat, ...leaveLat], 99) * 10) / 10,
      view_join_p99_ms: Math.round(pct(lat, 99) * 10) / 10,
      view_leave_p99_ms: Math.round(pct(leaveLat, 99) * 10) / 10,
      server_rss_mb: Math.round(peakRss),
      server_cpu_s: Math.round(cpu * 100) / 100,
      wall_s: Math.round((performance.now() - started) / 100) / 10,
      views_seen: peers.reduce((s, p) => s + p.views.length, 0),
      consistent: inconsistencies.length === 0,
      inconsistencies: inconsistencies.slice(0, 20),
    };
  } finally {
    clearInterval(sampler);
    for (const p of peers) p.ws.terminate();
    await server.stop();
  }
}

export interface FloodBenchOptions {
  /** Honest peers that join, with and without the flooder (default 200). */
  peers: number;
  roomSize: number;
}

/** Join latency (hello sent to welcome received) of one phase's honest peers, ms. */
export interface JoinLatency {
  joined: number;
  failed: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
  /** Socket opened to hello sent (TCP and the WebSocket handshake), p99, ms. */
  handshake_p99_ms: number;
  /** Socket opened to welcome received, p99, ms: what a peer waits in all. */
  total_p99_ms: number;
}

/** What the flooder did, counted on its side. */
export interface FlooderStats {
  seconds: number;
  /** Connections tried, and completed handshakes. */
  attempts: number;
  opened: number;
  /** Closed by the server at once: over the per-address connection limit. */
  refused: number;
  /** Closed by the server for flooding ('too many messages'). */
  cut_off: number;
  /** Closed another way (code 1006 and the like), and socket errors (reset, no address). */
  other_closes: number;
  socket_errors: number;
  /** A few distinct socket error messages, if any. */
  error_samples: string[];
  /** 'rate-limited' errors the server sent (refusals and per-connection throttling). */
  rate_limited_errors: number;
  messages: number;
  msgs_per_s: number;
  conns_per_s: number;
  /** Most connections it held open at once. */
  peak_open: number;
}

export interface FloodBenchResult {
  target_p99_ms: number;
  pass: boolean;
  flooder_address: string;
  /** The server's defaults, in force for this row. */
  limits: { conns_per_address: number; msgs_per_sec_per_address: number; msgs_per_sec: number };
  without_flooder: JoinLatency;
  with_flooder: JoinLatency;
  /** with / without, p50 and p99. */
  p50_ratio: number;
  p99_ratio: number;
  /** Honest peers that got an error or lost their connection while the flooder ran after their join. */
  honest_disturbed: number;
  flooder: FlooderStats;
  /** Server CPU seconds over the flooded phase, and its length. */
  server_cpu_s_flooded: number;
  flooded_s: number;
  server_rss_mb: number;
  /** Sockets of either side not closed when the row ended (must be 0). */
  sockets_left_open: number;
  wall_s: number;
}

const FLOODER_ENV = 'RINGTRAIN_BENCH_FLOODER';
const round1 = (x: number): number => Math.round(x * 10) / 10;

function latency(joined: SimPeer[], failed: number): JoinLatency {
  const joins = joined.map((p) => p.welcomeAt - p.helloAt);
  return {
    joined: joined.length,
    failed,
    p50_ms: round1(pct(joins, 50)),
    p90_ms: round1(pct(joins, 90)),
    p99_ms: round1(pct(joins, 99)),
    max_ms: round1(Math.max(...joins)),
    handshake_p99_ms: round1(
      pct(
        joined.map((p) => p.helloAt - p.openAt),
        99,
      ),
    ),
    total_p99_ms: round1(
      pct(
        joined.map((p) => p.welcomeAt - p.openAt),
        99,
      ),
    ),
  };
}

/** Leaves, closes every socket, and waits (at most `ms`) for them to be closed; resolves with how many are not. */
async function closeAll(peers: SimPeer[], ms = 3000): Promise<number> {
  const open = peers.filter((p) => p.ws.readyState !== WebSocket.CLOSED);
  const closed = Promise.all(open.map((p) => new Promise<void>((r) => p.ws.once('close', () => r()))));
  for (const p of open) {
    if (p.ws.readyState === WebSocket.OPEN) p.ws.send('{"type":"leave"}');
    p.ws.close();
  }
  await Promise.race([closed, new Promise((r) => setTimeout(r, ms))]);
  for (const p of peers) if (p.ws.readyState !== WebSocket.CLOSED) p.ws.terminate();
  return open.filter((p) => p.ws.readyState !== WebSocket.CLOSED).length;
}

/**
 * The flooder, run in its own process (this file, with {@link FLOODER_ENV} set) so that its load
 * does not sit on the honest peers' event loop. From one source address it keeps `sockets`
 * connections open or opening (twice the server's per-address limit, so it keeps hitting it),
 * joins a room on each, sends heartbeats and stats as fast as the sockets drain, and dials again
 * whenever a connection ends. On 'stop' from its parent it terminates every socket, waits for them
 * to close and answers with its counts.
 */
function runFlooder(o: { url: string; address: string; sockets: number }): void {
  const st = {
    attempts: 0,
    opened: 0,
    refused: 0,
    cut_off: 0,
    other_closes: 0,
    socket_errors: 0,
    rate_limited_errors: 0,
    messages: 0,
    peak_open: 0,
  };
  const all = new Set<WebSocket>();
  const open = new Set<WebSocket>();
  const errorSamples = new Set<string>();
  let stopping = false;
  let n = 0;
  const started = performance.now();
  const hb = '{"type":"heartbeat"}';
  const stats = JSON.stringify({
    type: 'stats',
    stats: SIM_STATS,
  });
  const dial = (): void => {
    while (!stopping && all.size < o.sockets) {
      const id = n++;
      st.attempts++;
      const ws = new WebSocket(o.url, { localAddress: o.address, perMessageDeflate: false });
      all.add(ws);
      ws.on('open', () => {
        st.opened++;
        open.add(ws);
        st.peak_open = Math.max(st.peak_open, open.size);
        ws.send(JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION, room: `flood${id % 8}`, peerId: `flood${id}` }));
      });
      ws.on('message', (d) => {
        if (d.toString().includes('"rate-limited"')) st.rate_limited_errors++;
      });
      ws.on('error', (e) => {
        if (stopping) return;
        st.socket_errors++;
        if (errorSamples.size < 5) errorSamples.add(e.message);
      });
      ws.on('close', (_code, reason) => {
        all.delete(ws);
        open.delete(ws);
        if (stopping) return;
        const why = reason.toString();
        if (why.startsWith('too many connections')) st.refused++;
        else if (why.startsWith('too many messages')) st.cut_off++;
        else st.other_closes++;
        setImmediate(dial);
      });
    }
  };
  const pump = (): void => {
    if (stopping) return;
    for (const ws of open) {
      for (let k = 0; k < 32 && ws.readyState === WebSocket.OPEN && ws.bufferedAmount < 64 * 1024; k++) {
        ws.send(k % 2 ? stats : hb);
        st.messages++;
      }
    }
    setImmediate(pump);
  };
  process.on('message', (m) => {
    if (m !== 'stop') return;
    stopping = true;
    const seconds = (performance.now() - started) / 1000;
    const left = [...all];
    for (const ws of left) ws.terminate();
    const done = (): void => {
      process.send!(
        {
          ...st,
          seconds: round1(seconds),
          msgs_per_s: Math.round(st.messages / seconds),
          conns_per_s: Math.round(st.attempts / seconds),
          error_samples: [...errorSamples],
          left_open: all.size,
        },
        () => process.exit(0),
      );
    };
    if (all.size === 0) done();
    else {
      const t = setTimeout(done, 2000);
      for (const ws of left)
        ws.once('close', () => {
          if (all.size === 0) {
            clearTimeout(t);
            done();
          }
        });
    }
  });
  dial();
  pump();
  process.send!('ready');
}

/** Starts the flooder process; `stop()` ends it and resolves with its counts and its sockets left open. */
async function startFlooder(o: {
  url: string;
  address: string;
  sockets: number;
}): Promise<{ stop(): Promise<FlooderStats & { left_open: number }>; kill(): void }> {
  const child = spawn(process.execPath, ['--import', 'tsx', import.meta.filename], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, [FLOODER_ENV]: JSON.stringify(o) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`flooder exited with ${code}`)));
  });
  return {
    stop: () =>
      new Promise((resolve, reject) => {
        child.once('message', (m) => resolve(m as FlooderStats & { left_open: number }));
        child.once('exit', (code) => reject(new Error(`flooder exited with ${code} before reporting`)));
        child.send('stop');
      }),
    kill: () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

/**
 * The server under a reconnecting flooder from one address (127.0.0.2) while `peers` honest peers
 * join, each from its own address (127.0.1.x), the server's per-address limits at their defaults;
 * and the same joins without the flooder first, on the same server. Passes when the flooded joins'
 * p99 (hello to welcome) stays below 1 s, every honest join succeeds, and no honest peer is disturbed
 * (an error, or its connection lost) while the flood goes on. Bounded: joins time out
 * after 10 s, and no wave starts after 40 s.
 */
export async function benchServerFlood(o: FloodBenchOptions, log: (s: string) => void): Promise<FloodBenchResult> {
  const TARGET_MS = 1000;
  const FLOODER = '127.0.0.2';
  const honestAddress = (i: number): string => `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
  const server = await startServerProcess([]);
  const url = `${server.url.replace(/^http/, 'ws')}/ring`;
  const started = performance.now();
  const deadline = started + 40_000;
  const peers: SimPeer[] = [];
  let flooder: Awaited<ReturnType<typeof startFlooder>> | null = null;
  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, usage(server.pid).rssMb)), 200);
  try {
    const phase = async (tag: string, count: number): Promise<{ joined: SimPeer[]; failed: string[] }> => {
      const r = await joinInWaves(
        url,
        { tag, peers: count, roomSize: o.roomSize, address: honestAddress, timeoutMs: 10_000, deadline },
        log,
      );
      peers.push(...r.joined);
      for (const f of r.failed.slice(0, 3)) log(`  failed: ${f}`);
      return r;
    };
    // A few joins first, so that neither measured phase pays for the server's warm-up.
    let left = await closeAll((await phase('warm', 2 * o.roomSize)).joined);
    log(`without the flooder: ${o.peers} honest peers join`);
    const calm = await phase('calm', o.peers);
    left += await closeAll(calm.joined);
    await new Promise((r) => setTimeout(r, 500));

    const sockets = 2 * LIMIT_DEFAULTS.maxConnectionsPerAddress;
    log(`with the flooder: ${FLOODER} keeps ${sockets} connections dialling and flooding; ${o.peers} honest peers join`);
    const cpu0 = usage(server.pid).cpuS;
    const floodStart = performance.now();
    flooder = await startFlooder({ url, address: FLOODER, sockets });
    await new Promise((r) => setTimeout(r, 2000));
    const storm = await phase('storm', o.peers);
    // The joined peers stay while the flood goes on, two dead-after periods: do they keep their membership?
    await new Promise((r) => setTimeout(r, 5000));
    const disturbed = storm.joined.filter((p) => p.errors.length > 0 || p.closeCode !== 0).length;
    const fl = await flooder.stop();
    flooder = null;
    const floodedS = (performance.now() - floodStart) / 1000;
    const cpu = usage(server.pid).cpuS - cpu0;
    left += await closeAll(storm.joined);

    const without = latency(calm.joined, calm.failed.length);
    const withF = latency(storm.joined, storm.failed.length);
    const { left_open: flooderLeft, ...flooderStats } = fl;
    return {
      target_p99_ms: TARGET_MS,
      pass: withF.p99_ms < TARGET_MS && withF.failed === 0 && withF.joined === o.peers && disturbed === 0,
      flooder_address: FLOODER,
      limits: {
        conns_per_address: LIMIT_DEFAULTS.maxConnectionsPerAddress,
        msgs_per_sec_per_address: LIMIT_DEFAULTS.maxMessagesPerSecPerAddress,
        msgs_per_sec: LIMIT_DEFAULTS.maxMessagesPerSec,
      },
      without_flooder: without,
      with_flooder: withF,
      p50_ratio: Math.round((withF.p50_ms / without.p50_ms) * 100) / 100,
      p99_ratio: Math.round((withF.p99_ms / without.p99_ms) * 100) / 100,
      honest_disturbed: disturbed,
      flooder: flooderStats,
      server_cpu_s_flooded: Math.round(cpu * 100) / 100,
      flooded_s: round1(floodedS),
      server_rss_mb: Math.round(peakRss),
      sockets_left_open: left + flooderLeft,
      wall_s: round1((performance.now() - started) / 1000),
    };
  } finally {
    clearInterval(sampler);
    flooder?.kill();
    for (const p of peers) p.ws.terminate();
    await server.stop();
  }
}

if (process.env[FLOODER_ENV] && process.send && process.argv[1] === import.meta.filename)
  runFlooder(JSON.parse(process.env[FLOODER_ENV]) as Parameters<typeof runFlooder>[0]);
