import express from 'express';
import { mkdtempSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import http, { type ClientRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { decodeCheckpoint, encodeCheckpoint, MAX_CHECKPOINT_BYTES } from '../protocol/index.ts';
import { AUTH_HEADER, helloText, hmac, httpAuth, MEMBER_HEADER, roomKey, toBase64Url } from '../protocol/auth.ts';
import { CheckpointStore, registerCheckpoints, type CheckpointStoreOptions } from './checkpoints.ts';
import { RoomAuth } from './room-auth.ts';

const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(path.join(tmpdir(), 'ringtrain-ckpt-'));
  dirs.push(d);
  return d;
};
const dir = tempDir();
const logged: string[] = [];
const servers: Server[] = [];
let base = '';
const auth = new RoomAuth();
/** Live members by "<room>/<peerId>" and their membership tokens (the coordinator's part). */
const members = new Map<string, string>();
const TOKEN = 'member-token-012345678';
const STRANGER = 'other-token-0123456789';

/** Serves the routes of a store made with `o` on a free port; resolves to their base URL. */
async function serve(o: CheckpointStoreOptions): Promise<string> {
  const app = express();
  registerCheckpoints(app, new CheckpointStore(o), auth, (room, peerId, token) => members.get(`${room}/${peerId}`) === token);
  const server = app.listen(0, '127.0.0.1');
  servers.push(server);
  await new Promise((r) => server.once('listening', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/rooms`;
}

beforeAll(async () => {
  base = await serve({ dir, keep: 3, log: (m) => logged.push(m) });
});
afterAll(async () => {
  for (const s of servers) s.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The uploads in progress in the store at `d`. */
const incoming = (d = dir): string[] => {
  try {
    return readdirSync(path.join(d, '.incoming'));
  } catch {
    return [];
  }
};
// A refused write, for whatever reason, leaves no file behind.
afterEach(() => {
  expect(incoming()).toEqual([]);
});

/** A checkpoint of `floats` weights (and 2 optimizer values): 36 + 4 × (floats + 2) bytes. */
const ckpt = (step: number, floats = 8): Uint8Array<ArrayBuffer> =>
  encodeCheckpoint({
    step,
    runKey: 'run',
    weights: Float32Array.from({ length: floats }, (_, i) => step + i),
    optimizer: Float32Array.from([1, step]),
  });

const memberHeaders = (room: string): Record<string, string> => {
  members.set(`${room}/p1`, TOKEN);
  return { 'Content-Type': 'application/octet-stream', [MEMBER_HEADER]: `p1.${TOKEN}` };
};

/** A PUT by peer `p1`, a live member of `room` (made one here). */
const put = (room: string, body: Uint8Array<ArrayBuffer>, headers: Record<string, string> = {}, at = base): Promise<Response> =>
  fetch(`${at}/${room}/checkpoint`, { method: 'PUT', body, headers: { ...memberHeaders(room), ...headers } });

/** A PUT by `p1` whose body the test writes piece by piece into `req`, and its answer once it comes. */
function upload(
  room: string,
  headers: Record<string, string | number> = {},
  at = base,
): { req: ClientRequest; answer: Promise<{ status: number; error?: string }> } {
  const req = http.request(`${at}/${room}/checkpoint`, { method: 'PUT', headers: { ...memberHeaders(room), ...headers } });
  const answer = new Promise<{ status: number; error?: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, ...(JSON.parse(text) as object) }));
    });
    req.on('error', reject);
  });
  return { req, answer };
}

async function latestStep(room: string, at = base): Promise<number | string> {
  const res = await fetch(`${at}/${room}/checkpoint`);
  if (!res.ok) return `${res.status} ${((await res.json()) as { error: string }).error}`;
  const c = decodeCheckpoint(new Uint8Array(await res.arrayBuffer()));
  return c instanceof Error ? c.message : c.step;
}

describe('checkpoint store over HTTP', () => {
  it('stores verified checkpoints, serves the newest and keeps the last 3', async () => {
    expect(await latestStep('r1')).toBe('404 no checkpoint for room "r1"');
    for (const step of [10, 20, 30, 40, 50]) {
      const res = await put('r1', ckpt(step));
      expect(await res.json()).toEqual({ step, bytes: ckpt(step).byteLength });
    }
    expect(await latestStep('r1')).toBe(50);
    expect(readdirSync(path.join(dir, 'r1')).sort()).toEqual([
      'w000000000003-step-0000000030.rtck',
      'w000000000004-step-0000000040.rtck',
      'w000000000005-step-0000000050.rtck',
    ]);
  });

  it("keeps and serves the newest writes, not the highest steps: a new run's step 10 replaces an old run's step 500", async () => {
    for (const step of [480, 490, 500]) await put('r2', ckpt(step));
    expect(await (await put('r2', ckpt(10))).json()).toEqual({ step: 10, bytes: ckpt(10).byteLength });
    expect(await latestStep('r2')).toBe(10);
    expect(readdirSync(path.join(dir, 'r2')).sort()).toEqual([
      'w000000000002-step-0000000490.rtck',
      'w000000000003-step-0000000500.rtck',
      'w000000000004-step-0000000010.rtck',
    ]);
  });

  it('refuses a corrupt upload without touching what is stored', async () => {
    const bad = ckpt(60);
    bad[bad.length - 1]! ^= 0x10;
    const res = await put('r1', bad);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/checksum mismatch/);
    expect(await latestStep('r1')).toBe(50);
  });

  it('skips a checkpoint corrupted on disk for the one before it, and sets it aside', async () => {
    truncateSync(path.join(dir, 'r1', 'w000000000005-step-0000000050.rtck'), 20);
    expect(await latestStep('r1')).toBe(40);
    expect(logged.some((m) => m.includes('w000000000005-step-0000000050.rtck rejected'))).toBe(true);
    expect(readdirSync(path.join(dir, 'r1'))).toContain('w000000000005-step-0000000050.rtck.corrupt');
  });

  it('refuses a body over the 64 MiB the README states with 413, before storing anything', async () => {
    const before = await latestStep('big');
    const res = await put('big', new Uint8Array(64 * 1024 * 1024 + 1));
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toBe('checkpoint larger than 67108864 bytes');
    expect(await latestStep('big')).toBe(before);
  });

  it('streams a body to disk as it arrives, never holding it whole, and stores it once it is complete', async () => {
    const body = ckpt(7, 1 << 20);
    const { req, answer } = upload('stream', { 'Content-Length': body.byteLength });
    req.write(body.subarray(0, 2 << 20));
    // Half the body is on the server's disk while the other half has not been sent.
    await vi.waitFor(
      () => {
        expect(incoming()).toHaveLength(1);
        expect(statSync(path.join(dir, '.incoming', incoming()[0]!)).size).toBeGreaterThanOrEqual(1 << 20);
      },
      { timeout: 10_000, interval: 20 },
    );
    req.end(body.subarray(2 << 20));
    expect(await answer).toEqual({ status: 200, step: 7, bytes: body.byteLength });
    expect(await latestStep('stream')).toBe(7);
  });

  it('refuses a body past 64 MiB as soon as it passes the cap, announced or not, before its end', async () => {
    const refused = { status: 413, error: `checkpoint larger than ${MAX_CHECKPOINT_BYTES} bytes` };
    // Announced: refused before a byte is read.
    const announced = upload('huge', { 'Content-Length': MAX_CHECKPOINT_BYTES + 1 });
    announced.req.write(new Uint8Array(16));
    expect(await announced.answer).toEqual(refused);
    announced.req.destroy();
    // Not announced (chunked): counted as it arrives.
    const chunked = upload('huge');
    for (let i = 0; i <= MAX_CHECKPOINT_BYTES >> 20; i++) chunked.req.write(new Uint8Array(1 << 20));
    expect(await chunked.answer).toEqual(refused);
    chunked.req.destroy();
    expect(await latestStep('huge')).toBe('404 no checkpoint for room "huge"');
  });

  it('refuses a write from anyone but a live member of the room: a planted checkpoint is not stored', async () => {
    expect((await put('plant', ckpt(3))).status).toBe(200);
    const stranger = (headers: Record<string, string>): Promise<Response> =>
      fetch(`${base}/plant/checkpoint`, {
        method: 'PUT',
        body: ckpt(0xffff_ffff),
        headers: { 'Content-Type': 'application/octet-stream', ...headers },
      });
    // No membership, a made-up token, another room's member, a member that has left.
    members.set('elsewhere/p9', STRANGER);
    const tries: Record<string, string>[] = [
      {},
      { [MEMBER_HEADER]: `p1.${STRANGER}` },
      { [MEMBER_HEADER]: `p9.${STRANGER}` },
      { [MEMBER_HEADER]: 'p1' },
    ];
    for (const h of tries) {
      const res = await stranger(h);
      expect(res.status).toBe(403);
      expect(((await res.json()) as { error: string }).error).toBe(
        'only a member of room "plant" while it is live may store its checkpoint',
      );
    }
    members.delete('plant/p1');
    expect((await stranger({ [MEMBER_HEADER]: `p1.${TOKEN}` })).status).toBe(403);
    expect(await latestStep('plant')).toBe(3);
  });

  it('answers a bad room name with 400', async () => {
    const res = await put('no%20spaces', ckpt(1));
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/bad room name/);
  });
});

describe('checkpoints of a private room', () => {
  it("need a fresh proof of the room key for this request and body: none, a stale one, another room's, another body's or a replayed one is refused with 403", async () => {
    const key = await roomKey('vault', 'AAAAAAAAAAAAAAAAAAAAAA');
    expect(
      auth.admit('vault', 'p1', 'nonce-0123456789abcdef', {
        key: toBase64Url(key),
        proof: await hmac(key, helloText('nonce-0123456789abcdef', 'vault', 'p1')),
      }),
    ).toBeNull();
    const body = ckpt(5);
    const proof = (method: string, room = 'vault', b: Uint8Array<ArrayBuffer> = body, at = Date.now()): Promise<string> =>
      httpAuth(key, method, room, b, at);
    const putWith = async (header?: string): Promise<Response> => put('vault', body, header ? { [AUTH_HEADER]: header } : {});
    const refusal = async (r: Response): Promise<string> => `${r.status} ${((await r.json()) as { error: string }).error}`;
    expect(await refusal(await putWith())).toMatch(/^403 room vault is private/);
    expect(await refusal(await putWith(await proof('PUT', 'vault', body, Date.now() - 10 * 60_000)))).toMatch(/^403 the proof is too old/);
    expect(await refusal(await putWith(await proof('PUT', 'other')))).toMatch(/^403 wrong proof/);
    // A proof made for another body (a man in the middle swapping the checkpoint) does not hold.
    expect(await refusal(await putWith(await proof('PUT', 'vault', ckpt(6))))).toMatch(
      /^403 wrong proof for this room \(or for this body\)/,
    );
    const good = await proof('PUT');
    expect((await putWith(good)).status).toBe(200);
    // The same request again, proof and all (a replay): refused.
    expect(await refusal(await putWith(good))).toBe('403 this proof was used already (a replayed request)');
    expect((await fetch(`${base}/vault/checkpoint`)).status).toBe(403);
    // A PUT proof does not open a GET.
    expect(
      (await fetch(`${base}/vault/checkpoint`, { headers: { [AUTH_HEADER]: await proof('PUT', 'vault', new Uint8Array(0)) } })).status,
    ).toBe(403);
    const got = await fetch(`${base}/vault/checkpoint`, { headers: { [AUTH_HEADER]: await proof('GET', 'vault', new Uint8Array(0)) } });
    expect(got.status).toBe(200);
    expect((decodeCheckpoint(new Uint8Array(await got.arrayBuffer())) as { step: number }).step).toBe(5);
  });
});

describe('checkpoint quotas', () => {
  /** The size of ckpt(step). */
  const S = ckpt(1).byteLength;
  const error = async (r: Response): Promise<string> => `${r.status} ${((await r.json()) as { error: string }).error}`;

  it('keep a room within its quota: its oldest writes are pruned to make room, a checkpoint larger than the quota is refused with 507', async () => {
    const d = tempDir();
    const at = await serve({ dir: d, keep: 3, roomQuota: 2.5 * S });
    for (const step of [1, 2, 3]) expect((await put('q', ckpt(step), {}, at)).status).toBe(200);
    const kept = ['w000000000002-step-0000000002.rtck', 'w000000000003-step-0000000003.rtck'];
    expect(readdirSync(path.join(d, 'q')).sort()).toEqual(kept);
    expect(await error(await put('q', ckpt(4, 40), {}, at))).toMatch(
      /^507 room "q" may keep 190 bytes of checkpoints, and its uploads in progress need 204: make the model smaller, or ask the server's operator to raise --checkpoint-room-quota$/,
    );
    expect(await latestStep('q', at)).toBe(3);
    expect(readdirSync(path.join(d, 'q')).sort()).toEqual(kept);
  });

  it("keep all rooms within the server's quota, counted again at startup: a room rotates its own writes but takes no room's space", async () => {
    const d = tempDir();
    const logs: string[] = [];
    const o = { dir: d, keep: 3, roomQuota: 3 * S, quota: 4 * S, log: (m: string) => logs.push(m) };
    let at = await serve(o);
    for (const step of [1, 2, 3]) expect((await put('a', ckpt(step), {}, at)).status).toBe(200);
    expect((await put('b', ckpt(1), {}, at)).status).toBe(200);
    const full = `507 the server's space for checkpoints (${4 * S} bytes, shared by all rooms) is full: try again later, or ask the server's operator to raise --checkpoint-quota`;
    expect(await error(await put('c', ckpt(1), {}, at))).toBe(full);
    expect(logs).toContain(
      `checkpoint for c refused: all rooms' checkpoints would pass the server's quota of ${4 * S} bytes (raise --checkpoint-quota, or delete old rooms' folders)`,
    );
    // Room a goes on writing, pruning its own oldest; room b keeps its checkpoint and writes on too.
    for (const step of [4, 5, 6, 7]) expect((await put('a', ckpt(step), {}, at)).status).toBe(200);
    expect(await latestStep('b', at)).toBe(1);
    expect((await put('b', ckpt(2), {}, at)).status).toBe(200);
    // A server started on the folder counts what it holds.
    at = await serve(o);
    expect(await error(await put('c', ckpt(1), {}, at))).toBe(full);
    expect(await latestStep('a', at)).toBe(7);
    expect(await latestStep('b', at)).toBe(2);
  });

  it('count uploads in progress from their first byte, and forget one whose client breaks off', async () => {
    const d = tempDir();
    const big = ckpt(1, 1000);
    const at = await serve({ dir: d, keep: 3, roomQuota: big.byteLength + 1000 });
    const first = upload('f', { 'Content-Length': big.byteLength }, at);
    first.req.write(big.subarray(0, 100));
    await vi.waitFor(() => expect(incoming(d)).toHaveLength(1), { timeout: 5000, interval: 10 });
    // Another upload to the room does not fit beside it (refused by its announced length, unread).
    expect(await error(await put('f', ckpt(2, 300), {}, at))).toMatch(
      /^507 room "f" may keep 5044 bytes of checkpoints, and its uploads in progress need 5288/,
    );
    first.req.end(big.subarray(100));
    expect(await first.answer).toEqual({ status: 200, step: 1, bytes: big.byteLength });

    const broken = upload('f', { 'Content-Length': big.byteLength }, at);
    broken.answer.catch(() => undefined);
    broken.req.write(big.subarray(0, 100));
    await vi.waitFor(() => expect(incoming(d)).toHaveLength(1), { timeout: 5000, interval: 10 });
    broken.req.destroy();
    await vi.waitFor(() => expect(incoming(d)).toEqual([]), { timeout: 5000, interval: 10 });
    // Its bytes no longer count: a checkpoint as large fits beside none but the stored one's pruning.
    expect((await put('f', ckpt(3, 1000), {}, at)).status).toBe(200);
    expect(readdirSync(path.join(d, 'f'))).toEqual(['w000000000002-step-0000000003.rtck']);
  });
});
