/**
 * Control messages between a peer and the room coordinator (JSON over a WebSocket).
 * Both sides import these schemas and validate every message at the edge, so the rest of the
 * code only ever sees typed values.
 */
import { z } from 'zod';
import { jobSchema } from './run-config.ts';
import { PROTOCOL_VERSION } from './version.ts';

/** Largest control message either side accepts, in bytes (UTF-16 code units of the JSON text). */
export const MAX_CONTROL_BYTES = 64 * 1024;

const id = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'use 1-64 letters, digits, "-" or "_"');
const u32 = z.number().int().min(0).max(0xffff_ffff);

export const memberSchema = z.object({ peerId: id, rank: u32 });
export const viewSchema = z
  .object({
    room: id,
    epoch: u32,
    members: z.array(memberSchema).max(1024),
  })
  .superRefine((v, ctx) => {
    // Core computes ring positions from the index; a rank that disagrees, or a peer listed twice,
    // would give two peers the same position.
    const seen = new Set<string>();
    v.members.forEach((m, i) => {
      if (m.rank !== i) ctx.addIssue({ code: 'custom', path: ['members', i, 'rank'], message: `rank ${m.rank} must equal its index ${i}` });
      if (seen.has(m.peerId)) ctx.addIssue({ code: 'custom', path: ['members', i, 'peerId'], message: `${m.peerId} is listed twice` });
      seen.add(m.peerId);
    });
  });
/** A room's membership at one epoch; `members` is in ring order and `rank` equals the index. */
export type View = z.infer<typeof viewSchema>;
export type Member = z.infer<typeof memberSchema>;

const iceServerSchema = z.object({
  urls: z.union([z.string().max(512), z.array(z.string().max(512)).max(16)]),
  username: z.string().max(256).optional(),
  credential: z.string().max(256).optional(),
});
export type IceServer = z.infer<typeof iceServerSchema>;

/** What `GET /api/config` returns: how a page reaches signaling and which ICE servers to use. */
export const clientConfigSchema = z.object({
  version: z.number().int(),
  /** PeerServer mount path on this origin. */
  peerPath: z.string().max(256),
  peerKey: z.string().max(256),
  /** Coordinator WebSocket path on this origin. */
  coordinatorPath: z.string().max(256),
  iceServers: z.array(iceServerSchema).max(16),
});
export type ClientConfig = z.infer<typeof clientConfigSchema>;

const amount = z.number().min(0).max(1e15);
/** What a peer tells the room about itself for the dashboards (about once a second while it trains). */
export const peerStatsSchema = z.object({
  state: z.enum(['idle', 'loading', 'training', 'paused', 'recovering', 'done', 'failed']),
  backend: z.string().max(64),
  step: u32,
  samplesPerSec: amount,
  /** Last step's split, ms. */
  computeMs: amount,
  readbackMs: amount,
  allreduceMs: amount,
  applyMs: amount,
  /** Payload rate to the next peer on the ring, bytes per second. */
  sendBytesPerSec: amount,
  /** Training samples in this peer's shard. */
  shard: u32,
});
export type PeerStats = z.infer<typeof peerStatsSchema>;

const b64url32 = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'expected 32 bytes, base64url');
/**
 * A private room's proof (see protocol/auth.ts): the HMAC of the connection's nonce, and from the
 * tab that creates the room, the key itself. None: an open room.
 */
export const helloAuthSchema = z.object({ proof: b64url32.optional(), key: b64url32.optional() });
export type HelloAuth = z.infer<typeof helloAuthSchema>;

const p256PubSchema = z.string().regex(/^[A-Za-z0-9_-]{87}$/, 'expected a P-256 public key (65 bytes), base64url');
/** A member's public keys (P-256, raw, base64url): `pub` (ECDH) for secure aggregation, `sig` (ECDSA) for signed all-gathers. */
const memberKeysSchema = z.object({ pub: p256PubSchema.optional(), sig: p256PubSchema.optional() });
export type MemberKeys = z.infer<typeof memberKeysSchema>;

export const clientMessageSchema = z.discriminatedUnion('type', [
  /** `epoch`: the last view this peer saw (when it rejoins), so a restarted server never issues an older one. */
  z.object({
    type: z.literal('hello'),
    version: z.number().int(),
    room: id,
    peerId: id,
    epoch: u32.optional(),
    auth: helloAuthSchema.optional(),
    /** This peer's public keys. */
    keys: memberKeysSchema.optional(),
  }),
  z.object({ type: z.literal('heartbeat') }),
  /** The sender lost its data link to `peer` while in view `epoch`. */
  z.object({ type: z.literal('link-down'), epoch: u32, peer: id }),
  z.object({ type: z.literal('leave') }),
  /**
   * A collective failed in view `epoch` with no member known to be dead (a timeout): the ring's
   * sequence numbers may disagree, so the sender asks for the same members under a new epoch.
   */
  z.object({ type: z.literal('resync'), epoch: u32 }),
  /** Starts a run for every member (and every peer that joins while it lasts). */
  z.object({ type: z.literal('start'), job: jobSchema }),
  /** The sender's part of run `run` ended (done, stopped or failed): the room has no run in progress. */
  z.object({ type: z.literal('finished'), run: u32 }),
  z.object({ type: z.literal('stats'), stats: peerStatsSchema }),
  /** In view `epoch`, `peer`'s contribution to step `step` was invalid (NaN/Inf or over the norm bound). */
  z.object({ type: z.literal('invalid'), epoch: u32, step: u32, peer: id }),
]);
export type ClientMessage = z.infer<typeof clientMessageSchema>;

export const serverErrorCodes = [
  'bad-message',
  'bad-version',
  'not-joined',
  'already-joined',
  'id-taken',
  'evicted',
  'busy',
  'room-full',
  'too-many-rooms',
  'rate-limited',
  'unauthorized',
] as const;
export type ServerErrorCode = (typeof serverErrorCodes)[number];

export const serverMessageSchema = z.discriminatedUnion('type', [
  /** The first message on a connection: the nonce a private room's hello must sign. */
  z.object({ type: z.literal('challenge'), nonce: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/) }),
  z.object({
    type: z.literal('welcome'),
    version: z.number().int(),
    peerId: id,
    /** How often the client must send a heartbeat, ms. */
    heartbeatMs: z.number().int().positive(),
    /** Silence after which a member is removed, ms. */
    deadAfterMs: z.number().int().positive(),
    /** This membership's secret: HTTP writes for the room (checkpoints) carry it; it dies with the membership. */
    token: z.string().regex(/^[A-Za-z0-9_-]{22}$/),
  }),
  z.object({ type: z.literal('view'), view: viewSchema }),
  /** Run `run`, started by `by`: every member trains it; a peer joining later gets it too. */
  z.object({ type: z.literal('run'), run: u32, by: id, job: jobSchema }),
  /** After each view: the members' public keys, bound to that epoch. */
  z.object({ type: z.literal('keys'), epoch: u32, keys: z.array(memberKeysSchema.extend({ peerId: id })).max(1024) }),
  /** The latest stats of every member that sent some (at most about once a second). */
  z.object({ type: z.literal('room-stats'), peers: z.array(z.object({ peerId: id, stats: peerStatsSchema })).max(1024) }),
  z.object({ type: z.literal('error'), code: z.enum(serverErrorCodes), message: z.string().max(1024) }),
]);
export type ServerMessage = z.infer<typeof serverMessageSchema>;

export type ProtocolErrorCode = 'oversized' | 'bad-json' | 'bad-message' | 'bad-version';

/** A control message that failed validation. Returned, never thrown, by the parsers. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
  ) {
    super(`control message rejected (${code}): ${message}`);
  }
}

function parseWith<T>(schema: z.ZodType<T>, raw: unknown): T | ProtocolError {
  if (typeof raw !== 'string') return new ProtocolError('bad-message', 'expected a text message');
  if (raw.length > MAX_CONTROL_BYTES) {
    return new ProtocolError('oversized', `${raw.length} chars exceeds ${MAX_CONTROL_BYTES}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return new ProtocolError('bad-json', 'not valid JSON');
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    return new ProtocolError('bad-message', `${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  return r.data;
}

/** Parses and validates a message sent by a peer to the coordinator. */
export function parseClientMessage(raw: unknown): ClientMessage | ProtocolError {
  const m = parseWith(clientMessageSchema, raw);
  if (!(m instanceof ProtocolError) && m.type === 'hello' && m.version !== PROTOCOL_VERSION) {
    return new ProtocolError('bad-version', `peer speaks v${m.version}, server speaks v${PROTOCOL_VERSION}; reload the page`);
  }
  return m;
}

/** Parses and validates a message sent by the coordinator to a peer; a welcome of another version is 'bad-version'. */
export function parseServerMessage(raw: unknown): ServerMessage | ProtocolError {
  const m = parseWith(serverMessageSchema, raw);
  if (!(m instanceof ProtocolError) && m.type === 'welcome' && m.version !== PROTOCOL_VERSION) {
    return new ProtocolError('bad-version', `server speaks v${m.version}, this page speaks v${PROTOCOL_VERSION}; reload the page`);
  }
  return m;
}
