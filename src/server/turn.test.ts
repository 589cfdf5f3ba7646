import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { MEMBER_HEADER } from '../protocol/auth.ts';
import { memberIceSchema } from '../protocol/ice.ts';
import { clientConfigSchema, parseServerMessage, PROTOCOL_VERSION, type IceServer } from '../protocol/index.ts';
import { COORDINATOR_PATH, startServer, type RunningServer } from './app.ts';
import { DEFAULT_TURN_TTL_S, mintTurnServer, turnCredential } from './turn.ts';

const WAIT_MS = 5000;
const SECRET = 'a-turn-secret-of-some-length';
const TTL_S = 600;
const TURN_URLS = ['turn:turn.example.org:3478', 'turns:turn.example.org:5349'];
const STUN = { urls: 'stun:stun.example.org:3478' };
const STATIC = { urls: 'turn:static.example.org:3478', username: 'static-user', credential: 'static-password' };

/** What any credential in a list of ICE servers would show: usernames, credentials, and the secret itself. */
const secrets = (list: IceServer[]): string[] =>
  list.flatMap((s) => [s.username, s.credential].filter((x): x is string => x !== undefined));

describe('TURN REST credentials', () => {
  it('are HMAC-SHA1 of "<expiry>:<name>" under the secret, base64, as coturn checks them', () => {
    // A credential coturn 4.6.1 (use-auth-secret, static-auth-secret=s3cret) accepted for an allocation.
    expect(turnCredential('s3cret', '1796151165:ptest')).toBe('yr/tb6JZpJJ9dneZLOcLbs8iC5s=');
    const now = 1_700_000_000_500;
    const s = mintTurnServer({ urls: TURN_URLS, secret: SECRET, ttlSeconds: TTL_S }, 'p1', now);
    expect(s).toEqual({
      urls: TURN_URLS,
      username: `${1_700_000_000 + TTL_S}:p1`,
      credential: createHmac('sha1', SECRET)
        .update(`${1_700_000_000 + TTL_S}:p1`)
        .digest('base64'),
    });
    expect(mintTurnServer({ urls: TURN_URLS, secret: SECRET }, 'p1', now).username).toBe(`${1_700_000_000 + DEFAULT_TURN_TTL_S}:p1`);
  });
});

describe('ICE servers and TURN credentials over HTTP (a server with --turn-url/--turn-secret and a static TURN server)', () => {
  let root: string;
  let server: RunningServer;
  const sockets: WebSocket[] = [];

  beforeAll(async () => {
    root = mkdtempSync(path.join(tmpdir(), 'ringtrain-turn-'));
    mkdirSync(path.join(root, 'dist'));
    writeFileSync(path.join(root, 'dist', 'index.html'), '<!doctype html><title>built</title>');
    server = await startServer({
      host: '127.0.0.1',
      port: 0,
      mode: 'prod',
      root,
      checkpointDir: path.join(root, 'state'),
      iceServers: [STUN, STATIC],
      turn: { urls: TURN_URLS, secret: SECRET, ttlSeconds: TTL_S },
    });
  });

  afterAll(async () => {
    for (const ws of sockets) ws.terminate();
    await server?.close();
    rmSync(root, { recursive: true, force: true });
  });

  /** Joins `room` over the coordinator's WebSocket; its membership token and a way to leave. */
  async function join(room: string, peerId: string): Promise<{ token: string; leave(): Promise<void> }> {
    const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}${COORDINATOR_PATH}`);
    sockets.push(ws);
    const token = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no welcome')), WAIT_MS);
      ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION, room, peerId })));
      ws.on('message', (data) => {
        const m = parseServerMessage(data.toString());
        if (!(m instanceof Error) && m.type === 'welcome') {
          clearTimeout(t);
          resolve(m.token);
        }
      });
    });
    const leave = async (): Promise<void> => {
      const closed = new Promise((r) => ws.once('close', r));
      ws.close();
      await closed;
      // The coordinator removes the member when it sees the close.
      await vi.waitFor(() => expect(server.coordinator.isMember(peerId)).toBe(false), { timeout: 2_000, interval: 10 });
    };
    return { token, leave };
  }

  const ice = (room: string, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${server.url}/api/rooms/${room}/ice`, { headers, signal: AbortSignal.timeout(WAIT_MS) });

  it("a stranger's GET /api/config carries no credential: only the servers that need none", async () => {
    const res = await fetch(`${server.url}/api/config`, { signal: AbortSignal.timeout(WAIT_MS) });
    const text = await res.text();
    const cfg = clientConfigSchema.parse(JSON.parse(text));
    expect(cfg.iceServers).toEqual([STUN]);
    expect(secrets(cfg.iceServers)).toEqual([]);
    for (const leak of [SECRET, STATIC.credential, STATIC.username, 'turn:']) expect(text).not.toContain(leak);
  });

  it('a stranger gets no ICE credentials: no membership, a made-up token, a real token for another room, a token after leaving', async () => {
    const room = 'turn-room';
    const other = 'turn-other';
    const member = await join(room, 'turn-p1');
    const tries: [string, Record<string, string>][] = [
      [room, {}],
      [room, { [MEMBER_HEADER]: 'turn-p1' }],
      [room, { [MEMBER_HEADER]: `turn-p1.${'A'.repeat(22)}` }],
      [room, { [MEMBER_HEADER]: `turn-p9.${member.token}` }],
      [other, { [MEMBER_HEADER]: `turn-p1.${member.token}` }],
    ];
    for (const [r, headers] of tries) {
      const res = await ice(r, headers);
      expect(res.status, `${r} ${JSON.stringify(headers)}`).toBe(403);
      const text = await res.text();
      for (const leak of [SECRET, STATIC.credential, 'turn:']) expect(text).not.toContain(leak);
    }
    await member.leave();
    expect((await ice(room, { [MEMBER_HEADER]: `turn-p1.${member.token}` })).status).toBe(403);
  });

  it('an admitted peer gets a credential minted for it: HMAC-SHA1 of "<now + ttl>:<peer id>" under the secret', async () => {
    const room = 'turn-members';
    const member = await join(room, 'turn-p2');
    const before = Math.floor(Date.now() / 1000);
    const res = await ice(room, { [MEMBER_HEADER]: `turn-p2.${member.token}` });
    const after = Math.floor(Date.now() / 1000);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = memberIceSchema.parse(await res.json());
    expect(body.ttlMs).toBe(TTL_S * 1000);
    // The operator's servers, the static one included (to members only), and the minted one.
    expect(body.iceServers.slice(0, 2)).toEqual([STUN, STATIC]);
    const turn = body.iceServers[2]!;
    expect(body.iceServers).toHaveLength(3);
    expect(turn.urls).toEqual(TURN_URLS);
    const m = /^(\d+):turn-p2$/.exec(turn.username ?? '');
    expect(m, turn.username).not.toBeNull();
    const expiry = Number(m![1]);
    expect(expiry).toBeGreaterThanOrEqual(before + TTL_S);
    expect(expiry).toBeLessThanOrEqual(after + TTL_S);
    expect(turn.credential).toBe(createHmac('sha1', SECRET).update(turn.username!).digest('base64'));
    expect(JSON.stringify(body)).not.toContain(SECRET);
    await member.leave();
  });
});
