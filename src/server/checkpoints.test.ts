import express from 'express';
import { mkdtempSync, readdirSync, rmSync, truncateSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeCheckpoint, encodeCheckpoint } from '../protocol/index.ts';
import { AUTH_HEADER, helloText, hmac, httpAuth, MEMBER_HEADER, roomKey, toBase64Url } from '../protocol/auth.ts';
import { CheckpointStore, registerCheckpoints } from './checkpoints.ts';
import { RoomAuth } from './room-auth.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'ringtrain-ckpt-'));
const logged: string[] = [];
let server: Server;
let base = '';
const auth = new RoomAuth();
/** Live members by "<room>/<peerId>" and their membership tokens (the coordinator's part). */
const members = new Map<string, string>();
const TOKEN = 'member-token-012345678';
const STRANGER = 'other-token-0123456789';

beforeAll(async () => {
  const app = express();
  registerCheckpoints(app, new CheckpointStore({ dir, keep: 3, log: (m) => logged.push(m) }), auth, (room, peerId, token) => members.get(`${room}/${peerId}`) === token);
  server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/rooms`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const ckpt = (step: number): Uint8Array<ArrayBuffer> =>
  encodeCheckpoint({ step, runKey: 'run', weights: Float32Array.from({ length: 8 }, (_, i) => step + i), optimizer: Float32Array.from([1, step]) });

/** A PUT by peer `p1`, a live member of `room` (made one here). */
const put = (room: string, body: Uint8Array<ArrayBuffer>, headers: Record<string, string> = {}): Promise<Response> => {
  members.set(`${room}/p1`, TOKEN);
  return fetch(`${base}/${room}/checkpoint`, { method: 'PUT', body, headers: { 'Content-Type': 'application/octet-stream', [MEMBER_HEADER]: `p1.${TOKEN}`, ...headers } });
};

async function latestStep(room: string): Promise<number | string> {
  const res = await fetch(`${base}/${room}/checkpoint`);
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
    expect(readdirSync(path.join(dir, 'r1')).sort()).toEqual(['w000000000003-step-0000000030.rtck', 'w000000000004-step-0000000040.rtck', 'w000000000005-step-0000000050.rtck']);
  });

  it("keeps and serves the newest writes, not the highest steps: a new run's step 10 replaces an old run's step 500", async () => {
    for (const step of [480, 490, 500]) await put('r2', ckpt(step));
    expect(await (await put('r2', ckpt(10))).json()).toEqual({ step: 10, bytes: ckpt(10).byteLength });
    expect(await latestStep('r2')).toBe(10);
    expect(readdirSync(path.join(dir, 'r2')).sort()).toEqual(['w000000000002-step-0000000490.rtck', 'w000000000003-step-0000000500.rtck', 'w000000000004-step-0000000010.rtck']);
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

  it('refuses a write from anyone but a live member of the room: a planted checkpoint is not stored', async () => {
    expect((await put('plant', ckpt(3))).status).toBe(200);
    const stranger = (headers: Record<string, string>): Promise<Response> =>
      fetch(`${base}/plant/checkpoint`, { method: 'PUT', body: ckpt(0xffff_ffff), headers: { 'Content-Type': 'application/octet-stream', ...headers } });
    // No membership, a made-up token, another room's member, a member that has left.
    members.set('elsewhere/p9', STRANGER);
    const tries: Record<string, string>[] = [{}, { [MEMBER_HEADER]: `p1.${STRANGER}` }, { [MEMBER_HEADER]: `p9.${STRANGER}` }, { [MEMBER_HEADER]: 'p1' }];
    for (const h of tries) {
      const res = await stranger(h);
      expect(res.status).toBe(403);
      expect(((await res.json()) as { error: string }).error).toBe('only a member of room "plant" while it is live may store its checkpoint');
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
  it('need a fresh proof of the room key for this request and body: none, a stale one, another room\'s, another body\'s or a replayed one is refused with 403', async () => {
    const key = await roomKey('vault', 'AAAAAAAAAAAAAAAAAAAAAA');
    expect(auth.admit('vault', 'p1', 'nonce-0123456789abcdef', { key: toBase64Url(key), proof: await hmac(key, helloText('nonce-0123456789abcdef', 'vault', 'p1')) })).toBeNull();
    const body = ckpt(5);
    const proof = (method: string, room = 'vault', b: Uint8Array<ArrayBuffer> = body, at = Date.now()): Promise<string> => httpAuth(key, method, room, b, at);
    const putWith = async (header?: string): Promise<Response> => put('vault', body, header ? { [AUTH_HEADER]: header } : {});
    const refusal = async (r: Response): Promise<string> => `${r.status} ${((await r.json()) as { error: string }).error}`;
    expect(await refusal(await putWith())).toMatch(/^403 room vault is private/);
    expect(await refusal(await putWith(await proof('PUT', 'vault', body, Date.now() - 10 * 60_000)))).toMatch(/^403 the proof is too old/);
    expect(await refusal(await putWith(await proof('PUT', 'other')))).toMatch(/^403 wrong proof/);
    // A proof made for another body (a man in the middle swapping the checkpoint) does not hold.
    expect(await refusal(await putWith(await proof('PUT', 'vault', ckpt(6))))).toMatch(/^403 wrong proof for this room \(or for this body\)/);
    const good = await proof('PUT');
    expect((await putWith(good)).status).toBe(200);
    // The same request again, proof and all (a replay): refused.
    expect(await refusal(await putWith(good))).toBe('403 this proof was used already (a replayed request)');
    expect((await fetch(`${base}/vault/checkpoint`)).status).toBe(403);
    // A PUT proof does not open a GET.
    expect((await fetch(`${base}/vault/checkpoint`, { headers: { [AUTH_HEADER]: await proof('PUT', 'vault', new Uint8Array(0)) } })).status).toBe(403);
    const got = await fetch(`${base}/vault/checkpoint`, { headers: { [AUTH_HEADER]: await proof('GET', 'vault', new Uint8Array(0)) } });
    expect(got.status).toBe(200);
    expect((decodeCheckpoint(new Uint8Array(await got.arrayBuffer())) as { step: number }).step).toBe(5);
  });
});
