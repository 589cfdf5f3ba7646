import { RingError } from '../core/errors.ts';
import { helloText, hmac, toBase64Url } from '../protocol/auth.ts';
import { Listeners } from '../core/transport.ts';
import {
  parseServerMessage,
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

type Welcome = Extract<ServerMessage, { type: 'welcome' }>;
/** A run the room started (see {@link CoordinatorClient.startRun}). */
export type RunMessage = Omit<Extract<ServerMessage, { type: 'run' }>, 'type'>;
export type RoomStats = Extract<ServerMessage, { type: 'room-stats' }>['peers'];

/** Why the coordinator link ended or complained: a server error code, or a local one. */
export type CoordinatorErrorCode = ServerErrorCode | 'protocol' | 'disconnected';

/**
 * The peer's control link to the room coordinator: hello with the protocol version, heartbeats,
 * views in, link-down reports out. Every incoming message is validated; an invalid one is reported
 * as an error event, never thrown.
 */
export class CoordinatorClient {
  readonly views = new Listeners<[View]>();
  readonly errors = new Listeners<[CoordinatorErrorCode, string]>();
  readonly runs = new Listeners<[RunMessage]>();
  readonly roomStats = new Listeners<[RoomStats]>();
  /** Members' public keys, per view epoch. */
  readonly keys = new Listeners<[number, Map<string, MemberKeys>]>();
  private ws: WebSocket | null = null;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private closedByUs = false;

  constructor(
    private readonly url: string,
    private readonly room: string,
    private readonly peerId: string,
    /** The last view epoch this peer saw, when it rejoins. */
    private readonly lastEpoch?: number,
    /** A private room's key; `create`: this tab made the room, so the hello also registers the key. */
    private readonly access?: { key: Uint8Array<ArrayBuffer>; create: boolean },
    /** This peer's public keys. */
    private readonly ownKeys?: MemberKeys,
  ) {}

  /** The hello for the connection whose nonce is `nonce`, with the room proof when the room is private. */
  private async hello(nonce: string): Promise<ClientMessage> {
    const a = this.access;
    const auth = a
      ? { proof: await hmac(a.key, helloText(nonce, this.room, this.peerId)), ...(a.create ? { key: toBase64Url(a.key) } : {}) }
      : undefined;
    return {
      type: 'hello',
      version: PROTOCOL_VERSION,
      room: this.room,
      peerId: this.peerId,
      ...(this.lastEpoch !== undefined ? { epoch: this.lastEpoch } : {}),
      ...(auth ? { auth } : {}),
      ...(this.ownKeys ? { keys: this.ownKeys } : {}),
    };
  }

  /** Connects and joins; resolves with the welcome (heartbeat settings). */
  open(timeoutMs: number): Promise<Welcome> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      let welcomed = false;
      const t = setTimeout(() => {
        reject(new RingError('timeout', `coordinator at ${this.url} did not answer within ${timeoutMs} ms`));
        ws.close();
      }, timeoutMs);
      ws.onmessage = (e) => {
        const m = parseServerMessage(e.data);
        if (m instanceof ProtocolError) {
          if (!welcomed) {
            clearTimeout(t);
            reject(new RingError('protocol', `the coordinator's answer is not understood (${m.message}); reload the page`));
            ws.close();
          }
          this.errors.emit('protocol', m.message);
          return;
        }
        if (m.type === 'challenge') {
          void this.hello(m.nonce).then((h) => this.send(h));
        } else if (m.type === 'welcome') {
          welcomed = true;
          clearTimeout(t);
          this.heartbeat = setInterval(() => this.send({ type: 'heartbeat' }), m.heartbeatMs);
          resolve(m);
        } else if (m.type === 'view') {
          this.views.emit(m.view);
        } else if (m.type === 'run') {
          this.runs.emit({ run: m.run, by: m.by, job: m.job });
        } else if (m.type === 'keys') {
          this.keys.emit(m.epoch, new Map(m.keys.map(({ peerId, ...k }) => [peerId, k])));
        } else if (m.type === 'room-stats') {
          this.roomStats.emit(m.peers);
        } else {
          if (!welcomed) {
            clearTimeout(t);
            reject(new RingError('closed', `coordinator refused to join: ${m.message}`));
          }
          this.errors.emit(m.code, m.message);
        }
      };
      ws.onclose = (e) => {
        if (this.heartbeat) clearInterval(this.heartbeat);
        this.heartbeat = null;
        if (!welcomed) {
          clearTimeout(t);
          reject(new RingError('closed', `coordinator connection closed (${e.code}) before joining`));
        } else if (!this.closedByUs) {
          this.errors.emit('disconnected', `coordinator connection closed (${e.code} ${e.reason})`);
        }
      };
    });
  }

  /** Tells the coordinator that the data link to `peer` died in view `epoch`. */
  reportLinkDown(epoch: number, peer: string): void {
    this.send({ type: 'link-down', epoch, peer });
  }

  /** Asks for the same members under a new epoch (a collective of view `epoch` failed without a dead peer). */
  requestResync(epoch: number): void {
    this.send({ type: 'resync', epoch });
  }

  /** Starts `job` for the whole room (refused with a 'busy' error while another run lasts). */
  startRun(job: Job): void {
    this.send({ type: 'start', job });
  }

  /** This peer's part of run `run` ended. */
  finishRun(run: number): void {
    this.send({ type: 'finished', run });
  }

  /** `peer`'s contribution to step `step` of view `epoch` was invalid. */
  reportInvalid(epoch: number, step: number, peer: string): void {
    this.send({ type: 'invalid', epoch, step, peer });
  }

  sendStats(stats: PeerStats): void {
    this.send({ type: 'stats', stats });
  }

  private send(m: ClientMessage): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(m));
  }

  /** Leaves the room and closes the link. */
  close(): void {
    this.closedByUs = true;
    this.send({ type: 'leave' });
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.ws?.close();
  }
}
