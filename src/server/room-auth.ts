/**
 * Which rooms are private and their keys, kept on disk so that a restarted server still knows
 * them. A private room admits a hello only with an HMAC of the connection's nonce under the room
 * key (protocol/auth.ts); an open room (created by a peer without a secret) admits anyone.
 *
 * The file (`rooms.json`, mode 600) is a log of JSON lines, one a record:
 * `{"room":"lab","key":"<base64url>"}` or `{"room":"demo","open":true}`; a later line for a room
 * wins. A new room costs one appended line, whatever the number of rooms, written before admit()
 * returns: a room is acknowledged by the welcome its creator receives, and by then its line is
 * with the operating system, so it survives the server process dying at any moment after (a
 * machine that loses power keeps what the OS had flushed to disk). When the file holds more than
 * twice as many lines as live rooms (rooms forgotten at the cap leave theirs), it is rewritten in
 * the background: fsync'd, and renamed over the old one, so a crash leaves one or the other whole.
 * A torn last line (a server that stopped mid-write) is logged and ignored on load. The file of an
 * older version (one JSON object of all rooms) is read, and rewritten as lines.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { helloText, HTTP_PROOF_SKEW_MS, httpText } from '../protocol/auth.ts';
import type { HelloAuth } from '../protocol/messages.ts';

type Record_ = { open: true } | { key: Buffer };

/** Most rooms remembered; the least recently used are forgotten first. */
const MAX_RECORDS = 100_000;
/** Most HTTP proofs remembered as spent (beyond it, proofs are refused until old ones expire). */
const MAX_SPENT = 100_000;
/** Records serialized between two writes of a rewrite, so that it never holds the event loop long. */
const REWRITE_CHUNK = 4096;

const sign = (key: Buffer, text: string): Buffer => createHmac('sha256', key).update(text).digest();

function equal(proof: string, expected: Buffer): boolean {
  const got = Buffer.from(proof, 'base64url');
  return got.length === expected.length && timingSafeEqual(got, expected);
}

/** A record as saved (`key` base64url), or null when it is neither a 32-byte key nor open. */
function recordOf(saved: { key?: unknown; open?: unknown }): Record_ | null {
  if (typeof saved.key === 'string') {
    const key = Buffer.from(saved.key, 'base64url');
    return key.length === 32 ? { key } : null;
  }
  return saved.open === true ? { open: true } : null;
}

const lineOf = (room: string, r: Record_): string =>
  `${JSON.stringify('key' in r ? { room, key: r.key.toString('base64url') } : { room, open: true })}\n`;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export interface RoomAuthOptions {
  /** Where the records persist (none: memory only). */
  file?: string;
  /** Most rooms remembered (default 100 000). */
  maxRecords?: number;
  log?: (msg: string) => void;
}

export class RoomAuth {
  /** The records, least recently used first (a use moves a room to the end). */
  private readonly rooms = new Map<string, Record_>();
  /** HTTP proofs accepted within the time window, and until when to remember each. */
  private readonly spent = new Map<string, number>();
  private readonly maxRecords: number;
  private readonly log: (msg: string) => void;
  /** Lines the file holds (records, live or not, and unreadable lines). */
  private lines = 0;
  /** The lines appended while a rewrite runs, which the new file must hold too; null when none runs. */
  private appendedDuringRewrite: string[] | null = null;

  constructor(private readonly o: RoomAuthOptions = {}) {
    this.maxRecords = o.maxRecords ?? MAX_RECORDS;
    this.log = o.log ?? (() => {});
    if (!o.file) return;
    mkdirSync(path.dirname(o.file), { recursive: true });
    let text = '';
    try {
      text = readFileSync(o.file, 'utf8');
    } catch {
      // No file yet: no rooms yet.
    }
    const lines = text.split('\n');
    lines.forEach((line, i) => {
      if (!line) return;
      this.lines++;
      if (!this.load(line, i === 0))
        this.log(
          `${o.file}: line ${i + 1} ignored (${i === lines.length - 1 ? 'torn: the server stopped while writing it' : 'not a room record'})`,
        );
    });
    // The next record must start a line of its own, not complete a torn one.
    if (text && !text.endsWith('\n')) appendFileSync(o.file, '\n');
    if (this.lines !== this.rooms.size) this.rewrite();
  }

  /** Takes in one line of the file (the first may be an older version's whole file); false when it is not understood. */
  private load(line: string, first: boolean): boolean {
    let saved: unknown;
    try {
      saved = JSON.parse(line);
    } catch {
      return false;
    }
    if (!isObject(saved)) return false;
    if (typeof saved.room === 'string') {
      const r = recordOf(saved);
      if (r) this.remember(saved.room, r);
      return r !== null;
    }
    if (!first || !Object.values(saved).every(isObject)) return false;
    this.loadOlderVersion(saved as Record<string, Record<string, unknown>>);
    return true;
  }

  /** Reads the file of an older version, `{<room>: {key | open, used}}`, least recently used first. */
  private loadOlderVersion(saved: Record<string, Record<string, unknown>>): void {
    const used = (room: string): number => Number(saved[room]!.used) || 0;
    for (const room of Object.keys(saved).sort((a, b) => used(a) - used(b))) {
      const r = recordOf(saved[room]!);
      if (r) this.remember(room, r);
    }
  }

  /** Makes `room` the most recently used, forgetting the least recently used room beyond the cap. */
  private remember(room: string, r: Record_): void {
    this.rooms.delete(room);
    this.rooms.set(room, r);
    if (this.rooms.size > this.maxRecords) this.rooms.delete(this.rooms.keys().next().value!);
  }

  /** A fresh nonce for one connection. */
  static nonce(): string {
    return randomBytes(18).toString('base64url');
  }

  /**
   * Admits a hello to `room` on the connection with `nonce`, creating the room's record when it is
   * new; returns null, or the reason for refusing.
   */
  admit(room: string, peerId: string, nonce: string, auth: HelloAuth | undefined): string | null {
    let r = this.rooms.get(room);
    if (!r) {
      if (auth?.key) {
        const key = Buffer.from(auth.key, 'base64url');
        if (key.length !== 32) return 'the room key must be 32 bytes';
        r = { key };
      } else if (auth?.proof) {
        return `room ${room} is not known to this server; ask the room's creator for a fresh link`;
      } else {
        r = { open: true };
      }
      try {
        this.append(lineOf(room, r));
      } catch (e) {
        this.log(`room ${room} not created: ${this.o.file} could not be written (${(e as Error).message})`);
        return `this server could not record room ${room}; try again later`;
      }
      this.remember(room, r);
      if (this.lines > 2 * this.rooms.size) this.rewrite();
    }
    if (!('key' in r) && (auth?.key || auth?.proof)) {
      // Squatting: whoever opened `room` first without a secret must not capture the private room
      // a creator or a link holder means; they are told instead of joining strangers unawares.
      return `room ${room} is an open room on this server, not the private room your link names (someone may have taken the name first): make a new room, or pick another name`;
    }
    if ('key' in r) {
      if (!auth?.proof) return `room ${room} is private: open the link its members share (it ends in #k=...)`;
      if (!equal(auth.proof, sign(r.key, helloText(nonce, room, peerId))))
        return `wrong secret for room ${room}: open the link its members share again`;
    }
    this.remember(room, r);
    return null;
  }

  /**
   * Checks an HTTP request's proof (header `<time>.<nonce>.<hmac>` over the method, room, time,
   * nonce and `bodyHash`, the SHA-256 of the body in base64url) for a private room; open and
   * unknown rooms need none. A proof is good once: a replay within the time window is refused.
   */
  checkHttp(room: string, method: string, header: string | undefined, bodyHash: string, now = Date.now()): string | null {
    const r = this.rooms.get(room);
    if (!r || !('key' in r)) return null;
    const m = /^(\d{1,15})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{43})$/.exec(header ?? '');
    if (!m) return `room ${room} is private: this request needs its proof header`;
    const time = Number(m[1]);
    if (Math.abs(now - time) > HTTP_PROOF_SKEW_MS) return "the proof is too old (or this machine's clock is off)";
    if (!equal(m[3]!, sign(r.key, httpText(method, room, time, m[2]!, bodyHash)))) return 'wrong proof for this room (or for this body)';
    for (const [p, until] of this.spent) if (until <= now) this.spent.delete(p);
    if (this.spent.has(m[3]!)) return 'this proof was used already (a replayed request)';
    if (this.spent.size >= MAX_SPENT) return 'too many requests for private rooms right now; try again in two minutes';
    this.spent.set(m[3]!, time + HTTP_PROOF_SKEW_MS);
    return null;
  }

  /** Appends a new record's line to the file: one small write, whatever the number of rooms. */
  private append(line: string): void {
    if (!this.o.file) return;
    appendFileSync(this.o.file, line, { mode: 0o600 });
    this.lines++;
    this.appendedDuringRewrite?.push(line);
  }

  /**
   * Rewrites the file with one line a live room, least recently used first, in the background:
   * the records as they are now, in chunks, then (synchronously, so that no record comes in
   * between) the lines appended meanwhile, and a rename over the old file.
   */
  private rewrite(): void {
    const file = this.o.file;
    if (!file || this.appendedDuringRewrite) return;
    const records = [...this.rooms];
    const appended: string[] = (this.appendedDuringRewrite = []);
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    void (async () => {
      const fh = await open(tmp, 'w', 0o600);
      try {
        for (let i = 0; i < records.length; i += REWRITE_CHUNK) {
          await fh.write(
            records
              .slice(i, i + REWRITE_CHUNK)
              .map(([room, r]) => lineOf(room, r))
              .join(''),
          );
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      appendFileSync(tmp, appended.join(''));
      renameSync(tmp, file);
      this.lines = records.length + appended.length;
    })()
      .catch((e: Error) => {
        this.log(`${file} not rewritten (${e.message}); new rooms are still appended to it`);
        rmSync(tmp, { force: true });
      })
      .finally(() => {
        this.appendedDuringRewrite = null;
      });
  }
}
