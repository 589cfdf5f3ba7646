import { randomBytes, timingSafeEqual } from 'node:crypto';
import { makeView, ringAvoiding } from '../core/membership/view.ts';
import { RoomAuth } from './room-auth.ts';
import {
  parseClientMessage,
  PROTOCOL_VERSION,
  ProtocolError,
  type ClientMessage,
  type Job,
  type MemberKeys,
  type PeerStats,
  type ServerErrorCode,
  type ServerMessage,
  type View,
} from '../protocol/index.ts';

export interface CoordinatorOptions {
  /** How often peers send heartbeats, ms (default 500). */
  heartbeatMs?: number;
  /** Silence after which a member is removed, ms (default 2500; must exceed 2 heartbeats). */
  deadAfterMs?: number;
  /** Namespaced logger (default: none). */
  log?: (msg: string) => void;
  /**
   * A room created by a rejoining peer (one that names the epoch it last saw, as after a server
   * restart) waits this long before its first view, so that the peers coming back together land in
   * one view rather than one each (default 1000 ms).
   */
  rejoinGraceMs?: number;
  /** Most members a room admits (default 64). */
  maxPeersPerRoom?: number;
  /** Most rooms at once (default 1000). */
  maxRooms?: number;
  /**
   * Control messages a connection may send per second (default 40; a peer sends about 3). Beyond
   * it messages are dropped with a 'rate-limited' error; at 5 times the rate the connection is closed.
   */
  maxMessagesPerSec?: number;
  /**
   * Control connections one network address may hold at once (default 256), and messages all of
   * them together may send per second (default 1000: a classroom behind one NAT sends about 3 per
   * tab). A flooder that reconnects for a fresh per-connection budget still shares these.
   */
  maxConnectionsPerAddress?: number;
  maxMessagesPerSecPerAddress?: number;
  /**
   * A peer reported for an invalid contribution by a majority of the other members counts a
   * strike; at this many it is removed and may not come back under its id (default 3).
   */
  maxStrikes?: number;
  /** Private rooms' keys (default: in memory only). */
  auth?: RoomAuth;
}

export const LIMIT_DEFAULTS = {
  maxPeersPerRoom: 64,
  maxRooms: 1000,
  maxMessagesPerSec: 40,
  maxConnectionsPerAddress: 256,
  maxMessagesPerSecPerAddress: 1000,
} as const;

/** What one network address uses now: open connections, and this second's message count. */
interface AddressUse {
  conns: number;
  start: number;
  count: number;
}

/** One peer's control connection, as the coordinator sees it. */
export interface Connection {
  send(msg: ServerMessage): void;
  close(reason: string): void;
}

interface Member {
  peerId: string;
  conn: Connection;
  lastSeen: number;
  /** Public keys (secure aggregation, signed all-gathers), if the peer sent them. */
  keys?: MemberKeys;
  /** The membership's secret, handed over in the welcome (see {@link Coordinator.isMember}). */
  token: string;
}

interface Room {
  id: string;
  epoch: number;
  /** In join order; the ring follows it, except around links reported down ({@link ringAvoiding}). */
  members: Member[];
  /** Pairs of peers whose link was reported down ("a b", ids sorted), and until when to keep them apart. */
  badLinks: Map<string, number>;
  /** The ring order of the view last published. */
  ring: string[];
  /** When the last view re-issued on a resync request went out, and a deferred one (see 'resync'). */
  resyncAt: number;
  resyncTimer?: ReturnType<typeof setTimeout>;
  /** Set while a room recreated by rejoining peers gathers them before its first view. */
  gathering?: ReturnType<typeof setTimeout>;
  /** The run in progress, if any; `runs` numbers them. */
  run?: { run: number; by: string; job: Job };
  /** Set while a room with a run has no member: kept for {@link EMPTY_RUN_KEEP_MS}, so that its members find it when they rejoin. */
  emptied?: ReturnType<typeof setTimeout>;
  runs: number;
  /** Latest stats per member, sent out together at most once per {@link STATS_EVERY_MS}. */
  stats: Map<string, PeerStats>;
  statsTimer?: ReturnType<typeof setTimeout>;
  /** Who reported `peer@step` invalid (this epoch); strikes per peer; peers removed for them. */
  reports: Map<string, Set<string>>;
  strikes: Map<string, number>;
  banned: Set<string>;
}

/**
 * How long a pair whose data channel was reported down is kept from being ring neighbours, ms. A
 * link that will not open (two NATs without a relay, a blocked port) would fail again, and every
 * failure costs the whole ring the link deadline.
 */
export const BAD_LINK_MS = 10 * 60_000;
const MAX_BAD_LINKS = 1024;
const linkKey = (a: string, b: string): string => (a < b ? `${a} ${b}` : `${b} ${a}`);

/**
 * How long a room whose run is in progress outlives its last member, ms. When every member drops
 * at once (the server, or the machine it shares with its peers, stalled past the heartbeat
 * deadline: all were removed together), they rejoin within seconds and go on with the run; with
 * the room gone, the run was lost, and a volunteer joining then was never told of it while the
 * others waited on it.
 */
export const EMPTY_RUN_KEEP_MS = 30_000;

/** Shortest interval between two views a room re-issues on resync requests, ms. */
export const RESYNC_EVERY_MS = 2000;

/** Whether `a` and `b` sit next to each other in `ring`. */
function neighbours(ring: readonly string[], a: string, b: string): boolean {
  const i = ring.indexOf(a);
  const n = ring.length;
  return i >= 0 && (ring[(i + 1) % n] === b || ring[(i - 1 + n) % n] === b);
}

/** Shortest interval between two room-stats messages of a room, ms. */
export const STATS_EVERY_MS = 1000;

/** The coordinator's handle on one connection: feed it messages and tell it when it closes. */
export interface Session {
  message(raw: unknown): void;
  /** The transport proved the peer reachable (a WebSocket pong): counts as a heartbeat. */
  alive(): void;
  closed(): void;
}

/**
 * Room coordinator: membership, ranks, ring order and views. Every membership change bumps the
 * room's epoch and pushes the new view to all members. Members are removed when their socket
 * closes, their heartbeats stop for `deadAfterMs`, their PeerServer socket drops, or a ring
 * neighbour reports the link to them dead. Gradients never pass through here.
 */
export class Coordinator {
  readonly heartbeatMs: number;
  readonly deadAfterMs: number;
  private readonly rejoinGraceMs: number;
  private readonly rooms = new Map<string, Room>();
  private readonly byPeer = new Map<string, Room>();
  /** Connections the coordinator closed (eviction, wrong version): whatever they still send is ignored. */
  private readonly ended = new WeakSet<Connection>();
  private readonly sweeper: ReturnType<typeof setInterval>;
  private readonly sweepEveryMs: number;
  /** When the last sweep ran (see {@link sweep}). */
  private sweptAt = Date.now();
  private readonly log: (msg: string) => void;
  /** Control messages rejected by validation since start. */
  rejected = 0;
  /** Control messages dropped by the rate limit since start. */
  throttled = 0;
  private readonly auth: RoomAuth;
  private readonly maxStrikes: number;
  private readonly limits: { -readonly [K in keyof typeof LIMIT_DEFAULTS]: number };
  private readonly addresses = new Map<string, AddressUse>();

  constructor(opts: CoordinatorOptions = {}) {
    this.heartbeatMs = opts.heartbeatMs ?? 500;
    this.deadAfterMs = opts.deadAfterMs ?? 2500;
    if (this.deadAfterMs < 2 * this.heartbeatMs) {
      throw new RangeError(`Coordinator: deadAfterMs (${this.deadAfterMs}) must be at least twice heartbeatMs (${this.heartbeatMs})`);
    }
    this.rejoinGraceMs = opts.rejoinGraceMs ?? 1000;
    this.auth = opts.auth ?? new RoomAuth();
    this.maxStrikes = opts.maxStrikes ?? 3;
    this.limits = {
      maxPeersPerRoom: opts.maxPeersPerRoom ?? LIMIT_DEFAULTS.maxPeersPerRoom,
      maxRooms: opts.maxRooms ?? LIMIT_DEFAULTS.maxRooms,
      maxMessagesPerSec: opts.maxMessagesPerSec ?? LIMIT_DEFAULTS.maxMessagesPerSec,
      maxConnectionsPerAddress: opts.maxConnectionsPerAddress ?? LIMIT_DEFAULTS.maxConnectionsPerAddress,
      maxMessagesPerSecPerAddress: opts.maxMessagesPerSecPerAddress ?? LIMIT_DEFAULTS.maxMessagesPerSecPerAddress,
    };
    this.log = opts.log ?? (() => {});
    this.sweepEveryMs = Math.max(50, this.heartbeatMs / 2);
    this.sweeper = setInterval(() => this.sweep(), this.sweepEveryMs);
    this.sweeper.unref?.();
  }

  /** True while `peerId` is a member of some room. */
  isMember(peerId: string): boolean {
    return this.byPeer.has(peerId);
  }

  /** Whether `peerId` is a member of `room` now, proven by the token its welcome carried. */
  holdsMembership(room: string, peerId: string, token: string): boolean {
    const r = this.byPeer.get(peerId);
    const m = r?.id === room ? r.members.find((x) => x.peerId === peerId) : undefined;
    return !!m && m.token.length === token.length && timingSafeEqual(Buffer.from(m.token), Buffer.from(token));
  }

  /** The current view of `room`, if it has members. */
  view(room: string): View | undefined {
    const r = this.rooms.get(room);
    return r && this.viewOf(r);
  }

  /**
   * Starts tracking a new control connection. A member is the pair (peer id, connection): a
   * connection that was evicted, or replaced by a rejoin under the same id, can no longer act for
   * that id, and its late `closed()` does not remove the new member.
   */
  connect(conn: Connection, address = ''): Session {
    let joined: string | null = null;
    const use = this.addresses.get(address) ?? { conns: 0, start: Date.now(), count: 0 };
    this.addresses.set(address, use);
    let counted = true;
    use.conns++;
    const release = (): void => {
      if (!counted) return;
      counted = false;
      if (--use.conns === 0) this.addresses.delete(address);
    };
    if (use.conns > this.limits.maxConnectionsPerAddress) {
      release();
      this.throttled++;
      this.ended.add(conn);
      conn.send({
        type: 'error',
        code: 'rate-limited',
        message: `more than ${this.limits.maxConnectionsPerAddress} connections from one address; close some tabs`,
      });
      conn.close('too many connections from one address');
      return { message: () => undefined, alive: () => undefined, closed: () => undefined };
    }
    const nonce = RoomAuth.nonce();
    conn.send({ type: 'challenge', nonce });
    // One-second windows of message counts, per connection and per address: over either limit is
    // dropped, far over the connection's closes it.
    let burst = { start: Date.now(), count: 0 };
    return {
      message: (raw) => {
        if (this.ended.has(conn)) return;
        const now = Date.now();
        // The connection's count first: were the address's budget checked first, a flooder's
        // connections would never reach the count that closes them once the address is over.
        if (now - burst.start >= 1000) burst = { start: now, count: 0 };
        if (now - use.start >= 1000) Object.assign(use, { start: now, count: 0 });
        const overAddress = ++use.count > this.limits.maxMessagesPerSecPerAddress;
        if (++burst.count > this.limits.maxMessagesPerSec) {
          this.throttled++;
          if (burst.count > 5 * this.limits.maxMessagesPerSec) {
            this.ended.add(conn);
            if (joined) this.remove(joined, 'flooding the coordinator', false, conn);
            conn.close('too many messages');
          } else if (burst.count === this.limits.maxMessagesPerSec + 1) {
            conn.send({
              type: 'error',
              code: 'rate-limited',
              message: `more than ${this.limits.maxMessagesPerSec} messages in a second; the rest of this second is dropped`,
            });
          }
          return;
        }
        if (overAddress) {
          this.throttled++;
          return;
        }
        const m = parseClientMessage(raw);
        if (m instanceof ProtocolError) {
          this.rejected++;
          const code: ServerErrorCode = m.code === 'bad-version' ? 'bad-version' : 'bad-message';
          conn.send({ type: 'error', code, message: m.message });
          // A wrong version cannot talk to us; an oversized message is not an honest client's.
          if (code === 'bad-version' || m.code === 'oversized') {
            this.ended.add(conn);
            conn.close(m.message);
          }
          return;
        }
        joined = this.handle(conn, joined, m, nonce);
      },
      alive: () => {
        const self = joined ? this.byPeer.get(joined)?.members.find((x) => x.peerId === joined && x.conn === conn) : undefined;
        if (self) self.lastSeen = Date.now();
      },
      closed: () => {
        release();
        if (joined) this.remove(joined, 'socket closed', false, conn);
        joined = null;
      },
    };
  }

  /**
   * The PeerServer dropped this peer's signaling socket: the fastest sign that a tab is gone.
   * Without signaling the peer cannot form ring links, so it is evicted (told, and its control
   * connection closed) rather than dropped silently.
   */
  peerGone(peerId: string): void {
    this.remove(peerId, 'signaling socket closed', true);
  }

  private handle(conn: Connection, joined: string | null, m: ClientMessage, nonce: string): string | null {
    if (m.type === 'hello') {
      if (joined) {
        conn.send({ type: 'error', code: 'already-joined', message: `this connection already joined as ${joined}` });
        return joined;
      }
      if (this.byPeer.has(m.peerId)) {
        conn.send({ type: 'error', code: 'id-taken', message: `peer id ${m.peerId} is in use; reload to get a new one` });
        return null;
      }
      let room = this.rooms.get(m.room);
      if (!room && this.rooms.size >= this.limits.maxRooms) {
        conn.send({
          type: 'error',
          code: 'too-many-rooms',
          message: `this server holds its limit of ${this.limits.maxRooms} rooms; try again later`,
        });
        return null;
      }
      if (room && room.members.length >= this.limits.maxPeersPerRoom) {
        conn.send({ type: 'error', code: 'room-full', message: `room ${m.room} has its limit of ${this.limits.maxPeersPerRoom} peers` });
        return null;
      }
      const refused = room?.banned.has(m.peerId)
        ? `${m.peerId} was removed from ${m.room} for sending invalid gradients`
        : this.auth.admit(m.room, m.peerId, nonce, m.auth);
      if (refused) {
        this.rejected++;
        this.log(`${m.peerId} refused from ${m.room}: ${refused}`);
        conn.send({ type: 'error', code: 'unauthorized', message: refused });
        this.ended.add(conn);
        conn.close('unauthorized');
        return null;
      }
      if (!room) {
        room = {
          id: m.room,
          epoch: 0,
          members: [],
          badLinks: new Map(),
          ring: [],
          resyncAt: -Infinity,
          runs: 0,
          stats: new Map(),
          reports: new Map(),
          strikes: new Map(),
          banned: new Set(),
        };
        this.rooms.set(m.room, room);
      }
      if (room.members.length === 0 && m.epoch !== undefined) {
        // A room recreated (or kept with its run) for rejoining peers gathers them into one view.
        const r = room;
        clearTimeout(r.emptied);
        delete r.emptied;
        r.gathering = setTimeout(() => {
          delete r.gathering;
          if (this.rooms.get(r.id) === r) this.publish(r);
        }, this.rejoinGraceMs);
      } else if (room.emptied) {
        clearTimeout(room.emptied);
        delete room.emptied;
      }
      // Epochs only grow, even across a server restart: a rejoining peer says where it was.
      room.epoch = Math.max(room.epoch, m.epoch ?? 0);
      const token = randomBytes(16).toString('base64url');
      room.members.push({ peerId: m.peerId, conn, lastSeen: Date.now(), token, ...(m.keys ? { keys: m.keys } : {}) });
      this.byPeer.set(m.peerId, room);
      conn.send({
        type: 'welcome',
        version: PROTOCOL_VERSION,
        peerId: m.peerId,
        heartbeatMs: this.heartbeatMs,
        deadAfterMs: this.deadAfterMs,
        token,
      });
      this.log(`${m.peerId} ${m.epoch !== undefined ? 'rejoined' : 'joined'} ${m.room}`);
      if (!room.gathering) this.publish(room);
      // A peer joining during a run takes part in it (the trainer brings it up to date).
      if (room.run) conn.send({ type: 'run', ...room.run });
      return m.peerId;
    }
    if (!joined) {
      conn.send({ type: 'error', code: 'not-joined', message: `send hello before ${m.type}` });
      return null;
    }
    const room = this.byPeer.get(joined);
    const self = room?.members.find((x) => x.peerId === joined && x.conn === conn);
    if (!room || !self) return null;
    self.lastSeen = Date.now();
    switch (m.type) {
      case 'heartbeat':
        return joined;
      case 'leave':
        this.remove(joined, 'left');
        return null;
      case 'link-down':
        // Only reports about the current epoch count. The reported peer is evicted at once, which
        // bumps the epoch: its own report about its accuser (same epoch, or from a connection that
        // is no longer a member) is then ignored, so a suspect cannot evict its accuser back.
        // The next views keep the two apart where the ring allows. Only a ring neighbour's
        // report counts: no member can evict one it has no ring link with.
        if (m.epoch === room.epoch && m.peer !== joined && this.byPeer.get(m.peer) === room && neighbours(room.ring, joined, m.peer)) {
          if (room.badLinks.size < MAX_BAD_LINKS) room.badLinks.set(linkKey(joined, m.peer), Date.now() + BAD_LINK_MS);
          this.remove(m.peer, `link from ${joined} reported down`, true);
        }
        return joined;
      case 'resync': {
        // The first request for the current epoch re-issues the view; later ones name an old
        // epoch. At most one re-issue per RESYNC_EVERY_MS per room: a request within that time
        // is served when it is up (if the epoch is still the same), so a member that floods
        // requests cannot make a view per message.
        if (m.epoch !== room.epoch || room.gathering || room.resyncTimer) return joined;
        const reissue = (): void => {
          delete room.resyncTimer;
          if (room.epoch !== m.epoch || this.rooms.get(room.id) !== room) return;
          room.resyncAt = Date.now();
          this.log(`${joined} asked ${room.id} to resync at epoch ${m.epoch}`);
          this.publish(room);
        };
        const wait = room.resyncAt + RESYNC_EVERY_MS - Date.now();
        if (wait <= 0) reissue();
        else room.resyncTimer = setTimeout(reissue, wait);
        return joined;
      }
      case 'start': {
        if (room.run) {
          conn.send({
            type: 'error',
            code: 'busy',
            message: `run ${room.run.run} (started by ${room.run.by}) is still in progress; stop it before starting another`,
          });
          return joined;
        }
        room.run = { run: ++room.runs, by: joined, job: m.job };
        this.log(`${joined} started run ${room.run.run} (${m.job.kind}) in ${room.id}`);
        for (const x of room.members) x.conn.send({ type: 'run', ...room.run });
        return joined;
      }
      case 'finished':
        if (room.run?.run === m.run) delete room.run;
        return joined;
      case 'invalid': {
        if (m.epoch !== room.epoch || m.peer === joined || !room.members.some((x) => x.peerId === m.peer)) return joined;
        const key = `${m.peer}@${m.step}`;
        const by = room.reports.get(key) ?? new Set<string>();
        room.reports.set(key, by.add(joined));
        // A majority of the other members must agree, so no single peer can strike another.
        if (by.size !== Math.floor((room.members.length - 1) / 2) + 1) return joined;
        const strikes = (room.strikes.get(m.peer) ?? 0) + 1;
        room.strikes.set(m.peer, strikes);
        this.log(`${m.peer} in ${room.id}: invalid contribution to step ${m.step}, strike ${strikes} of ${this.maxStrikes}`);
        if (strikes >= this.maxStrikes) {
          room.banned.add(m.peer);
          this.remove(m.peer, `sent invalid gradients ${strikes} times`, true);
        }
        return joined;
      }
      case 'stats':
        room.stats.set(joined, m.stats);
        room.statsTimer ??= setTimeout(() => {
          delete room.statsTimer;
          const peers = room.members.flatMap((x) => {
            const st = room.stats.get(x.peerId);
            return st ? [{ peerId: x.peerId, stats: st }] : [];
          });
          for (const x of room.members) x.conn.send({ type: 'room-stats', peers });
        }, STATS_EVERY_MS);
        return joined;
    }
  }

  /** Removes `peerId` (only if it is still joined through `conn`, when given) and publishes a new view. */
  private remove(peerId: string, reason: string, evict = false, conn?: Connection): void {
    const room = this.byPeer.get(peerId);
    if (!room) return;
    const i = room.members.findIndex((x) => x.peerId === peerId && (!conn || x.conn === conn));
    if (i < 0) return;
    const [gone] = room.members.splice(i, 1);
    this.byPeer.delete(peerId);
    room.stats.delete(peerId);
    this.log(`${peerId} removed from ${room.id}: ${reason}`);
    if (gone && evict) {
      this.ended.add(gone.conn);
      gone.conn.send({ type: 'error', code: 'evicted', message: `removed from the ring: ${reason}; rejoin to take part again` });
      gone.conn.close(reason);
    }
    if (room.members.length === 0) {
      clearTimeout(room.gathering);
      clearTimeout(room.statsTimer);
      clearTimeout(room.resyncTimer);
      delete room.gathering;
      if (room.run) {
        room.emptied = setTimeout(() => {
          if (this.rooms.get(room.id) === room && room.members.length === 0) this.rooms.delete(room.id);
        }, EMPTY_RUN_KEEP_MS);
        return;
      }
      this.rooms.delete(room.id);
      return;
    }
    if (!room.gathering) this.publish(room);
  }

  private publish(room: Room): void {
    room.epoch++;
    room.reports.clear();
    const view = this.viewOf(room);
    room.ring = view.members.map((m) => m.peerId);
    const msg: ServerMessage = { type: 'view', view };
    const keys = room.members.flatMap((m) => (m.keys?.pub || m.keys?.sig ? [{ peerId: m.peerId, ...m.keys }] : []));
    for (const m of room.members) {
      m.conn.send(msg);
      // Sent with no keys too: the members wait for this message before their first all-gather.
      m.conn.send({ type: 'keys', epoch: room.epoch, keys });
    }
  }

  private viewOf(room: Room): View {
    const now = Date.now();
    for (const [k, until] of room.badLinks) if (until <= now) room.badLinks.delete(k);
    const ids = room.members.map((m) => m.peerId);
    return makeView(room.id, room.epoch, room.badLinks.size ? ringAvoiding(ids, (a, b) => room.badLinks.has(linkKey(a, b))) : ids);
  }

  private sweep(): void {
    const now = Date.now();
    const late = now - this.sweptAt > 2 * this.sweepEveryMs;
    this.sweptAt = now;
    // A sweep this late means this process stalled (GC, a busy event loop, a suspended machine).
    // Timers run before the loop reads its sockets, so the members' heartbeats of that time are
    // still unread: judging now would remove every member at once. The next sweep judges them.
    if (late) return;
    const cutoff = now - this.deadAfterMs;
    for (const room of [...this.rooms.values()]) {
      for (const m of room.members.filter((x) => x.lastSeen < cutoff)) {
        this.remove(m.peerId, `no heartbeat for ${this.deadAfterMs} ms`, true, m.conn);
      }
    }
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const r of this.rooms.values()) {
      clearTimeout(r.gathering);
      clearTimeout(r.emptied);
      clearTimeout(r.statsTimer);
      clearTimeout(r.resyncTimer);
    }
  }
}
