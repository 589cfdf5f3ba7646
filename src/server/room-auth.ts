/**
 * Which rooms are private and their keys, kept on disk so that a restarted server still knows
 * them. A private room admits a hello only with an HMAC of the connection's nonce under the room
 * key (protocol/auth.ts); an open room (created by a peer without a secret) admits anyone.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { helloText, HTTP_PROOF_SKEW_MS, httpText } from '../protocol/auth.ts';
import type { HelloAuth } from '../protocol/messages.ts';

type Record_ = { open: true; used: number } | { key: Buffer; used: number };

/** Most rooms remembered; the least recently used are forgotten first. */
const MAX_RECORDS = 100_000;
/** Most HTTP proofs remembered as spent (beyond it, proofs are refused until old ones expire). */
const MAX_SPENT = 100_000;

const sign = (key: Buffer, text: string): Buffer => createHmac('sha256', key).update(text).digest();

function equal(proof: string, expected: Buffer): boolean {
  const got = Buffer.from(proof, 'base64url');
  return got.length === expected.length && timingSafeEqual(got, expected);
}

export class RoomAuth {
  private readonly rooms = new Map<string, Record_>();
  /** HTTP proofs accepted within the time window, and until when to remember each. */
  private readonly spent = new Map<string, number>();

  /** `file`: where the records persist (none: memory only). */
  constructor(private readonly file?: string) {
    if (!file) return;
    try {
      const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, { open?: true; key?: string; used: number }>;
      for (const [room, r] of Object.entries(saved)) this.rooms.set(room, r.key ? { key: Buffer.from(r.key, 'base64url'), used: r.used } : { open: true, used: r.used });
    } catch {
      // No file yet, or unreadable: start empty (private rooms are created again by their creators).
    }
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
        r = { key, used: 0 };
      } else if (auth?.proof) {
        return `room ${room} is not known to this server; ask the room's creator for a fresh link`;
      } else {
        r = { open: true, used: 0 };
      }
      this.rooms.set(room, r);
      this.save();
    }
    if (!('key' in r) && (auth?.key || auth?.proof)) {
      // Squatting: whoever opened `room` first without a secret must not capture the private room
      // a creator or a link holder means; they are told instead of joining strangers unawares.
      return `room ${room} is an open room on this server, not the private room your link names (someone may have taken the name first): make a new room, or pick another name`;
    }
    if ('key' in r) {
      if (!auth?.proof) return `room ${room} is private: open the link its members share (it ends in #k=...)`;
      if (!equal(auth.proof, sign(r.key, helloText(nonce, room, peerId)))) return `wrong secret for room ${room}: open the link its members share again`;
    }
    r.used = Date.now();
    return null;
  }

  /**
   * Checks an HTTP request's proof (header `<time>.<nonce>.<hmac>` over the method, room, time,
   * nonce and the body's SHA-256) for a private room; open and unknown rooms need none. A proof is
   * good once: a replay within the time window is refused.
   */
  checkHttp(room: string, method: string, header: string | undefined, body: Uint8Array, now = Date.now()): string | null {
    const r = this.rooms.get(room);
    if (!r || !('key' in r)) return null;
    const m = /^(\d{1,15})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{43})$/.exec(header ?? '');
    if (!m) return `room ${room} is private: this request needs its proof header`;
    const time = Number(m[1]);
    if (Math.abs(now - time) > HTTP_PROOF_SKEW_MS) return 'the proof is too old (or this machine\'s clock is off)';
    const hash = createHash('sha256').update(body).digest('base64url');
    if (!equal(m[3]!, sign(r.key, httpText(method, room, time, m[2]!, hash)))) return 'wrong proof for this room (or for this body)';
    for (const [p, until] of this.spent) if (until <= now) this.spent.delete(p);
    if (this.spent.has(m[3]!)) return 'this proof was used already (a replayed request)';
    if (this.spent.size >= MAX_SPENT) return 'too many requests for private rooms right now; try again in two minutes';
    this.spent.set(m[3]!, time + HTTP_PROOF_SKEW_MS);
    return null;
  }

  /** Writes the records atomically (a temporary file renamed over the old one). */
  private save(): void {
    if (this.rooms.size > MAX_RECORDS) {
      const oldest = [...this.rooms].sort((a, b) => a[1].used - b[1].used).slice(0, this.rooms.size - MAX_RECORDS);
      for (const [room] of oldest) this.rooms.delete(room);
    }
    if (!this.file) return;
    const out: Record<string, { open?: true; key?: string; used: number }> = {};
    for (const [room, r] of this.rooms) out[room] = 'key' in r ? { key: r.key.toString('base64url'), used: r.used } : { open: true, used: r.used };
    mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(out), { mode: 0o600 });
    renameSync(tmp, this.file);
  }
}
