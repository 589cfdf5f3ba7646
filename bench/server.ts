/**
 * `npm run bench -- server`: load on the coordinator from simulated peers, Node WebSocket clients
 * speaking the real control protocol to a real server process (no browser). Peers join their rooms
 * in waves, heartbeat, report stats, and leave in waves. Measured: join latency (hello to welcome),
 * view propagation (a member's hello or leave to every other member seeing the new membership), the
 * server process's memory and CPU, and whether every member of a room saw the same views.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { WebSocket } from 'ws';
import { buildApp, PROJECT_ROOT } from '../src/cli/cluster.ts';
import { parseServerMessage, PROTOCOL_VERSION, ProtocolError, type View } from '../src/protocol/index.ts';

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
  helloAt: number;
  welcomeAt: number;
  leftAt: number;
  views: { view: View; at: number }[];
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

function connect(url: string, p: Omit<SimPeer, 'ws' | 'helloAt' | 'welcomeAt' | 'leftAt' | 'views'>, statsEveryMs: number): Promise<SimPeer> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const peer: SimPeer = { ...p, ws, helloAt: 0, welcomeAt: 0, leftAt: 0, views: [] };
    const t = setTimeout(() => reject(new Error(`${p.id}: no welcome within 30 s`)), 30_000);
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
        const stats = { state: 'training', backend: 'sim', step: 0, samplesPerSec: 0, computeMs: 0, readbackMs: 0, allreduceMs: 0, applyMs: 0, sendBytesPerSec: 0, shard: 0 };
        timers = [
          setInterval(() => ws.readyState === ws.OPEN && ws.send('{"type":"heartbeat"}'), m.heartbeatMs),
          setInterval(() => ws.readyState === ws.OPEN && ws.send(JSON.stringify({ type: 'stats', stats })), statsEveryMs),
        ];
        resolve(peer);
      } else if (m.type === 'view') {
        peer.views.push({ view: m.view, at: performance.now() });
      } else if (m.type === 'error') {
        reject(new Error(`${p.id}: ${m.code}: ${m.message}`));
      }
    });
    ws.on('close', () => timers.forEach(clearInterval));
    ws.on('error', reject);
  });
}

/** Starts the production server in a child process; resolves with its URL and pid. */
async function startServerProcess(): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  await buildApp(PROJECT_ROOT, true);
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(PROJECT_ROOT, 'src/server/main.ts'), '--prod', '--port', '0', '--max-rooms', '10000', '--max-conns-per-address', '100000', '--max-msgs-per-address', '1000000'], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
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
  const server = await startServerProcess();
  const url = `${server.url.replace(/^http/, 'ws')}/ring`;
  const rooms = Math.ceil(o.peers / o.roomSize);
  const started = performance.now();
  const peers: SimPeer[] = [];
  let peakRss = 0;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, usage(server.pid).rssMb)), 200);
  try {
    const cpu0 = usage(server.pid).cpuS;
    // Waves: one new peer in every room at a time, so every join changes a room others are in.
    for (let wave = 0; wave < o.roomSize; wave++) {
      const joins = [];
      for (let r = 0; r < rooms && wave * rooms + r < o.peers; r++) joins.push(connect(url, { id: `sim${r}x${wave}`, room: `load${r}` }, 1000));
      peers.push(...(await Promise.all(joins)));
      log(`  ${peers.length} peers joined`);
    }
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
