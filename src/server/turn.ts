/**
 * ICE servers for members only, and TURN credentials minted per admitted peer.
 *
 * A TURN server relays for whoever holds a valid credential, so credentials are the relay's
 * bandwidth. `GET /api/config` (answered to anyone) carries only the servers that need none
 * (STUN). A peer the coordinator has admitted to a room asks `GET /api/rooms/<room>/ice` with its
 * membership (`x-ringtrain-member: <peerId>.<token>`, the token of its welcome) and gets the full
 * list: the STUN servers, any server given with static credentials (`--ice` JSON), and, with
 * `--turn-url` and `--turn-secret`, a credential of the TURN REST scheme that coturn checks with
 * `use-auth-secret` / `static-auth-secret` (draft-uberti-behave-turn-rest):
 *
 *     username   = "<expiry, unix seconds>:<peer id>"
 *     credential = base64(HMAC-SHA1(secret, username))
 *
 * The TURN server holds the same secret and refuses a username whose expiry has passed, so a
 * credential that leaves the room (a member may pass it on) dies after the TTL, and the secret
 * itself never leaves this server. Nothing is stored: each request mints afresh.
 */
import { createHmac } from 'node:crypto';
import type express from 'express';
import { MEMBER_HEADER } from '../protocol/auth.ts';
import type { MemberIce } from '../protocol/ice.ts';
import type { IceServer } from '../protocol/index.ts';
import type { MembershipCheck } from './checkpoints.ts';

/** A credential's lifetime unless told otherwise, seconds. */
export const DEFAULT_TURN_TTL_S = 3600;

export interface TurnOptions {
  /** The TURN server's URLs (turn: or turns:), e.g. `turn:turn.example.org:3478`. */
  urls: string[];
  /** coturn's `static-auth-secret`. */
  secret: string;
  /** How long a minted credential is valid, seconds (default {@link DEFAULT_TURN_TTL_S}). */
  ttlSeconds?: number;
}

/** The TURN REST credential of `username` under `secret`: base64(HMAC-SHA1(secret, username)). */
export function turnCredential(secret: string, username: string): string {
  return createHmac('sha1', secret).update(username).digest('base64');
}

/** A TURN server entry with a credential for `name` (a peer id), valid `ttlSeconds` from `nowMs`. */
export function mintTurnServer(o: TurnOptions, name: string, nowMs = Date.now()): IceServer {
  const username = `${Math.floor(nowMs / 1000) + (o.ttlSeconds ?? DEFAULT_TURN_TTL_S)}:${name}`;
  return { urls: o.urls, username, credential: turnCredential(o.secret, username) };
}

/** Whether an ICE server entry carries a secret (a username or credential): such entries go to members only. */
export const hasCredential = (s: IceServer): boolean => s.username !== undefined || s.credential !== undefined;

const ROOM = /^[A-Za-z0-9_-]{1,64}$/;
const MEMBERSHIP = /^([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{22})$/;

/**
 * Adds `GET /api/rooms/:room/ice`: for a live member of `room` (proven by {@link MEMBER_HEADER}),
 * every ICE server with credentials, TURN credentials minted for its peer id; 403 for anyone else.
 */
export function registerIce(app: express.Express, o: { iceServers: IceServer[]; turn?: TurnOptions }, isMember: MembershipCheck): void {
  app.get('/api/rooms/:room/ice', (req, res) => {
    res.set('Cache-Control', 'no-store');
    const room = String(req.params.room);
    const m = MEMBERSHIP.exec(req.get(MEMBER_HEADER) ?? '');
    if (!ROOM.test(room) || !m || !isMember(room, m[1]!, m[2]!)) {
      res.status(403).json({ error: `only a member of room "${room.slice(0, 64)}" gets its ICE servers; join the room first` });
      return;
    }
    const body: MemberIce = {
      iceServers: [...o.iceServers, ...(o.turn ? [mintTurnServer(o.turn, m[1]!)] : [])],
      ...(o.turn ? { ttlMs: (o.turn.ttlSeconds ?? DEFAULT_TURN_TTL_S) * 1000 } : {}),
    };
    res.json(body);
  });
}
