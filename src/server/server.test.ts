import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { MEMBER_HEADER } from '../protocol/auth.ts';
import {
  clientConfigSchema,
  encodeCheckpoint,
  MAX_CONTROL_BYTES,
  parseServerMessage,
  PROTOCOL_VERSION,
  ProtocolError,
  type ServerMessage,
  type View,
} from '../protocol/index.ts';
import { COORDINATOR_PATH, PEER_KEY, PEER_PATH, startServer, type RunningServer } from './app.ts';
import { LIMIT_DEFAULTS } from './coordinator.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const HEARTBEAT_MS = 100;
// Generous for a loaded 2-core machine: the server and its clients share one event loop here.
const DEAD_AFTER_MS = 1500;
/** Longest any single event may take to arrive here (generous: CI machines are slow). */
const WAIT_MS = 5000;
const ICE = [{ urls: 'stun:stun.example.org:3478' }, { urls: ['turn:turn.example.org:3478'], username: 'u', credential: 'c' }];

let seq = 0;
/** A fresh id: the coordinator and PeerServer keep ids across tests. */
const uid = (prefix: string): string => `${prefix}-${++seq}`;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

/** Every socket a test opened; terminated after each test. */
const sockets = new Set<Client>();

/** A WebSocket client that records text messages and lets a test await one. */
class Client {
  readonly ws: WebSocket;
  readonly texts: string[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly waiters = new Set<() => void>();

  constructor(url: string, protocol?: string, opts: { autoPong?: boolean } = {}) {
    this.ws = new WebSocket(url, protocol, opts);
    sockets.add(this);
    this.ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      this.texts.push(data.toString());
      for (const w of [...this.waiters]) w();
    });
    this.opened = withTimeout(
      new Promise<void>((resolve, reject) => {
        this.ws.once('open', () => resolve());
        this.ws.once('error', reject);
        this.ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade to ${url} answered ${res.statusCode}`)));
      }),
      WAIT_MS,
      `${url} to open`,
    );
    this.opened.catch(() => undefined);
    this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    // A refused upgrade also emits 'error'; the tests look at `opened` and `closed` instead.
    this.ws.on('error', () => undefined);
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  /** The first text message (past or future) that `pick` maps to a value. */
  next<T>(pick: (text: string) => T | undefined, what: string, ms = WAIT_MS): Promise<T> {
    const scan = (): T | undefined => {
      for (const t of this.texts) {
        const v = pick(t);
        if (v !== undefined) return v;
      }
      return undefined;
    };
    const now = scan();
    if (now !== undefined) return Promise.resolve(now);
    let check = (): void => {};
    const found = new Promise<T>((resolve) => {
      check = () => {
        const v = scan();
        if (v !== undefined) resolve(v);
      };
      this.waiters.add(check);
    });
    return withTimeout(found, ms, `${what}; got ${JSON.stringify(this.texts).slice(0, 500)}`).finally(() => this.waiters.delete(check));
  }

  async close(): Promise<void> {
    this.ws.close();
    await withTimeout(this.closed, WAIT_MS, 'the socket to close');
  }
}

/** A member of the coordinator: joins, heartbeats, and reads server messages through the protocol's own parser. */
class Member extends Client {
  private beat: ReturnType<typeof setInterval> | undefined;

  constructor(
    server: RunningServer,
    readonly peerId: string,
    autoPong: boolean,
  ) {
    super(`${server.url.replace(/^http/, 'ws')}${COORDINATOR_PATH}`, undefined, { autoPong });
    void this.closed.then(() => this.stopHeartbeats());
  }

  /** `autoPong: false` makes a member whose network stack stops answering the server's pings. */
  static async join(server: RunningServer, room: string, peerId = uid('peer'), autoPong = true): Promise<Member> {
    const m = new Member(server, peerId, autoPong);
    await m.opened;
    m.send({ type: 'hello', version: PROTOCOL_VERSION, room, peerId });
    await m.message((x) => (x.type === 'welcome' ? x : undefined), 'the welcome');
    m.beat = setInterval(() => m.send({ type: 'heartbeat' }), HEARTBEAT_MS);
    return m;
  }

  stopHeartbeats(): void {
    clearInterval(this.beat);
  }

  message<T>(pick: (m: ServerMessage) => T | undefined, what: string, ms?: number): Promise<T> {
    return this.next(
      (text) => {
        const m = parseServerMessage(text);
        if (m instanceof ProtocolError) throw m;
        return pick(m);
      },
      what,
      ms,
    );
  }

  /** The first view after epoch `after` whose members are exactly `ids`, in this order. */
  view(ids: string[], after = 0): Promise<View> {
    return this.message(
      (m) => (m.type === 'view' && m.view.epoch > after && m.view.members.map((x) => x.peerId).join() === ids.join() ? m.view : undefined),
      `a view of [${ids.join(', ')}] after epoch ${after} at ${this.peerId}`,
    );
  }

  errorCode(): Promise<string> {
    return this.message((m) => (m.type === 'error' ? m.code : undefined), `an error at ${this.peerId}`);
  }
}

afterEach(async () => {
  for (const s of sockets) s.ws.terminate();
  await Promise.all([...sockets].map((s) => withTimeout(s.closed, WAIT_MS, 'terminated sockets to close')));
  sockets.clear();
});

describe('startServer (dev mode: Vite middleware, PeerServer and coordinator on one port)', () => {
  let server: RunningServer;
  let ws: string;

  beforeAll(async () => {
    server = await startServer({
      host: '127.0.0.1',
      port: 0,
      mode: 'dev',
      root: ROOT,
      heartbeatMs: HEARTBEAT_MS,
      deadAfterMs: DEAD_AFTER_MS,
      iceServers: ICE,
    });
    ws = server.url.replace(/^http/, 'ws');
  }, 30_000);

  afterAll(async () => {
    await server?.close();
  });

  const peerSocket = (id: string, token = 'tok'): Client => new Client(`${ws}${PEER_PATH}/peerjs?key=${PEER_KEY}&id=${id}&token=${token}`);
  const opened = (c: Client): Promise<unknown> => c.next((t) => (JSON.parse(t).type === 'OPEN' ? true : undefined), 'OPEN');

  it('listens on the port it reports', () => {
    expect(server.port).toBeGreaterThan(0);
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
  });

  it('GET /api/config returns how to reach signaling and the ICE servers it was given that carry no credentials (those go to members only)', async () => {
    const res = await fetch(`${server.url}/api/config`, { signal: AbortSignal.timeout(WAIT_MS) });
    expect(res.status).toBe(200);
    const body: unknown = await res.json();
    expect(body).toEqual({
      version: PROTOCOL_VERSION,
      peerPath: PEER_PATH,
      peerKey: PEER_KEY,
      coordinatorPath: COORDINATOR_PATH,
      iceServers: [ICE[0]],
    });
    expect(clientConfigSchema.safeParse(body).success).toBe(true);
  });

  it("never serves the checkpoint folder (private rooms' keys, checkpoints), however the path is spelled", async () => {
    // The default folder sits inside the served project root: <root>/.ringtrain/checkpoints.
    const dir = path.join(ROOT, '.ringtrain', 'checkpoints');
    mkdirSync(dir, { recursive: true });
    const name = `${uid('probe')}.json`;
    writeFileSync(path.join(dir, name), '{"secret":"room-key-marker"}');
    try {
      for (const p of [
        `/.ringtrain/checkpoints/${name}`,
        `/%2eringtrain/checkpoints/${name}`,
        `/.ringtrain%2Fcheckpoints%2F${name}`,
        `/./.ringtrain/checkpoints/${name}`,
        `/.RINGTRAIN/checkpoints/${name}`,
      ]) {
        const res = await fetch(`${server.url}${p}`, { signal: AbortSignal.timeout(WAIT_MS) });
        const body = await res.text();
        expect(body, p).not.toContain('room-key-marker');
        expect(res.status, p).toBe(404);
      }
    } finally {
      rmSync(path.join(dir, name), { force: true });
    }
  });

  it('GET / serves index.html through Vite', async () => {
    const res = await fetch(`${server.url}/`, { signal: AbortSignal.timeout(WAIT_MS) });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    const html = await res.text();
    expect(html).toContain('<title>RingTrain</title>');
    expect(html).toContain('/@vite/client');
  });

  it('two coordinator clients join a room and both receive the views', async () => {
    const room = uid('room');
    const a = await Member.join(server, room);
    expect(await a.view([a.peerId])).toEqual({ room, epoch: 1, members: [{ peerId: a.peerId, rank: 0 }] });
    const b = await Member.join(server, room);
    const both = {
      room,
      epoch: 2,
      members: [
        { peerId: a.peerId, rank: 0 },
        { peerId: b.peerId, rank: 1 },
      ],
    };
    expect(await a.view([a.peerId, b.peerId])).toEqual(both);
    expect(await b.view([a.peerId, b.peerId])).toEqual(both);
    expect(server.coordinator.view(room)).toEqual(both);
  });

  it('a client that closes its socket is removed and the other gets a view without it', async () => {
    const room = uid('room');
    const a = await Member.join(server, room);
    const b = await Member.join(server, room);
    const { epoch } = await a.view([a.peerId, b.peerId]);
    await b.close();
    expect(await a.view([a.peerId], epoch)).toEqual({ room, epoch: epoch + 1, members: [{ peerId: a.peerId, rank: 0 }] });
  });

  it('answers an oversized message with a typed error and closes it (ws itself refuses 4x the limit), and keeps serving the others', async () => {
    const room = uid('room');
    const a = await Member.join(server, room);
    const big = await Member.join(server, room);
    const { epoch } = await a.view([a.peerId, big.peerId]);
    const rejected = server.coordinator.rejected;
    big.send('x'.repeat(MAX_CONTROL_BYTES + 1));
    expect(await withTimeout(big.closed, WAIT_MS, 'the oversized sender to be closed')).toEqual({
      code: 4000,
      reason: expect.stringMatching(/exceeds 65536/),
    });
    expect(big.texts.map((t) => JSON.parse(t) as { type: string; code?: string }).filter((m) => m.type === 'error')).toEqual([
      expect.objectContaining({ code: 'bad-message' }),
    ]);
    expect(server.coordinator.rejected).toBe(rejected + 1);
    await a.view([a.peerId], epoch);
    const huge = await Member.join(server, room);
    huge.send('x'.repeat(4 * MAX_CONTROL_BYTES + 1));
    expect((await withTimeout(huge.closed, WAIT_MS, 'the huge sender to be closed')).code).toBe(1009);
    const c = await Member.join(server, room);
    await a.view([a.peerId, c.peerId]);
    const res = await fetch(`${server.url}/api/config`, { signal: AbortSignal.timeout(WAIT_MS) });
    expect(res.status).toBe(200);
  });

  it('answers a wrong protocol version with bad-version and closes the socket with 4000', async () => {
    const c = new Client(`${ws}${COORDINATOR_PATH}`);
    await c.opened;
    c.send({ type: 'hello', version: PROTOCOL_VERSION + 1, room: uid('room'), peerId: uid('peer') });
    expect(JSON.parse(await c.next((t) => (t.includes('"challenge"') ? undefined : t), 'the error'))).toMatchObject({
      type: 'error',
      code: 'bad-version',
    });
    expect(await withTimeout(c.closed, WAIT_MS, 'the close')).toMatchObject({ code: 4000, reason: expect.stringMatching(/reload/) });
  });

  it('answers a binary frame with bad-message and keeps the member', async () => {
    const room = uid('room');
    const a = await Member.join(server, room);
    const before = server.coordinator.rejected;
    a.ws.send(Buffer.from('{"type":"heartbeat"}'));
    expect(await a.errorCode()).toBe('bad-message');
    expect(server.coordinator.rejected).toBe(before + 1);
    expect(server.coordinator.view(room)?.members.map((m) => m.peerId)).toEqual([a.peerId]);
  });

  it('evicts a member that neither heartbeats nor answers pings, and closes its socket with 4000', async () => {
    const room = uid('room');
    const a = await Member.join(server, room);
    const b = await Member.join(server, room, uid('peer'), false);
    const { epoch } = await a.view([a.peerId, b.peerId]);
    b.stopHeartbeats();
    expect(await b.errorCode()).toBe('evicted');
    expect((await withTimeout(b.closed, WAIT_MS, 'the evicted socket to close')).code).toBe(4000);
    await a.view([a.peerId], epoch);
  });

  it('keeps a member whose page is busy (no heartbeats) while its socket answers pings', async () => {
    const room = uid('room');
    const a = await Member.join(server, room);
    const busy = await Member.join(server, room);
    const gone = await Member.join(server, room, uid('peer'), false);
    const { epoch } = await a.view([a.peerId, busy.peerId, gone.peerId]);
    busy.stopHeartbeats();
    gone.stopHeartbeats();
    // Both went silent at once; only the one whose socket stopped answering is removed.
    expect(await gone.errorCode()).toBe('evicted');
    await a.view([a.peerId, busy.peerId], epoch);
    expect(server.coordinator.view(room)?.members.map((m) => m.peerId)).toEqual([a.peerId, busy.peerId]);
  });

  it('a PeerJS signaling socket at /peerjs/peerjs receives OPEN', async () => {
    const s = peerSocket(uid('sig'));
    await s.opened;
    expect(JSON.parse(await s.next((t) => t, 'the first signaling message'))).toEqual({ type: 'OPEN' });
  });

  it('relays signaling between two peers, and survives a client that sends garbage', async () => {
    const [ida, idb] = [uid('sig'), uid('sig')];
    const a = peerSocket(ida);
    const b = peerSocket(idb);
    await Promise.all([opened(a), opened(b)]);
    // PeerServer reports an unparsable message as an 'error' event: unhandled, it crashed the process.
    a.send('this is not JSON');
    a.send({ type: 'OFFER', dst: idb, payload: { sdp: 'x' } });
    const offer = await b.next((t) => {
      const m = JSON.parse(t) as { type: string };
      return m.type === 'OFFER' ? m : undefined;
    }, 'the relayed offer');
    expect(offer).toEqual({ type: 'OFFER', src: ida, dst: idb, payload: { sdp: 'x' } });
  });

  it('closing the signaling socket of a member evicts it from its room (peerGone)', async () => {
    const room = uid('room');
    const a = await Member.join(server, room);
    const b = await Member.join(server, room);
    const sig = peerSocket(b.peerId);
    await opened(sig);
    const { epoch } = await a.view([a.peerId, b.peerId]);
    await sig.close();
    await a.view([a.peerId], epoch);
    expect(await b.errorCode()).toBe('evicted');
    expect((await withTimeout(b.closed, WAIT_MS, 'the evicted control socket to close')).code).toBe(4000);
  });

  it("lets Vite answer its HMR upgrade on the same port (PeerServer does not answer others' upgrades)", async () => {
    const hmr = new Client(`${ws}/`, 'vite-hmr');
    await hmr.opened;
    expect(JSON.parse(await hmr.next((t) => t, "Vite's first HMR message"))).toMatchObject({ type: 'connected' });
  });
});

describe('startServer (prod mode: built assets)', () => {
  let root: string;

  beforeAll(() => {
    root = mkdtempSync(path.join(tmpdir(), 'ringtrain-prod-'));
    mkdirSync(path.join(root, 'dist'));
    writeFileSync(path.join(root, 'dist', 'index.html'), '<!doctype html><title>built</title>');
    writeFileSync(path.join(root, 'dist', 'app.js'), 'export {};');
  });

  afterAll(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it('refuses to start without dist/ and says to run "npm run build"', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'ringtrain-nodist-'));
    try {
      await expect(startServer({ host: '127.0.0.1', port: 0, mode: 'prod', root: empty })).rejects.toThrow(/run "npm run build"/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('serves dist/, falls back to index.html for app routes, and refuses unknown upgrades', async () => {
    const server = await startServer({ host: '127.0.0.1', port: 0, mode: 'prod', root });
    try {
      const get = async (p: string): Promise<[number, string]> => {
        const res = await fetch(`${server.url}${p}`, { signal: AbortSignal.timeout(WAIT_MS) });
        return [res.status, await res.text()];
      };
      expect(await get('/')).toEqual([200, '<!doctype html><title>built</title>']);
      expect(await get('/app.js')).toEqual([200, 'export {};']);
      expect(await get('/some/route?room=x')).toEqual([200, '<!doctype html><title>built</title>']);
      expect((await get('/api/config'))[0]).toBe(200);
      const stray = new Client(`${server.url.replace(/^http/, 'ws')}/elsewhere`);
      await expect(stray.opened).rejects.toThrow();
      await withTimeout(stray.closed, WAIT_MS, 'the refused upgrade to close');
    } finally {
      await server.close();
    }
  });

  it('stores checkpoints within the quotas it is given, and records its rooms one line each in rooms.json', async () => {
    const checkpointDir = path.join(root, uid('checkpoints'));
    const server = await startServer({
      host: '127.0.0.1',
      port: 0,
      mode: 'prod',
      root,
      checkpointDir,
      checkpointRoomQuota: 200,
      checkpointQuota: 400,
    });
    try {
      const room = uid('room');
      const m = await Member.join(server, room);
      const token = await m.message((x) => (x.type === 'welcome' ? x.token : undefined), 'the welcome');
      const put = async (floats: number): Promise<number> => {
        const body = encodeCheckpoint({ step: 1, runKey: 'run', weights: new Float32Array(floats), optimizer: new Float32Array(0) });
        const res = await fetch(`${server.url}/api/rooms/${room}/checkpoint`, {
          method: 'PUT',
          body,
          headers: { [MEMBER_HEADER]: `${m.peerId}.${token}` },
          signal: AbortSignal.timeout(WAIT_MS),
        });
        return res.status;
      };
      // 36 + 4 × 10 bytes fit the room's 200; 36 + 4 × 50 do not.
      expect(await put(10)).toBe(200);
      expect(await put(50)).toBe(507);
      expect(readFileSync(path.join(checkpointDir, 'rooms.json'), 'utf8')).toBe(`${JSON.stringify({ room, open: true })}\n`);
      m.stopHeartbeats();
    } finally {
      await server.close();
    }
  });

  it('rejects a port in use, and a closed server lets the process exit (no timers or watchers left)', async () => {
    // In a child process, so that anything left running shows up as a process that does not exit.
    const script = `
      const { startServer } = await import(${JSON.stringify(path.join(ROOT, 'src/server/app.ts'))});
      const opts = { host: '127.0.0.1', port: 0, root: ${JSON.stringify(root)}, heartbeatMs: 50, deadAfterMs: 300 };
      const a = await startServer({ ...opts, mode: 'prod' });
      let code = null;
      try { await startServer({ ...opts, port: a.port, mode: 'dev', root: ${JSON.stringify(ROOT)} }); } catch (e) { code = e.code; }
      const status = (await fetch(a.url + '/api/config')).status;
      await a.close();
      console.log(JSON.stringify({ code, status }));
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    try {
      const code = await withTimeout(exited, 15_000, `the child to exit by itself after close(); stdout: ${out} stderr: ${err}`);
      expect(err).not.toMatch(/Error/);
      expect(code).toBe(0);
      // Vite may log around it; pick our line.
      const result = out.split('\n').find((l) => l.startsWith('{"code"'));
      expect(result && JSON.parse(result)).toEqual({ code: 'EADDRINUSE', status: 200 });
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 20_000);
});

describe('signaling is for members', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({
      host: '127.0.0.1',
      port: 0,
      mode: 'dev',
      root: ROOT,
      heartbeatMs: HEARTBEAT_MS,
      deadAfterMs: DEAD_AFTER_MS,
      signalingGraceMs: 400,
    });
  }, 30_000);
  afterAll(async () => {
    await server?.close();
  });

  it("closes a signaling socket whose id no room admitted, and keeps a member's", async () => {
    const ws = server.url.replace(/^http/, 'ws');
    const signaling = (id: string): Client => new Client(`${ws}${PEER_PATH}/peerjs?key=${PEER_KEY}&id=${id}&token=t`);
    const memberId = uid('peer');
    const member = signaling(memberId);
    await member.opened;
    const joined = await Member.join(server, uid('room'), memberId);
    // The stranger connects after the member: when its grace ends, the member's has ended too.
    const stranger = signaling(uid('peer'));
    await stranger.opened;
    expect(await withTimeout(stranger.closed, WAIT_MS, 'the stranger to be closed')).toEqual({
      code: 4003,
      reason: 'not admitted to a room',
    });
    expect(member.ws.readyState).toBe(member.ws.OPEN);
    joined.stopHeartbeats();
  });
});

describe('limits over real sockets: a misbehaving client does not starve honest peers', () => {
  const LIMIT = LIMIT_DEFAULTS.maxMessagesPerSec;
  /** An honest join (socket open, hello, welcome, a view that lists it) takes less than this, flood or not. */
  const JOIN_MS = 2000;
  /** The flooder sends this many messages per macrotask, and at most FLOOD_MAX on one connection. */
  const BURST = LIMIT;
  const FLOOD_MAX = 50 * LIMIT;
  /** Connections the flooder opens one after another at most. */
  const MAX_ROUNDS = 50;
  /** Honest peers that join each room during the flood, one after another. */
  const JOINS_PER_ROOM = 4;
  let server: RunningServer;

  beforeAll(async () => {
    // Quiet: the flood makes the server log every closed socket.
    server = await startServer({
      host: '127.0.0.1',
      port: 0,
      mode: 'dev',
      root: ROOT,
      heartbeatMs: HEARTBEAT_MS,
      deadAfterMs: DEAD_AFTER_MS,
      log: () => undefined,
    });
  }, 30_000);
  afterAll(async () => {
    await server?.close();
  });

  /** Sends heartbeats from `c`, BURST per macrotask, until the server closes it or FLOOD_MAX are sent; how many it sent. */
  async function flood(c: Client): Promise<number> {
    const heartbeat = JSON.stringify({ type: 'heartbeat' });
    let sent = 0;
    while (sent < FLOOD_MAX && c.ws.readyState === c.ws.OPEN) {
      for (let i = 0; i < BURST; i++) c.ws.send(heartbeat);
      sent += BURST;
      await new Promise((resolve) => setImmediate(resolve));
    }
    return sent;
  }

  interface Round {
    sent: number;
    errors: string[];
    closed: { code: number; reason: string };
  }

  /**
   * The flooder: joins `room` as `peerId` and floods until the server closes the socket, then comes
   * back and floods again, while `going()` (MAX_ROUNDS at most). Calls `started` as each flood begins.
   */
  async function attack(room: string, peerId: string, going: () => boolean, started: () => void): Promise<Round[]> {
    const rounds: Round[] = [];
    for (let i = 0; i < MAX_ROUNDS && (i === 0 || going()); i++) {
      const f = await Member.join(server, room, peerId);
      f.stopHeartbeats();
      started();
      const sent = await flood(f);
      const closed = await withTimeout(f.closed, WAIT_MS, 'the flooder to be closed');
      const errors = f.texts.flatMap((t) => {
        const m = parseServerMessage(t);
        return !(m instanceof ProtocolError) && m.type === 'error' ? [m.code] : [];
      });
      rounds.push({ sent, errors, closed });
    }
    return rounds;
  }

  /** Joins `room` and waits for a view that lists the new member; with how long that took from opening the socket. */
  async function timedJoin(room: string): Promise<{ member: Member; ms: number }> {
    const t0 = performance.now();
    const member = await Member.join(server, room);
    await member.message(
      (m) => (m.type === 'view' && m.view.members.some((x) => x.peerId === member.peerId) ? true : undefined),
      `a view with ${member.peerId}`,
      JOIN_MS,
    );
    return { member, ms: performance.now() - t0 };
  }

  it(`rate-limits then closes a flooder, closes an oversized sender with a typed error, and honest joins in its room and another take under ${JOIN_MS} ms`, async () => {
    const [room, other] = [uid('room'), uid('room')];
    // Each room's honest members, in join order.
    const inRoom = [await Member.join(server, room)];
    const inOther = [await Member.join(server, other)];
    const throttledBefore = server.coordinator.throttled;
    let started = (): void => {};
    const flooding = new Promise<void>((resolve) => (started = resolve));
    let joining = true;
    const attacker = attack(room, uid('flooder'), () => joining, started);
    await withTimeout(flooding, WAIT_MS, 'the flood to start');
    // The misbehaving client also sends one message over the size limit, from a member of the other room.
    const big = await Member.join(server, other);
    big.send('x'.repeat(MAX_CONTROL_BYTES + 1));
    // While the flood goes on, honest peers join both rooms, a few one after another.
    const joinMs: number[] = [];
    for (let i = 0; i < JOINS_PER_ROOM; i++) {
      const [a, b] = await Promise.all([timedJoin(room), timedJoin(other)]);
      inRoom.push(a.member);
      inOther.push(b.member);
      joinMs.push(a.ms, b.ms);
    }
    joining = false;
    const rounds = await withTimeout(attacker, 2 * WAIT_MS, 'the flooder to stop');

    // Each flood connection (whose hello counts too): one rate-limited error, the rest dropped,
    // closed beyond 5 times the rate.
    expect(rounds.length).toBeGreaterThan(0);
    for (const r of rounds) {
      expect(r.sent).toBeGreaterThanOrEqual(5 * LIMIT);
      expect(r.errors).toEqual(['rate-limited']);
      expect(r.closed).toEqual({ code: 4000, reason: 'too many messages' });
    }
    expect(server.coordinator.throttled - throttledBefore).toBeGreaterThanOrEqual(rounds.length * (4 * LIMIT + 1));
    // The parser refuses it with a typed error, then the connection is closed.
    expect((await withTimeout(big.closed, WAIT_MS, 'the oversized sender to be closed')).code).toBe(4000);
    expect(big.texts.some((t) => (JSON.parse(t) as { code?: string }).code === 'bad-message')).toBe(true);

    for (const ms of joinMs) expect(ms).toBeLessThan(JOIN_MS);
    // Both rooms end with their honest members, who are told. The flooder was removed before each
    // of its sockets closed; the oversized sender is gone once the other room has a view of just
    // its honest members (until it is gone, every view lists it or lacks a later honest peer).
    await inOther[0]!.view(inOther.map((m) => m.peerId));
    for (const [r, members] of [
      [room, inRoom],
      [other, inOther],
    ] as const) {
      const ids = members.map((m) => m.peerId);
      const final = server.coordinator.view(r);
      expect(final?.members.map((m) => m.peerId)).toEqual(ids);
      for (const m of members) expect(await m.view(ids, final!.epoch - 1)).toEqual(final);
    }
    const res = await fetch(`${server.url}/api/config`, { signal: AbortSignal.timeout(WAIT_MS) });
    expect(res.status).toBe(200);
  });

  it('answers a start whose config nests 30 000 deep with bad-message, and the room still runs (re-sending it used to crash the server)', async () => {
    const room = uid('room');
    const a = await Member.join(server, room);
    const b = await Member.join(server, room);
    a.send(`{"type":"start","job":{"kind":"train","config":{"a":${'['.repeat(30_000)}${']'.repeat(30_000)}}}}`);
    expect(await a.errorCode()).toBe('bad-message');
    a.send({
      type: 'start',
      job: {
        kind: 'train',
        config: {
          dataset: 'fashion-mnist',
          partition: { scheme: 'iid', seed: 1 },
          model: 'mlp',
          algorithm: 'sgd',
          optimizer: { kind: 'adam', lr: 0.01 },
          batch: 32,
          steps: 10,
          seed: 1,
        },
      },
    });
    expect(await b.message((m) => (m.type === 'run' ? m.by : undefined), 'the run')).toBe(a.peerId);
  });
});
