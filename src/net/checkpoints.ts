/**
 * Where a page keeps its room's checkpoints: uploaded to the server (which verifies and stores them
 * on disk) and mirrored in the tab's IndexedDB, so that a server that lost its disk, or cannot be
 * reached, still leaves the newest state in the browser. Loading takes the newer of the two.
 */
import { AUTH_HEADER, httpAuth, MEMBER_HEADER } from '../protocol/auth.ts';
import { decodeCheckpoint } from '../protocol/checkpoint.ts';

const DB = 'ringtrain';
const STORE = 'checkpoints';

const url = (origin: string, room: string): string => `${origin}/api/rooms/${encodeURIComponent(room)}/checkpoint`;

function openDb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB did not open'));
  });
}

async function idb<T>(mode: IDBTransactionMode, op: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await openDb();
  try {
    return await new Promise<T>((resolve, reject) => {
      const req = op(db.transaction(STORE, mode).objectStore(STORE));
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
    });
  } finally {
    db.close();
  }
}

/** The step of a checkpoint that verifies, else -1. */
function stepOf(bytes: Uint8Array | null): number {
  if (!bytes) return -1;
  const c = decodeCheckpoint(bytes);
  return c instanceof Error ? -1 : c.step;
}

export class CheckpointClient {
  constructor(
    private readonly room: string,
    /** A private room's key: requests carry its proof. */
    private readonly key: Uint8Array<ArrayBuffer> | null,
    /** This peer's membership (`<peerId>.<token>`, from the coordinator's welcome), which writes carry; null when not a member. */
    private readonly member: () => string | null,
    private readonly origin = location.origin,
  ) {}

  private async headers(method: string, body: Uint8Array<ArrayBuffer>): Promise<Record<string, string>> {
    return this.key ? { [AUTH_HEADER]: await httpAuth(this.key, method, this.room, body) } : {};
  }

  /** Mirrors `bytes` in IndexedDB and uploads it; rejects with the server's reason when it refuses. */
  async save(bytes: Uint8Array<ArrayBuffer>): Promise<void> {
    await idb('readwrite', (s) => s.put(bytes, this.room)).catch(() => undefined);
    const member = this.member();
    if (!member) throw new Error('not a member of the room now: the checkpoint stays in this browser only');
    const headers = { 'Content-Type': 'application/octet-stream', [MEMBER_HEADER]: member, ...(await this.headers('PUT', bytes)) };
    const res = await fetch(url(this.origin, this.room), { method: 'PUT', body: bytes, headers });
    if (!res.ok)
      throw new Error(
        `the server refused the checkpoint (${res.status}): ${((await res.json().catch(() => ({}))) as { error?: string }).error ?? ''}`,
      );
  }

  /** The newer valid checkpoint of the server's and this browser's, or null. */
  async load(): Promise<Uint8Array | null> {
    const [remote, local] = await Promise.all([
      fetch(url(this.origin, this.room), { cache: 'no-store', headers: await this.headers('GET', new Uint8Array(0)) })
        .then(async (r) => (r.ok ? new Uint8Array(await r.arrayBuffer()) : null))
        .catch(() => null),
      idb<unknown>('readonly', (s) => s.get(this.room))
        .then((v) => (v instanceof Uint8Array ? v : null))
        .catch(() => null),
    ]);
    return stepOf(local) > stepOf(remote) ? local : remote;
  }
}
