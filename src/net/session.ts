import { Peer } from './peerjs.ts';
import { Communicator, type CommunicatorOptions } from '../core/collectives/communicator.ts';
import type { TrafficStats } from '../core/collectives/context.ts';
import { Mailbox } from '../core/collectives/mailbox.ts';
import { abortReason, RingError } from '../core/errors.ts';
import { ringPosition, type View } from '../core/membership/view.ts';
import { Listeners } from '../core/transport.ts';
import { MEMBER_HEADER, roomKey } from '../protocol/auth.ts';
import { memberIceSchema, type MemberIce } from '../protocol/ice.ts';
import { clientConfigSchema, type ClientConfig, type Job, type MemberKeys, type PeerStats } from '../protocol/index.ts';
import { CoordinatorClient, type RoomStats, type RunMessage } from './coordinator-client.ts';
import { PeerJsTransport } from './peerjs-transport.ts';

export type SessionStatus = 'connecting' | 'forming-ring' | 'ready' | 'evicted' | 'reconnecting' | 'disconnected' | 'left';

/** Attempts to get back into the room after an eviction or a lost server, with exponential backoff. */
export const MAX_REJOIN_ATTEMPTS = 12;
/** Backoff before rejoin attempt `n` (1-based), ms: 250, 500, 1000, ... capped at 8 s, with jitter. */
const rejoinDelay = (n: number): number => Math.min(8000, 125 * 2 ** n) * (0.75 + Math.random() / 4);

export type SessionEvent =
  | { type: 'status'; status: SessionStatus; detail?: string }
  | { type: 'view'; view: View }
  | { type: 'link-down'; peer: string; reason: string }
  /** The room started a run (this peer is to train it). */
  | { type: 'run'; run: RunMessage }
  | { type: 'room-stats'; peers: RoomStats }
  /** The coordinator refused a request (e.g. a start while a run lasts). */
  | { type: 'refused'; message: string };

export interface SessionOptions {
  room: string;
  /** A private room's secret (the link's `#k=`); none joins or creates an open room. */
  secret?: string;
  /** This tab made the room (and its secret): the first hello registers the room key. */
  createRoom?: boolean;
  /** This peer's public keys, handed to the other members with each view. */
  keys?: MemberKeys;
  /** Server origin, e.g. "http://127.0.0.1:8080" (default: the page's origin). */
  origin?: string;
  /** Time allowed to open data channels to ring neighbours after a view change, ms (default 15000). */
  linkTimeoutMs?: number;
  /** Default timeout of one collective, ms. */
  collectiveTimeoutMs?: number;
  /** Frame payload size, bytes. */
  chunkBytes?: number;
  /** Backpressure high-water mark per channel, bytes. */
  highWaterBytes?: number;
  /** Emulated one-way latency of every data channel, ms (WAN benchmarks; default 0). */
  linkDelayMs?: number;
  /** Time allowed to reach the server, ms (default 10000). */
  connectTimeoutMs?: number;
  /** Get back into the room by itself after an eviction or a lost server (default true). */
  rejoin?: boolean;
  /** Fault drill: peers this one can form no data channel with (as between two networks no packet crosses). */
  unreachable?: string[];
}

function randomId(): string {
  const b = crypto.getRandomValues(new Uint8Array(8));
  return `p${Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * A GET, made once more when the first fails on the network: a kept-alive connection the server
 * closed just as it was reused (Node's fetch, whose timers a long compute step delays, meets this).
 */
async function get(url: string, init: RequestInit = {}): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch {
    return fetch(url, init);
  }
}

async function fetchConfig(origin: string): Promise<ClientConfig> {
  const res = await get(`${origin}/api/config`);
  if (!res.ok) throw new RingError('closed', `GET ${origin}/api/config answered ${res.status}; is this a RingTrain server?`);
  const cfg = clientConfigSchema.safeParse(await res.json());
  if (!cfg.success) throw new RingError('protocol', `the server's /api/config is not understood; reload the page`);
  return cfg.data;
}

/**
 * The ICE servers of a member of `room` (`membership`: `<peerId>.<token>` of its welcome): with
 * credentials, which `/api/config` does not hand to strangers (a TURN credential minted for this peer).
 */
async function fetchMemberIce(origin: string, room: string, membership: string): Promise<MemberIce> {
  const url = `${origin}/api/rooms/${encodeURIComponent(room)}/ice`;
  const res = await get(url, { cache: 'no-store', headers: { [MEMBER_HEADER]: membership } });
  const body: unknown = await res.json().catch(() => null);
  if (!res.ok)
    throw new RingError('closed', `GET ${url} answered ${res.status}: ${(body as { error?: string } | null)?.error ?? 'no reason given'}`);
  const r = memberIceSchema.safeParse(body);
  if (!r.success) throw new RingError('protocol', `the server's ICE servers are not understood; reload the page`);
  return r.data;
}

/** Peer connections made from now on use `ice` (PeerJS reads its options at each new connection). */
function useIce(peer: Peer, ice: RTCIceServer[]): void {
  peer.options.config = { ...peer.options.config, iceServers: ice };
}

function openPeer(id: string, origin: URL, cfg: ClientConfig, timeoutMs: number): Promise<Peer> {
  const secure = origin.protocol === 'https:';
  const peer = new Peer(id, {
    host: origin.hostname,
    port: Number(origin.port) || (secure ? 443 : 80),
    path: cfg.peerPath,
    key: cfg.peerKey,
    secure,
    config: { iceServers: cfg.iceServers },
    debug: 0,
  });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      peer.destroy();
      reject(new RingError('timeout', `signaling at ${origin.origin}${cfg.peerPath} did not open within ${timeoutMs} ms`));
    }, timeoutMs);
    peer.once('open', () => {
      clearTimeout(t);
      resolve(peer);
    });
    peer.once('error', (e) => {
      clearTimeout(t);
      peer.destroy();
      reject(new RingError('closed', `signaling failed: ${e.message}`));
    });
  });
}

/** Re-registers a PeerJS peer whose signaling socket dropped (e.g. the server restarted). */
function reconnectPeer(peer: Peer, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      peer.off('open', onOpen);
      reject(new RingError('timeout', `signaling did not reopen within ${timeoutMs} ms`));
    }, timeoutMs);
    const onOpen = (): void => {
      clearTimeout(t);
      resolve();
    };
    peer.once('open', onOpen);
    peer.reconnect();
  });
}

/**
 * One peer's membership in a room: signaling (PeerJS), the coordinator link, the data-channel
 * transport and a communicator for the current view. A new view closes the old communicator (its
 * collectives reject with 'view-changed'), re-forms links to the new ring neighbours, and makes a
 * fresh communicator. Dead links are reported to the coordinator, which answers with a new view.
 */
export class RingSession {
  readonly events = new Listeners<[SessionEvent]>();
  readonly stats: TrafficStats = { framesSent: 0, frameBytesSent: 0, payloadBytesSent: 0, framesReceived: 0 };
  status: SessionStatus = 'connecting';
  view: View | null = null;
  private comm: Communicator | null = null;
  private ready: Promise<Communicator> | null = null;
  private readonly viewChanged = new Listeners<[]>();
  private readonly keysByEpoch = new Map<number, Map<string, MemberKeys>>();
  private readonly keysArrived = new Listeners<[]>();
  private rejoining = false;
  private left = false;
  /** The membership token of the current welcome (null while not joined). */
  private token: string | null = null;
  /** The member's ICE servers (TURN credentials included), and when to ask for fresh credentials. */
  private ice: RTCIceServer[] = [];
  private iceRefreshAt = Infinity;
  private iceRefreshing = false;

  private constructor(
    readonly peerId: string,
    private peer: Peer,
    readonly transport: PeerJsTransport,
    private readonly mailbox: Mailbox,
    private coordinator: CoordinatorClient,
    private readonly coordinatorUrl: string,
    private readonly opts: SessionOptions,
    /** A private room's key (for the coordinator and the checkpoint endpoints), or null. */
    readonly roomKey: Uint8Array<ArrayBuffer> | null,
  ) {}

  /** Reaches the server, opens signaling and joins `opts.room`. */
  static async join(opts: SessionOptions): Promise<RingSession> {
    const origin = new URL(opts.origin ?? location.origin);
    const timeout = opts.connectTimeoutMs ?? 10_000;
    const cfg = await fetchConfig(origin.origin);
    const id = randomId();
    const peer = await openPeer(id, origin, cfg, timeout);
    const wsUrl = `${origin.protocol === 'https:' ? 'wss' : 'ws'}://${origin.host}${cfg.coordinatorPath}`;
    const key = opts.secret ? await roomKey(opts.room, opts.secret) : undefined;
    const coordinator = new CoordinatorClient(
      wsUrl,
      opts.room,
      id,
      undefined,
      key ? { key, create: opts.createRoom ?? false } : undefined,
      opts.keys,
    );
    // Views, their keys and a run in progress can arrive right after the welcome; queue them until the session exists.
    const early: View[] = [];
    const earlyRuns: RunMessage[] = [];
    const earlyKeys: [number, Map<string, MemberKeys>][] = [];
    const offEarly = coordinator.views.on((v) => early.push(v));
    const offRuns = coordinator.runs.on((r) => earlyRuns.push(r));
    const offKeys = coordinator.keys.on((e, k) => earlyKeys.push([e, k]));
    let welcome;
    try {
      welcome = await coordinator.open(timeout);
    } catch (e) {
      coordinator.close();
      peer.destroy();
      throw e;
    }
    // Made before the ICE fetch below: the others dial this peer as soon as the view that holds it
    // is out, and a connection PeerJS announces before the transport listens is lost.
    const transport = new PeerJsTransport(peer, {
      heartbeatMs: welcome.heartbeatMs,
      // Twice the coordinator's deadline: crashes and closed tabs reach the coordinator first
      // (socket loss, ~0.2 s); this catches frozen or cut-off neighbours without mistaking a link
      // stalled by an overloaded machine for a dead one.
      deadAfterMs: 2 * welcome.deadAfterMs,
      ...(opts.highWaterBytes ? { highWaterBytes: opts.highWaterBytes } : {}),
      ...(opts.linkDelayMs ? { linkDelayMs: opts.linkDelayMs } : {}),
      ...(opts.unreachable ? { unreachable: opts.unreachable } : {}),
    });
    let ice: MemberIce;
    try {
      // Servers with credentials (TURN) are handed to admitted peers only.
      ice = await fetchMemberIce(origin.origin, opts.room, `${id}.${welcome.token}`);
    } catch (e) {
      transport.close();
      coordinator.close();
      peer.destroy();
      throw e;
    }
    const s = new RingSession(id, peer, transport, new Mailbox(transport), coordinator, wsUrl, opts, key ?? null);
    s.token = welcome.token;
    s.setIce(ice);
    offEarly();
    offRuns();
    offKeys();
    for (const [e, k] of earlyKeys) s.onKeys(e, k);
    s.listen(coordinator);
    transport.onPeerDown((p, reason) => s.onPeerDown(p, reason));
    for (const v of early) s.onView(v);
    // Delivered once the caller could subscribe: a macrotask, since a microtask queued here runs
    // before the caller's `await join()` resumes (a run in progress reached a joiner during the
    // join's ICE fetch and was lost: the volunteer sat 'ready' while the room waited on it).
    setTimeout(() => earlyRuns.forEach((run) => s.events.emit({ type: 'run', run })), 0);
    return s;
  }

  private listen(c: CoordinatorClient): void {
    c.views.on((v) => {
      if (this.coordinator === c) this.onView(v);
    });
    c.errors.on((code, msg) => {
      if (this.coordinator === c) this.onCoordinatorError(code, msg);
    });
    c.runs.on((run) => {
      if (this.coordinator === c) this.events.emit({ type: 'run', run });
    });
    c.keys.on((epoch, keys) => {
      if (this.coordinator === c) this.onKeys(epoch, keys);
    });
    c.roomStats.on((peers) => {
      if (this.coordinator === c) this.events.emit({ type: 'room-stats', peers });
    });
  }

  private setIce(ice: MemberIce): void {
    this.ice = ice.iceServers;
    // Fresh credentials at half their lifetime: links dialled meanwhile get ones with time to spare.
    this.iceRefreshAt = ice.ttlMs ? Date.now() + ice.ttlMs / 2 : Infinity;
    useIce(this.peer, this.ice);
  }

  /** Asks for fresh TURN credentials; on failure keeps the ones held (still valid) and asks again at the next view. */
  private async refreshIce(): Promise<void> {
    const membership = this.membership();
    if (this.iceRefreshing || !membership) return;
    this.iceRefreshing = true;
    try {
      this.setIce(await fetchMemberIce(new URL(this.opts.origin ?? location.origin).origin, this.opts.room, membership));
    } catch {
      // Kept: the credentials held were minted for twice as long as they have been held.
    } finally {
      this.iceRefreshing = false;
    }
  }

  private onKeys(epoch: number, keys: Map<string, MemberKeys>): void {
    this.keysByEpoch.set(epoch, keys);
    for (const e of [...this.keysByEpoch.keys()]) if (e < epoch - 4) this.keysByEpoch.delete(e);
    this.keysArrived.emit();
  }

  /** The members' public keys of view `epoch` (waiting up to `timeoutMs` for them to arrive). */
  async keysOf(epoch: number, timeoutMs = 10_000): Promise<Map<string, MemberKeys>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const k = this.keysByEpoch.get(epoch);
      if (k) return k;
      const left = deadline - Date.now();
      if (left <= 0) throw new RingError('timeout', `no public keys arrived for view ${epoch}; does the server support them?`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        const off = this.keysArrived.on(() => {
          clearTimeout(t);
          off();
          resolve();
        });
      });
    }
  }

  /** What this session holds that could grow over a long run (for memory probes). */
  holdings(): {
    mailbox: { slots: number; bytes: number };
    connections: ReturnType<PeerJsTransport['connectionCounts']>;
    listeners: number;
  } {
    return {
      mailbox: this.mailbox.totals(),
      connections: this.transport.connectionCounts(),
      listeners: this.events.size + this.viewChanged.size + this.keysArrived.size,
    };
  }

  /** `<peerId>.<token>`: proves to the server that this peer is a member now (for room writes); null when evicted or gone. */
  membership(): string | null {
    return this.token && this.status !== 'evicted' && this.status !== 'left' ? `${this.peerId}.${this.token}` : null;
  }

  /** Starts `job` on every peer of the room; a refusal arrives as a 'refused' event. */
  startRun(job: Job): void {
    this.coordinator.startRun(job);
  }

  finishRun(run: number): void {
    this.coordinator.finishRun(run);
  }

  /** Tells the coordinator that `peer` sent an invalid contribution to step `step` of view `epoch`. */
  reportInvalid(epoch: number, step: number, peer: string): void {
    this.coordinator.reportInvalid(epoch, step, peer);
  }

  reportStats(stats: PeerStats): void {
    this.coordinator.sendStats(stats);
  }

  /**
   * Gets back into the room under the same peer id (reconnecting signaling first if it dropped),
   * retrying with exponential backoff. The hello names the last epoch seen, so a restarted server
   * continues the epochs instead of starting over.
   */
  private async rejoin(): Promise<void> {
    if (this.rejoining || this.left || this.opts.rejoin === false) return;
    this.rejoining = true;
    const timeout = this.opts.connectTimeoutMs ?? 10_000;
    let last = '';
    try {
      for (let attempt = 1; attempt <= MAX_REJOIN_ATTEMPTS; attempt++) {
        await new Promise((r) => setTimeout(r, rejoinDelay(attempt)));
        if (this.left) return;
        try {
          if (this.peer.destroyed) {
            // PeerJS destroys the peer (and its channels) when it loses the server for good:
            // register the same id afresh; the ring is dialled again on the next view.
            const origin = new URL(this.opts.origin ?? location.origin);
            this.peer = await openPeer(this.peerId, origin, await fetchConfig(origin.origin), timeout);
            useIce(this.peer, this.ice);
            this.transport.rebind(this.peer);
          } else if (this.peer.disconnected) {
            await reconnectPeer(this.peer, timeout);
          }
          const c = new CoordinatorClient(
            this.coordinatorUrl,
            this.opts.room,
            this.peerId,
            this.view?.epoch ?? 0,
            this.roomKey ? { key: this.roomKey, create: this.opts.createRoom ?? false } : undefined,
            this.opts.keys,
          );
          this.listen(c);
          this.coordinator = c;
          this.token = (await c.open(timeout)).token;
          this.setStatus('connecting', `back in the room after ${attempt} attempt(s)`);
          return;
        } catch (e) {
          last = (e as Error).message;
          this.setStatus('reconnecting', `attempt ${attempt} of ${MAX_REJOIN_ATTEMPTS} failed: ${last}`);
        }
      }
      this.setStatus(
        'disconnected',
        `could not get back into the room after ${MAX_REJOIN_ATTEMPTS} attempts (${last}); check that the server runs, then reload the page`,
      );
    } finally {
      this.rejoining = false;
    }
  }

  private setStatus(status: SessionStatus, detail?: string): void {
    this.status = status;
    this.events.emit({ type: 'status', status, ...(detail ? { detail } : {}) });
  }

  private onView(view: View): void {
    if (this.view && view.epoch <= this.view.epoch) return;
    this.comm?.close();
    this.view = view;
    if (Date.now() >= this.iceRefreshAt) void this.refreshIce();
    const pos = ringPosition(view, this.peerId);
    if (!pos) {
      this.comm = null;
      this.ready = null;
      this.setStatus('evicted', `not a member of view ${view.epoch}`);
      return;
    }
    const members = view.members.map((m) => m.peerId);
    this.transport.setAllowed(members);
    this.mailbox.retain(new Set(members));
    const copts: CommunicatorOptions = {
      transport: this.transport,
      mailbox: this.mailbox,
      view,
      stats: this.stats,
      ...(this.opts.chunkBytes ? { chunkBytes: this.opts.chunkBytes } : {}),
      ...(this.opts.collectiveTimeoutMs ? { timeoutMs: this.opts.collectiveTimeoutMs } : {}),
      // The ring below AUTO_TWO_LEVEL_MIN_PEERS, the two-level allreduce from there (measured: bench allreduce).
      topology: { kind: 'auto' },
    };
    const comm = new Communicator(copts);
    this.comm = comm;
    this.setStatus('forming-ring', `epoch ${view.epoch}`);
    this.events.emit({ type: 'view', view });
    this.viewChanged.emit();
    // The ring's neighbours, and the two-level allreduce's group and shard-ring neighbours.
    const neighbours = pos.size > 1 ? [...new Set([pos.prev, pos.next, ...comm.allreducePeers()])] : [];
    this.ready = this.transport.connect(neighbours, this.opts.linkTimeoutMs ?? 15_000).then(
      () => {
        if (this.comm === comm) this.setStatus('ready', `epoch ${view.epoch}, rank ${pos.rank} of ${pos.size}`);
        return comm;
      },
      (e: unknown) => {
        if (e instanceof RingError && e.peer && this.comm === comm) {
          this.events.emit({ type: 'link-down', peer: e.peer, reason: e.message });
          this.coordinator.reportLinkDown(view.epoch, e.peer);
        }
        throw e;
      },
    );
    this.ready.catch(() => undefined);
  }

  private onPeerDown(peer: string, reason: string): void {
    this.events.emit({ type: 'link-down', peer, reason });
    if (this.view?.members.some((m) => m.peerId === peer)) this.coordinator.reportLinkDown(this.view.epoch, peer);
  }

  private onCoordinatorError(code: string, msg: string): void {
    if (code === 'evicted') {
      // No longer a member: the ring goes on without this peer until it is back in a view.
      this.comm?.close(new RingError('closed', msg));
      this.comm = null;
      this.ready = null;
      this.setStatus('evicted', msg);
      void this.rejoin();
    } else if (code === 'busy') {
      this.events.emit({ type: 'refused', message: msg });
    } else if (code === 'disconnected') {
      // The server is gone, but the ring's data channels are not: collectives go on while the
      // peer gets back in (a restarted server issues the next view).
      this.setStatus('reconnecting', msg);
      void this.rejoin();
    }
  }

  /**
   * The communicator of the current view once its ring links are open. Rejects with a RingError
   * when not a member, or when links cannot be formed within `timeoutMs`.
   */
  async communicator(timeoutMs = 30_000, signal?: AbortSignal): Promise<Communicator> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (signal?.aborted) throw abortReason(signal);
      const ready = this.ready;
      if (!ready) throw new RingError('closed', `this peer is ${this.status}, not in a ring`);
      const comm = await ready;
      if (this.comm === comm) return comm;
      if (Date.now() > deadline) throw new RingError('timeout', `no stable view within ${timeoutMs} ms`);
    }
  }

  /**
   * The communicator of a view newer than `failedEpoch` (whose collective failed) with at least
   * `minPeers` members, once its ring is up. When the failed view is still current, asks the
   * coordinator to re-issue it (a timeout can leave the peers' sequence numbers apart). A view
   * whose ring does not form (a data channel that will not open) is one more failed view: the
   * session has reported the link, the coordinator issues a view without it, and this waits for
   * that one, until `timeoutMs` is spent.
   */
  async nextCommunicator(
    failedEpoch: number | undefined,
    o: { minPeers?: number; timeoutMs: number; signal?: AbortSignal },
  ): Promise<Communicator> {
    const deadline = Date.now() + o.timeoutMs;
    const min = o.minPeers ?? 1;
    let failed = failedEpoch;
    for (;;) {
      if (failed !== undefined && this.view && this.view.epoch <= failed && ringPosition(this.view, this.peerId)) {
        this.coordinator.requestResync(this.view.epoch);
      }
      const after = failed;
      const view = await this.waitForView(
        (v) => (after === undefined || v.epoch > after) && v.members.length >= min && !!ringPosition(v, this.peerId),
        Math.max(0, deadline - Date.now()),
      );
      try {
        return await this.communicator(Math.max(0, deadline - Date.now()), o.signal);
      } catch (e) {
        if (!(e instanceof RingError) || e.code === 'aborted' || this.status === 'left' || Date.now() >= deadline) throw e;
        // The ring that failed is this view's, unless a newer view came meanwhile: then try that one.
        const now = this.view?.epoch ?? view.epoch;
        failed = now > view.epoch ? now - 1 : view.epoch;
      }
    }
  }

  /** Resolves with the first view (current or future) satisfying `pred`. */
  waitForView(pred: (v: View) => boolean, timeoutMs: number): Promise<View> {
    if (this.view && pred(this.view)) return Promise.resolve(this.view);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        off();
        reject(new RingError('timeout', `no matching view within ${timeoutMs} ms (now at epoch ${this.view?.epoch ?? '-'})`));
      }, timeoutMs);
      const off = this.viewChanged.on(() => {
        if (this.view && pred(this.view)) {
          clearTimeout(t);
          off();
          resolve(this.view);
        }
      });
    });
  }

  /** Leaves the room, closes every link and the signaling socket. */
  leave(): void {
    this.left = true;
    this.comm?.close(new RingError('closed', 'left the room'));
    this.comm = null;
    this.ready = null;
    this.coordinator.close();
    this.transport.close();
    this.mailbox.dispose();
    this.peer.destroy();
    this.setStatus('left');
  }
}
