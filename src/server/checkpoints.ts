/**
 * Checkpoints on the server's disk, per room, so that a room that empties or a server that restarts
 * resumes training where it stopped.
 *
 * - `PUT /api/rooms/:room/checkpoint` (body: the checkpoint bytes, `application/octet-stream`), by
 *   a live member of the room only. The body is never held in memory whole: it streams to a temp
 *   file in `<dir>/.incoming`, its bytes counted as they arrive (413 once past
 *   {@link MAX_CHECKPOINT_BYTES}, or before reading when Content-Length says so) and reserved
 *   against the quotas (507), its SHA-256 computed on the way for a private room's proof (403).
 *   Then the file is read back and verified (format and checksum; one verification at a time,
 *   server-wide, so concurrent uploads never add up to several checkpoints in memory), and renamed
 *   to `<dir>/<room>/w<write number>-step-<step>.rtck`. A refused upload leaves no file behind and
 *   touches nothing stored. Answers `{step, bytes}`, or 400/403/413/507 with `{error}`.
 * - Only the newest `keep` writes of a room are kept, whatever their steps (a new run's step 10 is
 *   newer than an old run's step 500), and fewer when the quotas ask for it: a room's checkpoints
 *   stay within `roomQuota` bytes and all rooms' within `quota`, the oldest of the writing room
 *   pruned first to make room. A write is refused (507) only when even pruning every older write
 *   of its own room would not make it fit: no room can take space that others' checkpoints hold.
 *   Uploads in progress count against both quotas from their first byte. The space stored is
 *   counted at startup, so the quotas hold across restarts.
 * - `GET /api/rooms/:room/checkpoint`: the newest checkpoint that still verifies (a corrupt or
 *   truncated file is logged, renamed `*.corrupt` and skipped for the one before it); 404 when none.
 *
 * One server per folder: a starting server deletes the half-done uploads `.incoming` holds.
 */
import type express from 'express';
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { AUTH_HEADER, MEMBER_HEADER } from '../protocol/auth.ts';
import { decodeCheckpoint, MAX_CHECKPOINT_BYTES } from '../protocol/index.ts';
import type { RoomAuth } from './room-auth.ts';

const ROOM = /^[A-Za-z0-9_-]{1,64}$/;
/**
 * `w<12-digit write number>-step-<10-digit step>.rtck`, newest write first when sorted backwards;
 * files of an older version (`step-<step>.rtck`) sort after every numbered write.
 */
const FILE = /^(?:w(\d{12})-)?step-(\d{10})\.rtck$/;
/** Uploads being received, beside the rooms' folders (no room name starts with "."). */
const INCOMING = '.incoming';
/** What a GET's proof binds: the SHA-256 of its empty body. */
const EMPTY_BODY_HASH = createHash('sha256').digest('base64url');

export const CHECKPOINT_DEFAULTS = {
  /** Writes kept per room. */
  keep: 3,
  /** Bytes per room: `keep` checkpoints of the largest size, so the default never prunes early. */
  roomQuota: 3 * MAX_CHECKPOINT_BYTES,
  /** Bytes for all rooms together: 2 GiB. */
  quota: 2 * 1024 ** 3,
};

export interface CheckpointStoreOptions {
  /** Folder holding one subfolder per room. */
  dir: string;
  /** Checkpoints kept per room (default 3). */
  keep?: number;
  /** Most bytes of checkpoints one room keeps, uploads in progress included (default keep × 64 MiB). */
  roomQuota?: number;
  /** Most bytes of checkpoints all rooms keep together, uploads in progress included (default 2 GiB). */
  quota?: number;
  log?: (msg: string) => void;
}

/** A write the store refuses, with the HTTP status that says why. */
export class CheckpointRefused extends Error {
  override readonly name = 'CheckpointRefused';
  constructor(
    readonly status: 400 | 403 | 413 | 507,
    message: string,
  ) {
    super(message);
  }
}

const tooLarge = (): CheckpointRefused => new CheckpointRefused(413, `checkpoint larger than ${MAX_CHECKPOINT_BYTES} bytes`);

interface Stored {
  name: string;
  bytes: number;
}

/** What one upload holds against its room's and the server's quotas, until it is stored or refused. */
interface Claim {
  room: string;
  bytes: number;
}

const total = (files: readonly Stored[]): number => files.reduce((n, f) => n + f.bytes, 0);

export interface SaveOptions {
  /** The body's announced length (Content-Length), checked before a byte is read. */
  length?: number;
  /** Given the body's SHA-256 (base64url) once it is all received: null to store it, else why not (403). */
  authorize?: (bodyHash: string) => string | null;
}

/** The checkpoints of one server: streamed, verified writes within quotas; newest-valid reads. */
export class CheckpointStore {
  private readonly keep: number;
  private readonly roomQuota: number;
  private readonly quota: number;
  private readonly log: (msg: string) => void;
  /** Each room's stored writes, newest first. */
  private readonly rooms = new Map<string, Stored[]>();
  /** Bytes of all rooms' stored writes. */
  private stored = 0;
  /** Bytes reserved by uploads in progress, per room and in all. */
  private readonly pending = new Map<string, number>();
  private pendingTotal = 0;
  /** Commits run one after another: write numbers follow write order, and one verification holds memory at a time. */
  private commits: Promise<unknown> = Promise.resolve();
  /** The count of what the folder holds at startup. */
  private readonly ready: Promise<void>;

  constructor(private readonly o: CheckpointStoreOptions) {
    this.keep = o.keep ?? CHECKPOINT_DEFAULTS.keep;
    this.roomQuota = o.roomQuota ?? CHECKPOINT_DEFAULTS.roomQuota;
    this.quota = o.quota ?? CHECKPOINT_DEFAULTS.quota;
    this.log = o.log ?? (() => {});
    this.ready = this.scan().catch((e: Error) =>
      this.log(`checkpoint folder ${o.dir} not counted (${e.message}): the quotas count only what is written from now on`),
    );
  }

  private roomDir(room: string): string {
    return path.join(this.o.dir, room);
  }

  /** Deletes the uploads a stopped server left half-done, and counts what each room holds. */
  private async scan(): Promise<void> {
    await rm(path.join(this.o.dir, INCOMING), { recursive: true, force: true });
    const rooms = await readdir(this.o.dir).catch(() => []);
    for (const room of rooms.filter((r) => ROOM.test(r))) {
      const names = (await readdir(this.roomDir(room)).catch(() => []))
        .filter((f) => FILE.test(f))
        .sort()
        .reverse();
      const files: Stored[] = [];
      for (const name of names) {
        const s = await stat(path.join(this.roomDir(room), name)).catch(() => null);
        if (s) files.push({ name, bytes: s.size });
      }
      if (files.length === 0) continue;
      this.rooms.set(room, files);
      this.stored += total(files);
    }
  }

  /**
   * How many bytes of `room`'s stored writes may stay, by each quota, once its uploads in progress
   * are stored (negative: not even pruning all of them makes room). Other rooms' writes and all
   * uploads in progress count in full.
   */
  private budgets(room: string): { room: number; server: number } {
    const own = total(this.rooms.get(room) ?? []);
    return { room: this.roomQuota - (this.pending.get(room) ?? 0), server: this.quota - (this.stored - own) - this.pendingTotal };
  }

  /** Why `room`'s uploads in progress do not fit, or null. */
  private overQuota(room: string): string | null {
    const b = this.budgets(room);
    if (b.room < 0) {
      return `room "${room}" may keep ${this.roomQuota} bytes of checkpoints, and its uploads in progress need ${this.pending.get(room)}: make the model smaller, or ask the server's operator to raise --checkpoint-room-quota`;
    }
    if (b.server < 0) {
      this.log(
        `checkpoint for ${room} refused: all rooms' checkpoints would pass the server's quota of ${this.quota} bytes (raise --checkpoint-quota, or delete old rooms' folders)`,
      );
      return `the server's space for checkpoints (${this.quota} bytes, shared by all rooms) is full: try again later, or ask the server's operator to raise --checkpoint-quota`;
    }
    return null;
  }

  /** Adds `bytes` (negative: gives them back) to what upload `c` holds against the quotas. */
  private hold(c: Claim, bytes: number): void {
    const left = (this.pending.get(c.room) ?? 0) + bytes;
    if (left === 0) this.pending.delete(c.room);
    else this.pending.set(c.room, left);
    this.pendingTotal += bytes;
    c.bytes += bytes;
  }

  /** Holds `bytes` more for upload `c`; throws the refusal (507) when its room's uploads no longer fit. */
  private claim(c: Claim, bytes: number): void {
    this.hold(c, bytes);
    const refused = this.overQuota(c.room);
    if (refused) throw new CheckpointRefused(507, refused);
  }

  /**
   * Streams `body` to a temp file and stores it once it is whole, authorized and verified;
   * resolves to its step and size. Rejects with a {@link CheckpointRefused} saying what is wrong
   * (or with the error of a body that broke off), leaving no file behind.
   */
  async save(room: string, body: Readable, o: SaveOptions = {}): Promise<{ step: number; bytes: number }> {
    if ((o.length ?? 0) > MAX_CHECKPOINT_BYTES) throw tooLarge();
    await this.ready;
    const claim: Claim = { room, bytes: 0 };
    const tmp = path.join(this.o.dir, INCOMING, `${room}.${randomUUID()}.tmp`);
    try {
      if (o.length) this.claim(claim, o.length);
      const { bytes, hash } = await this.receive(body, tmp, claim);
      const refused = o.authorize?.(hash);
      if (refused) throw new CheckpointRefused(403, refused);
      const next = this.commits.then(() => this.commit(tmp, bytes, claim));
      this.commits = next.catch(() => undefined);
      return { step: await next, bytes };
    } finally {
      this.hold(claim, -claim.bytes);
      // Gone already once stored.
      await unlink(tmp).catch(() => undefined);
    }
  }

  /** Writes `body` to `tmp` as it arrives, counting and claiming its bytes; resolves to its size and SHA-256 (base64url). */
  private async receive(body: Readable, tmp: string, claim: Claim): Promise<{ bytes: number; hash: string }> {
    await mkdir(path.dirname(tmp), { recursive: true });
    const hash = createHash('sha256');
    let bytes = 0;
    const fh = await open(tmp, 'wx', 0o600);
    try {
      // Not destroyed on a refusal: the request must live on to carry the answer.
      for await (const chunk of body.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
        bytes += chunk.byteLength;
        if (bytes > MAX_CHECKPOINT_BYTES) throw tooLarge();
        if (bytes > claim.bytes) this.claim(claim, bytes - claim.bytes);
        hash.update(chunk);
        await fh.write(chunk);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    return { bytes, hash: hash.digest('base64url') };
  }

  /**
   * Verifies the upload in `tmp` and renames it into its room, pruning the room's oldest writes
   * beyond `keep` or the quotas; resolves to its step. Runs alone (see {@link commits}).
   */
  private async commit(tmp: string, bytes: number, claim: Claim): Promise<number> {
    const { room } = claim;
    const c = decodeCheckpoint(new Uint8Array(await readFile(tmp)));
    if (c instanceof Error) throw new CheckpointRefused(400, `checkpoint rejected: ${c.message}`);
    // Others' uploads may have claimed space since the last byte arrived.
    const late = this.overQuota(room);
    if (late) throw new CheckpointRefused(507, late);
    const newest = this.rooms.get(room)?.[0];
    const written = Number(newest ? (FILE.exec(newest.name)![1] ?? 0) : 0) + 1;
    const name = `w${String(written).padStart(12, '0')}-step-${String(c.step).padStart(10, '0')}.rtck`;
    await mkdir(this.roomDir(room), { recursive: true });
    await rename(tmp, path.join(this.roomDir(room), name));
    // From here to the unlinks, synchronously: the count changes in one piece.
    const b = this.budgets(room);
    const files = this.rooms.get(room) ?? [];
    let kept = 0;
    let keptBytes = 0;
    while (kept < Math.min(files.length, this.keep - 1) && keptBytes + files[kept]!.bytes <= Math.min(b.room, b.server))
      keptBytes += files[kept++]!.bytes;
    const pruned = files.slice(kept);
    this.rooms.set(room, [{ name, bytes }, ...files.slice(0, kept)]);
    this.stored += bytes - total(pruned);
    this.hold(claim, -claim.bytes);
    for (const old of pruned) {
      await unlink(path.join(this.roomDir(room), old.name)).catch((e: Error) =>
        this.log(`checkpoint ${old.name} of ${room} not pruned (${e.message}); the quotas no longer count it`),
      );
    }
    return c.step;
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
    await this.ready;
    for (const f of [...(this.rooms.get(room) ?? [])]) {
      const p = path.join(this.roomDir(room), f.name);
      const bytes = new Uint8Array(await readFile(p).catch(() => Buffer.alloc(0)));
      const c = decodeCheckpoint(bytes);
      if (!(c instanceof Error)) return { path: p, bytes, step: c.step };
      this.log(`checkpoint ${p} rejected (${c.message}); using the one before it`);
      await rename(p, `${p}.corrupt`).catch(() => undefined);
      this.forget(room, f);
    }
    return null;
  }

  /** Drops a write set aside from the count (not pruned since: no longer its room's). */
  private forget(room: string, f: Stored): void {
    const files = this.rooms.get(room) ?? [];
    if (!files.includes(f)) return;
    this.stored -= f.bytes;
    if (files.length === 1) this.rooms.delete(room);
    else
      this.rooms.set(
        room,
        files.filter((g) => g !== f),
      );
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
export function registerCheckpoints(
  app: express.Express,
  store: CheckpointStore,
  auth: RoomAuth,
  isMember: MembershipCheck,
  log: (msg: string) => void = () => {},
): void {
  const refuse = (req: express.Request, res: express.Response, status: number, error: string): void => {
    // A body not read to its end is not read at all: the connection closes after the answer.
    if (!req.complete) res.set('Connection', 'close');
    res.status(status).json({ error });
  };
  /** The room of the request, once its name is valid. */
  const roomOf = (req: express.Request, res: express.Response): string | null => {
    const room = String(req.params.room);
    if (ROOM.test(room)) return room;
    refuse(req, res, 400, `bad room name "${room.slice(0, 80)}"; use 1-64 letters, digits, "-" or "_"`);
    return null;
  };
  app.put('/api/rooms/:room/checkpoint', (req, res) => {
    const room = roomOf(req, res);
    if (!room) return;
    const m = /^([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{22})$/.exec(req.get(MEMBER_HEADER) ?? '');
    if (!m || !isMember(room, m[1]!, m[2]!)) {
      refuse(req, res, 403, `only a member of room "${room}" while it is live may store its checkpoint`);
      return;
    }
    const length = Number(req.get('content-length') ?? 0);
    store.save(room, req, { length, authorize: (hash) => auth.checkHttp(room, 'PUT', req.get(AUTH_HEADER), hash) }).then(
      (saved) => res.json(saved),
      (e: Error) => {
        if (e instanceof CheckpointRefused) return refuse(req, res, e.status, e.message);
        // A client that broke off hears nothing; anything else is the server's trouble.
        if (req.readableAborted) return;
        log(`checkpoint for ${room} not stored: ${e.message}`);
        refuse(req, res, 500, 'the server could not store the checkpoint; try again later');
      },
    );
  });
  app.get('/api/rooms/:room/checkpoint', (req, res) => {
    const room = roomOf(req, res);
    if (!room) return;
    const refused = auth.checkHttp(room, req.method, req.get(AUTH_HEADER), EMPTY_BODY_HASH);
    if (refused) return refuse(req, res, 403, refused);
    void store.latest(room).then((bytes) => {
      if (!bytes) {
        res.status(404).json({ error: `no checkpoint for room "${room}"` });
        return;
      }
      res.set({ 'Content-Type': 'application/octet-stream', 'Cache-Control': 'no-store' });
      res.end(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    });
  });
}
