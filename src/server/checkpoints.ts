/**
 * Checkpoints on the server's disk, per room, so that a room that empties or a server that restarts
 * resumes training where it stopped.
 *
 * - `PUT /api/rooms/:room/checkpoint` (body: the checkpoint bytes, `application/octet-stream`):
 *   verified (format and checksum) before anything is written, then stored atomically (temp file,
 *   fsync, rename) as `<dir>/<room>/w<write number>-step-<step>.rtck`; only the newest `keep`
 *   writes are kept, whatever their steps (a new run's step 10 is newer than an old run's step
 *   500). Answers `{step, bytes}`, or 400/413 with `{error}`.
 * - `GET /api/rooms/:room/checkpoint`: the newest checkpoint that still verifies (a corrupt or
 *   truncated file is logged, renamed `*.corrupt` and skipped for the one before it); 404 when none.
 */
import express from 'express';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { AUTH_HEADER, MEMBER_HEADER } from '../protocol/auth.ts';
import { decodeCheckpoint, MAX_CHECKPOINT_BYTES } from '../protocol/index.ts';
import type { RoomAuth } from './room-auth.ts';

const ROOM = /^[A-Za-z0-9_-]{1,64}$/;
/**
 * `w<12-digit write number>-step-<10-digit step>.rtck`, newest write first when sorted backwards;
 * files of an older version (`step-<step>.rtck`) sort after every numbered write.
 */
const FILE = /^(?:w(\d{12})-)?step-(\d{10})\.rtck$/;

export interface CheckpointStoreOptions {
  /** Folder holding one subfolder per room. */
  dir: string;
  /** Checkpoints kept per room (default 3). */
  keep?: number;
  log?: (msg: string) => void;
}

/** The checkpoints of one server: verified writes, newest-valid reads. */
export class CheckpointStore {
  private readonly keep: number;
  private readonly log: (msg: string) => void;
  /** Writes per room run one after another (their numbers are in write order). */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(private readonly o: CheckpointStoreOptions) {
    this.keep = o.keep ?? 3;
    this.log = o.log ?? (() => {});
  }

  private roomDir(room: string): string {
    return path.join(this.o.dir, room);
  }

  private async files(room: string): Promise<string[]> {
    try {
      return (await readdir(this.roomDir(room))).filter((f) => FILE.test(f)).sort().reverse();
    } catch {
      return [];
    }
  }

  /** Verifies and stores `bytes`; resolves to its step. Rejects with an Error saying what is wrong. */
  save(room: string, bytes: Uint8Array): Promise<number> {
    const c = decodeCheckpoint(bytes);
    if (c instanceof Error) return Promise.reject(c);
    const run = async (): Promise<number> => {
      const dir = this.roomDir(room);
      await mkdir(dir, { recursive: true });
      const newest = (await this.files(room))[0];
      const written = Number(newest ? (FILE.exec(newest)![1] ?? 0) : 0) + 1;
      const name = `w${String(written).padStart(12, '0')}-step-${String(c.step).padStart(10, '0')}.rtck`;
      const tmp = path.join(dir, `.${name}.${process.pid}.tmp`);
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path.join(dir, name));
      for (const old of (await this.files(room)).slice(this.keep)) await unlink(path.join(dir, old)).catch(() => undefined);
      return c.step;
    };
    const prev = this.queues.get(room) ?? Promise.resolve();
    const next = prev.then(run, run);
    this.queues.set(room, next.catch(() => undefined));
    return next;
  }

  /** The most recently written checkpoint of `room` that verifies, or null. Corrupt files are set aside. */
  async latest(room: string): Promise<Uint8Array | null> {
    return (await this.newest(room))?.bytes ?? null;
  }

  /** Where the most recently written checkpoint of `room` that verifies lies, and its step; or null. */
  async latestFile(room: string): Promise<{ path: string; step: number } | null> {
    const c = await this.newest(room);
    return c && { path: c.path, step: c.step };
  }

  private async newest(room: string): Promise<{ path: string; bytes: Uint8Array; step: number } | null> {
    for (const f of await this.files(room)) {
      const p = path.join(this.roomDir(room), f);
      const bytes = new Uint8Array(await readFile(p).catch(() => Buffer.alloc(0)));
      const c = decodeCheckpoint(bytes);
      if (!(c instanceof Error)) return { path: p, bytes, step: c.step };
      this.log(`checkpoint ${p} rejected (${c.message}); using the one before it`);
      await rename(p, `${p}.corrupt`).catch(() => undefined);
    }
    return null;
  }
}

/** Whether `peerId` is a member of `room` now, proven by its membership token (the coordinator's). */
export type MembershipCheck = (room: string, peerId: string, token: string) => boolean;

/**
 * Adds the checkpoint routes to `app`. A write must come from a member of the live room (the
 * {@link MEMBER_HEADER} holds its peer id and membership token), so no stranger can plant a
 * checkpoint for a room, open or private; a private room's requests also carry a one-time proof
 * of the room key bound to the body.
 */
export function registerCheckpoints(app: express.Express, store: CheckpointStore, auth: RoomAuth, isMember: MembershipCheck): void {
  /** The room of the request, once its name is valid and (for a private room) the proof header holds. */
  const roomOf = (req: express.Request, res: express.Response, body: Uint8Array): string | null => {
    const room = String(req.params.room);
    if (!ROOM.test(room)) {
      res.status(400).json({ error: `bad room name "${room.slice(0, 80)}"; use 1-64 letters, digits, "-" or "_"` });
      return null;
    }
    const refused = auth.checkHttp(room, req.method, req.get(AUTH_HEADER), body);
    if (refused) {
      res.status(403).json({ error: refused });
      return null;
    }
    return room;
  };
  app.put(
    '/api/rooms/:room/checkpoint',
    express.raw({ type: () => true, limit: MAX_CHECKPOINT_BYTES }),
    (req, res) => {
      const body = Buffer.isBuffer(req.body) ? new Uint8Array(req.body.buffer, req.body.byteOffset, req.body.byteLength) : new Uint8Array(0);
      const room = roomOf(req, res, body);
      if (!room) return;
      const m = /^([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{22})$/.exec(req.get(MEMBER_HEADER) ?? '');
      if (!m || !isMember(room, m[1]!, m[2]!)) {
        res.status(403).json({ error: `only a member of room "${room}" while it is live may store its checkpoint` });
        return;
      }
      store.save(room, body).then(
        (step) => res.json({ step, bytes: body.byteLength }),
        (e: Error) => res.status(400).json({ error: `checkpoint rejected: ${e.message}` }),
      );
    },
  );
  app.get('/api/rooms/:room/checkpoint', (req, res) => {
    const room = roomOf(req, res, new Uint8Array(0));
    if (!room) return;
    void store.latest(room).then((bytes) => {
      if (!bytes) {
        res.status(404).json({ error: `no checkpoint for room "${room}"` });
        return;
      }
      res.set({ 'Content-Type': 'application/octet-stream', 'Cache-Control': 'no-store' });
      res.end(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    });
  });
  // express.raw answers an oversized body with a 413 error object: give it a message.
  app.use('/api/rooms', (err: { status?: number; message?: string }, _req: express.Request, res: express.Response, next: express.NextFunction) => {
    if (err.status === 413) res.status(413).json({ error: `checkpoint larger than ${MAX_CHECKPOINT_BYTES} bytes` });
    else next(err);
  });
}
