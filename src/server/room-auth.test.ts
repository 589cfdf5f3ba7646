import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { helloText, hmac, newSecret, roomKey, SECRET_PATTERN, toBase64Url } from '../protocol/auth.ts';
import { PROTOCOL_VERSION, type ServerMessage } from '../protocol/index.ts';
import { Coordinator, type Connection } from './coordinator.ts';
import { RoomAuth } from './room-auth.ts';

/** A connection that keeps its challenge's nonce and what came after. */
class Conn implements Connection {
  nonce = '';
  sent: ServerMessage[] = [];
  closedWith: string | null = null;
  send(m: ServerMessage): void {
    if (m.type === 'challenge') this.nonce = m.nonce;
    else this.sent.push(m);
  }
  close(reason: string): void {
    this.closedWith = reason;
  }
}

const coordinators: Coordinator[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const c of coordinators.splice(0)) c.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Sends a hello built from this connection's nonce by `auth`; returns what the coordinator answered. */
async function hello(c: Coordinator, room: string, peerId: string, auth?: (nonce: string) => Promise<object>): Promise<Conn> {
  const conn = new Conn();
  const s = c.connect(conn);
  expect(conn.nonce).toMatch(/^[A-Za-z0-9_-]{24}$/);
  s.message(JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION, room, peerId, ...(auth ? { auth: await auth(conn.nonce) } : {}) }));
  return conn;
}

const proofOf = (key: Uint8Array<ArrayBuffer>, room: string, peerId: string, create = false) => async (nonce: string) => ({
  proof: await hmac(key, helloText(nonce, room, peerId)),
  ...(create ? { key: toBase64Url(key) } : {}),
});

const welcomed = (c: Conn): boolean => c.sent.some((m) => m.type === 'welcome');
const refusal = (c: Conn): string => {
  const e = c.sent.find((m) => m.type === 'error');
  return e?.type === 'error' ? `${e.code}: ${e.message}` : 'none';
};

describe('private rooms', () => {
  it('admit only hellos that sign their own connection nonce with the room key', async () => {
    const c = new Coordinator();
    coordinators.push(c);
    const secret = newSecret();
    expect(secret).toMatch(SECRET_PATTERN);
    const key = await roomKey('lab', secret);
    expect(welcomed(await hello(c, 'lab', 'A', proofOf(key, 'lab', 'A', true)))).toBe(true);
    expect(welcomed(await hello(c, 'lab', 'B', proofOf(key, 'lab', 'B')))).toBe(true);

    const missing = await hello(c, 'lab', 'C');
    expect(refusal(missing)).toMatch(/^unauthorized: room lab is private: open the link its members share/);
    expect(missing.closedWith).toBe('unauthorized');
    const wrong = await hello(c, 'lab', 'D', proofOf(await roomKey('lab', newSecret()), 'lab', 'D'));
    expect(refusal(wrong)).toMatch(/^unauthorized: wrong secret for room lab/);
    // The same secret for another room name gives another key.
    expect(refusal(await hello(c, 'lab', 'E', proofOf(await roomKey('lab2', secret), 'lab', 'E')))).toMatch(/wrong secret/);
    // A recorded hello replayed on a new connection signs the old nonce.
    const recorded = await proofOf(key, 'lab', 'F')('an-old-connection-nonce-');
    expect(refusal(await hello(c, 'lab', 'F', async () => recorded))).toMatch(/wrong secret/);
    // A creator's key for a room that exists already changes nothing.
    expect(refusal(await hello(c, 'lab', 'G', proofOf(await roomKey('lab', newSecret()), 'lab', 'G', true)))).toMatch(/wrong secret/);
    expect(c.view('lab')?.members.map((m) => m.peerId)).toEqual(['A', 'B']);
    expect(c.rejected).toBe(5);
  });

  it('open rooms admit anyone without a secret, but no creator or link holder: a squatted name is refused, not captured', async () => {
    const c = new Coordinator();
    coordinators.push(c);
    expect(welcomed(await hello(c, 'demo', 'A'))).toBe(true);
    expect(welcomed(await hello(c, 'demo', 'A2'))).toBe(true);
    // A squatter opened "lab" first; the real creator's private room and its link holders are refused with a reason.
    expect(welcomed(await hello(c, 'lab', 'squatter'))).toBe(true);
    const key = await roomKey('lab', newSecret());
    expect(refusal(await hello(c, 'lab', 'creator', proofOf(key, 'lab', 'creator', true)))).toMatch(/room lab is an open room on this server, not the private room your link names .*make a new room/);
    expect(refusal(await hello(c, 'lab', 'holder', proofOf(key, 'lab', 'holder')))).toMatch(/not the private room your link names/);
    expect(c.view('lab')?.members.map((m) => m.peerId)).toEqual(['squatter']);
    expect(refusal(await hello(c, 'ghost', 'C', proofOf(await roomKey('ghost', newSecret()), 'ghost', 'C')))).toMatch(/room ghost is not known to this server/);
  });

  it('persist across a restart, written atomically and readable only by the server user', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ringtrain-auth-'));
    dirs.push(dir);
    const file = path.join(dir, 'rooms.json');
    const key = await roomKey('lab', newSecret());
    const first = new Coordinator({ auth: new RoomAuth(file) });
    coordinators.push(first);
    expect(welcomed(await hello(first, 'lab', 'A', proofOf(key, 'lab', 'A', true)))).toBe(true);
    expect(Object.keys(JSON.parse(readFileSync(file, 'utf8')) as object)).toEqual(['lab']);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const again = new Coordinator({ auth: new RoomAuth(file) });
    coordinators.push(again);
    expect(welcomed(await hello(again, 'lab', 'B', proofOf(key, 'lab', 'B')))).toBe(true);
    expect(refusal(await hello(again, 'lab', 'C'))).toMatch(/private/);
  });
});
