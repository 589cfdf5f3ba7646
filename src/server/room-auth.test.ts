import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
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

/** Where a test's rooms persist: rooms.json in a fresh folder. */
function roomsFile(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ringtrain-auth-'));
  dirs.push(dir);
  return path.join(dir, 'rooms.json');
}

/** Sends a hello built from this connection's nonce by `auth`; returns what the coordinator answered. */
async function hello(c: Coordinator, room: string, peerId: string, auth?: (nonce: string) => Promise<object>): Promise<Conn> {
  const conn = new Conn();
  const s = c.connect(conn);
  expect(conn.nonce).toMatch(/^[A-Za-z0-9_-]{24}$/);
  s.message(JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION, room, peerId, ...(auth ? { auth: await auth(conn.nonce) } : {}) }));
  return conn;
}

const proofOf =
  (key: Uint8Array<ArrayBuffer>, room: string, peerId: string, create = false) =>
  async (nonce: string) => ({
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
    expect(refusal(await hello(c, 'lab', 'creator', proofOf(key, 'lab', 'creator', true)))).toMatch(
      /room lab is an open room on this server, not the private room your link names .*make a new room/,
    );
    expect(refusal(await hello(c, 'lab', 'holder', proofOf(key, 'lab', 'holder')))).toMatch(/not the private room your link names/);
    expect(c.view('lab')?.members.map((m) => m.peerId)).toEqual(['squatter']);
    expect(refusal(await hello(c, 'ghost', 'C', proofOf(await roomKey('ghost', newSecret()), 'ghost', 'C')))).toMatch(
      /room ghost is not known to this server/,
    );
  });

  it('persist across a restart, readable only by the server user', async () => {
    const file = roomsFile();
    const key = await roomKey('lab', newSecret());
    const first = new Coordinator({ auth: new RoomAuth({ file }) });
    coordinators.push(first);
    expect(welcomed(await hello(first, 'lab', 'A', proofOf(key, 'lab', 'A', true)))).toBe(true);
    expect(readFileSync(file, 'utf8')).toBe(`${JSON.stringify({ room: 'lab', key: toBase64Url(key) })}\n`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const again = new Coordinator({ auth: new RoomAuth({ file }) });
    coordinators.push(again);
    expect(welcomed(await hello(again, 'lab', 'B', proofOf(key, 'lab', 'B')))).toBe(true);
    expect(refusal(await hello(again, 'lab', 'C'))).toMatch(/private/);
  });
});

describe('rooms.json', () => {
  const KEY = toBase64Url(new Uint8Array(32).fill(7));
  /** A hello for `room` without a secret: null when it is (or becomes) an open room. */
  const plain = (auth: RoomAuth, room: string): string | null => auth.admit(room, 'p', 'nonce', undefined);
  /** What `auth` remembers of `room` (a probe that changes nothing: a proof for a room it does not hold is refused). */
  const known = (auth: RoomAuth, room: string): string => {
    const refused = auth.admit(room, 'p', 'nonce', { proof: 'x' }) ?? '';
    return /is not known/.test(refused)
      ? 'unknown'
      : /open room/.test(refused)
        ? 'open'
        : /wrong secret/.test(refused)
          ? 'private'
          : refused;
  };
  const lines = (file: string): string[] => readFileSync(file, 'utf8').split('\n').filter(Boolean);

  it('grows by one line a new room, in the same file, however many rooms it holds, and a restart keeps them all', () => {
    const file = roomsFile();
    const auth = new RoomAuth({ file });
    let before = '';
    let inode: number | undefined;
    for (let i = 0; i < 60; i++) {
      const room = `r${i}`;
      if (i % 2) expect(plain(auth, room)).toBeNull();
      else expect(auth.admit(room, 'p', 'nonce', { key: KEY, proof: 'x' })).toMatch(/wrong secret/);
      const now = readFileSync(file, 'utf8');
      expect(now.slice(0, before.length)).toBe(before);
      expect(now.slice(before.length)).toBe(`${JSON.stringify(i % 2 ? { room, open: true } : { room, key: KEY })}\n`);
      inode ??= statSync(file).ino;
      expect(statSync(file).ino).toBe(inode);
      before = now;
    }
    const again = new RoomAuth({ file });
    for (let i = 0; i < 60; i++) expect(known(again, `r${i}`)).toBe(i % 2 ? 'open' : 'private');
  });

  it('ignores a torn last line with a message, and appends after it on a line of its own', async () => {
    const file = roomsFile();
    writeFileSync(
      file,
      `${JSON.stringify({ room: 'lab', key: KEY })}\n${JSON.stringify({ room: 'demo', open: true })}\n{"room":"half","ke`,
    );
    const logs: string[] = [];
    const auth = new RoomAuth({ file, log: (m) => logs.push(m) });
    expect(logs).toEqual([`${file}: line 3 ignored (torn: the server stopped while writing it)`]);
    expect([known(auth, 'lab'), known(auth, 'demo'), known(auth, 'half')]).toEqual(['private', 'open', 'unknown']);
    expect(plain(auth, 'new')).toBeNull();
    expect(readFileSync(file, 'utf8').endsWith(`{"room":"half","ke\n${JSON.stringify({ room: 'new', open: true })}\n`)).toBe(true);
    // The torn line is rewritten away in the background.
    await vi.waitFor(
      () =>
        expect(
          lines(file)
            .map((l) => (JSON.parse(l) as { room: string }).room)
            .sort(),
        ).toEqual(['demo', 'lab', 'new']),
      { timeout: 5000, interval: 10 },
    );
    const again = new RoomAuth({ file });
    expect([known(again, 'lab'), known(again, 'demo'), known(again, 'new')]).toEqual(['private', 'open', 'open']);
  });

  it('forgets the least recently used room beyond the cap, and rewrites the file once it holds twice as many lines as rooms', async () => {
    const file = roomsFile();
    const auth = new RoomAuth({ file, maxRecords: 4 });
    for (const room of ['a', 'b', 'c', 'd']) expect(plain(auth, room)).toBeNull();
    // A use makes "a" the most recent: "b" goes first, then "c".
    expect(plain(auth, 'a')).toBeNull();
    expect(plain(auth, 'e')).toBeNull();
    expect(plain(auth, 'f')).toBeNull();
    expect(['a', 'b', 'c', 'd', 'e', 'f'].map((r) => known(auth, r))).toEqual(['open', 'unknown', 'unknown', 'open', 'open', 'open']);
    for (const room of ['g', 'h', 'i']) expect(plain(auth, room)).toBeNull();
    await vi.waitFor(() => expect(lines(file)).toHaveLength(4), { timeout: 5000, interval: 10 });
    const again = new RoomAuth({ file, maxRecords: 4 });
    expect(['d', 'e', 'f', 'g', 'h', 'i'].map((r) => known(again, r))).toEqual(['unknown', 'unknown', 'open', 'open', 'open', 'open']);
  });

  it("reads an older version's file (one JSON object), least recently used first, and rewrites it as lines", async () => {
    const file = roomsFile();
    writeFileSync(file, JSON.stringify({ lab: { key: KEY, used: 20 }, demo: { open: true, used: 10 } }));
    const auth = new RoomAuth({ file });
    expect([known(auth, 'lab'), known(auth, 'demo')]).toEqual(['private', 'open']);
    await vi.waitFor(
      () => expect(lines(file)).toEqual([JSON.stringify({ room: 'demo', open: true }), JSON.stringify({ room: 'lab', key: KEY })]),
      { timeout: 5000, interval: 10 },
    );
    expect(plain(auth, 'new')).toBeNull();
    expect(known(new RoomAuth({ file }), 'new')).toBe('open');
  });
});
