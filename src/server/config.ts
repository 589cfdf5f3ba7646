import path from 'node:path';
import { parseArgs } from 'node:util';
import { clientConfigSchema, type IceServer } from '../protocol/index.ts';
import type { ServerOptions } from './app.ts';
import { CHECKPOINT_DEFAULTS } from './checkpoints.ts';
import { LIMIT_DEFAULTS } from './coordinator.ts';
import { DEFAULT_TURN_TTL_S, type TurnOptions } from './turn.ts';

export const DEFAULT_PORT = 8080;

export const SERVER_USAGE = `Options (flag, or environment variable):
  --host H           RINGTRAIN_HOST   interface to listen on (default 127.0.0.1; 0.0.0.0 for other machines)
  --port P           PORT             port (default ${DEFAULT_PORT}; 0 picks a free one)
  --tls-cert FILE    RINGTRAIN_TLS_CERT  PEM certificate: serve HTTPS (WebGPU needs a secure context off localhost)
  --tls-key FILE     RINGTRAIN_TLS_KEY   PEM private key
  --ice URLS         RINGTRAIN_ICE    STUN/TURN servers for peers: comma-separated URLs, or a JSON array of
                                      {urls, username, credential}. Default none (same-machine and LAN only).
                                      Servers with a username or credential go to admitted members only.
  --turn-url URLS    RINGTRAIN_TURN_URL     a TURN server sharing --turn-secret (coturn use-auth-secret):
                                      comma-separated turn:/turns: URLs, e.g. turn:turn.example.org:3478
  --turn-secret S    RINGTRAIN_TURN_SECRET  coturn's static-auth-secret: each admitted peer gets its own
                                      credential (TURN REST: "<expiry>:<peer id>", HMAC-SHA1); the secret
                                      is never sent. Prefer the variable: a flag shows in the process list
  --turn-ttl N       RINGTRAIN_TURN_TTL     seconds a minted TURN credential is valid (default ${DEFAULT_TURN_TTL_S})
  --heartbeat-ms N   RINGTRAIN_HEARTBEAT_MS   peer heartbeat period (default 500)
  --dead-after-ms N  RINGTRAIN_DEAD_AFTER_MS  silence before a peer is removed (default 2500)
  --checkpoint-dir D RINGTRAIN_CHECKPOINT_DIR  where room checkpoints are kept (default .ringtrain/checkpoints)
  --checkpoint-room-quota S  RINGTRAIN_CHECKPOINT_ROOM_QUOTA  checkpoint bytes one room keeps (default 192M:
                                      3 of the 64 MiB maximum); its oldest are pruned to make room
  --checkpoint-quota S       RINGTRAIN_CHECKPOINT_QUOTA  checkpoint bytes all rooms keep together (default 2G);
                                      a write that does not fit even so is refused (507)
                                      S: bytes, or a number followed by K, M or G (KiB, MiB, GiB)
  --max-peers N      RINGTRAIN_MAX_PEERS      peers per room (default 64)
  --max-rooms N      RINGTRAIN_MAX_ROOMS      rooms at once (default 1000)
  --max-msgs N       RINGTRAIN_MAX_MSGS       control messages per second per peer (default 40)
  --max-conns-per-address N  RINGTRAIN_MAX_CONNS_PER_ADDRESS  control connections from one address (default 256)
  --max-msgs-per-address N   RINGTRAIN_MAX_MSGS_PER_ADDRESS   control messages per second from one address (default 1000)
  --prod                              serve the built dist/ instead of the Vite dev server
  --help`;

/** A command-line or environment mistake, with a message that says what to fix. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const ICE_URL = /^(stun|stuns|turn|turns):/;

function checkIceUrl(url: string): void {
  if (!ICE_URL.test(url)) throw new ConfigError(`--ice: "${url}" is not a stun:, stuns:, turn: or turns: URL`);
}

/**
 * The ICE servers handed to every page. They are checked against the same schema the pages apply
 * to `GET /api/config`: anything the pages would reject must fail here, at startup.
 */
function parseIce(raw: string): IceServer[] {
  const text = raw.trim();
  if (!text) return [];
  let list: unknown;
  if (text.startsWith('[')) {
    try {
      list = JSON.parse(text);
    } catch {
      throw new ConfigError('--ice: not valid JSON; pass a JSON array of {urls, username, credential} or comma-separated URLs');
    }
    if (!Array.isArray(list) || !list.every((s) => typeof s === 'object' && s !== null && 'urls' in s)) {
      throw new ConfigError('--ice: the JSON must be an array of objects with "urls"');
    }
  } else {
    list = text.split(',').map((u) => ({ urls: u.trim() }));
  }
  const r = clientConfigSchema.shape.iceServers.safeParse(list);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new ConfigError(
      `--ice: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}; give at most 16 servers, each {urls: string or string[], username?, credential?}`,
    );
  }
  for (const s of r.data) for (const url of typeof s.urls === 'string' ? [s.urls] : s.urls) checkIceUrl(url);
  return r.data;
}

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

const TURN_URL = /^turns?:[^\s,]+$/;

/** The TURN REST options, or none when neither the URL nor the secret is given. */
function parseTurn(rawUrls: string | undefined, secret: string | undefined, rawTtl: string | undefined): TurnOptions | undefined {
  const urls = (rawUrls ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  if (urls.length === 0 && !secret) {
    if (rawTtl) throw new ConfigError('--turn-ttl without --turn-url and --turn-secret: give all of them, or none');
    return undefined;
  }
  if (urls.length === 0)
    throw new ConfigError("--turn-secret without --turn-url: give the TURN server's URL, e.g. --turn-url turn:turn.example.org:3478");
  if (!secret)
    throw new ConfigError(
      '--turn-url without --turn-secret: set RINGTRAIN_TURN_SECRET to the static-auth-secret of the TURN server (coturn use-auth-secret)',
    );
  // A member holds a username and its HMAC: a short secret could be found offline, and then mint credentials for anyone.
  if (secret.length < 16)
    throw new ConfigError(
      '--turn-secret: shorter than 16 characters; use a long random one, e.g. "openssl rand -hex 32", in both coturn and RingTrain',
    );
  for (const u of urls)
    if (!TURN_URL.test(u) || u.length > 512) throw new ConfigError(`--turn-url: "${u.slice(0, 80)}" is not a turn: or turns: URL`);
  if (urls.length > 16) throw new ConfigError(`--turn-url: ${urls.length} URLs; give at most 16`);
  const ttlSeconds = int('--turn-ttl', rawTtl, DEFAULT_TURN_TTL_S, 60);
  if (ttlSeconds > 7 * 86_400)
    throw new ConfigError(`--turn-ttl: ${ttlSeconds} s is more than a week; a leaked credential would relay for that long`);
  return { urls, secret, ttlSeconds };
}

/** A size in bytes: an integer >= 1, optionally followed by K, M or G (KiB, MiB, GiB). */
function size(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === '') return fallback;
  const m = /^(\d+)([KMG]?)$/i.exec(raw);
  const v = m ? Number(m[1]) * UNITS[m[2]!.toUpperCase()]! : NaN;
  if (!Number.isSafeInteger(v) || v < 1)
    throw new ConfigError(`${name}: expected a size in bytes such as 500000000, 512M or 2G, got "${raw}"`);
  return v;
}

function int(name: string, raw: string | undefined, fallback: number, min: number): number {
  if (raw === undefined || raw === '') return fallback;
  // Digits only: Number() would also take " ", "0x50" or "1e3".
  const v = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(v) || v < min) throw new ConfigError(`${name}: expected an integer >= ${min}, got "${raw}"`);
  return v;
}

/** Reads server options from argv and the environment. Throws ConfigError with a fix on bad input. */
export function parseServerArgs(argv: string[], env: NodeJS.ProcessEnv, root: string): ServerOptions & { help: boolean } {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        ice: { type: 'string' },
        'turn-url': { type: 'string' },
        'turn-secret': { type: 'string' },
        'turn-ttl': { type: 'string' },
        'heartbeat-ms': { type: 'string' },
        'dead-after-ms': { type: 'string' },
        'checkpoint-dir': { type: 'string' },
        'checkpoint-room-quota': { type: 'string' },
        'checkpoint-quota': { type: 'string' },
        'max-peers': { type: 'string' },
        'max-rooms': { type: 'string' },
        'max-msgs': { type: 'string' },
        'max-conns-per-address': { type: 'string' },
        'max-msgs-per-address': { type: 'string' },
        prod: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (e) {
    throw new ConfigError(`${(e as Error).message}\n${SERVER_USAGE}`);
  }
  const cert = values['tls-cert'] ?? env.RINGTRAIN_TLS_CERT;
  const key = values['tls-key'] ?? env.RINGTRAIN_TLS_KEY;
  if (!!cert !== !!key) throw new ConfigError('--tls-cert and --tls-key go together: give both, or neither');
  const port = int('--port', values.port ?? env.PORT, DEFAULT_PORT, 0);
  if (port > 65535) throw new ConfigError(`--port: ${port} is above 65535`);
  const heartbeatMs = int('--heartbeat-ms', values['heartbeat-ms'] ?? env.RINGTRAIN_HEARTBEAT_MS, 500, 10);
  const deadAfterMs = int('--dead-after-ms', values['dead-after-ms'] ?? env.RINGTRAIN_DEAD_AFTER_MS, 2500, 20);
  // The Coordinator enforces this too, but with a RangeError instead of a message naming the flags.
  if (deadAfterMs < 2 * heartbeatMs) {
    throw new ConfigError(
      `--dead-after-ms (${deadAfterMs}) must be at least twice --heartbeat-ms (${heartbeatMs}); raise --dead-after-ms or lower --heartbeat-ms`,
    );
  }
  const checkpointRoomQuota = size(
    '--checkpoint-room-quota',
    values['checkpoint-room-quota'] ?? env.RINGTRAIN_CHECKPOINT_ROOM_QUOTA,
    CHECKPOINT_DEFAULTS.roomQuota,
  );
  const checkpointQuota = size(
    '--checkpoint-quota',
    values['checkpoint-quota'] ?? env.RINGTRAIN_CHECKPOINT_QUOTA,
    CHECKPOINT_DEFAULTS.quota,
  );
  if (checkpointRoomQuota > checkpointQuota) {
    throw new ConfigError(
      `--checkpoint-room-quota (${checkpointRoomQuota}) is above --checkpoint-quota (${checkpointQuota}), so one room could fill the space of all: lower the first or raise the second`,
    );
  }
  const turn = parseTurn(
    values['turn-url'] ?? env.RINGTRAIN_TURN_URL,
    values['turn-secret'] || env.RINGTRAIN_TURN_SECRET || undefined,
    values['turn-ttl'] ?? env.RINGTRAIN_TURN_TTL,
  );
  return {
    help: values.help ?? false,
    // An empty value counts as unset, as for the other variables: '' would listen on every interface.
    host: values.host || env.RINGTRAIN_HOST || '127.0.0.1',
    port,
    ...(cert && key ? { tls: { cert, key } } : {}),
    iceServers: parseIce(values.ice ?? env.RINGTRAIN_ICE ?? ''),
    ...(turn ? { turn } : {}),
    heartbeatMs,
    deadAfterMs,
    maxPeersPerRoom: int('--max-peers', values['max-peers'] ?? env.RINGTRAIN_MAX_PEERS, LIMIT_DEFAULTS.maxPeersPerRoom, 1),
    maxRooms: int('--max-rooms', values['max-rooms'] ?? env.RINGTRAIN_MAX_ROOMS, LIMIT_DEFAULTS.maxRooms, 1),
    maxMessagesPerSec: int('--max-msgs', values['max-msgs'] ?? env.RINGTRAIN_MAX_MSGS, LIMIT_DEFAULTS.maxMessagesPerSec, 5),
    maxConnectionsPerAddress: int(
      '--max-conns-per-address',
      values['max-conns-per-address'] ?? env.RINGTRAIN_MAX_CONNS_PER_ADDRESS,
      LIMIT_DEFAULTS.maxConnectionsPerAddress,
      1,
    ),
    maxMessagesPerSecPerAddress: int(
      '--max-msgs-per-address',
      values['max-msgs-per-address'] ?? env.RINGTRAIN_MAX_MSGS_PER_ADDRESS,
      LIMIT_DEFAULTS.maxMessagesPerSecPerAddress,
      5,
    ),
    mode: values.prod ? 'prod' : 'dev',
    root,
    ...(values['checkpoint-dir'] || env.RINGTRAIN_CHECKPOINT_DIR
      ? { checkpointDir: path.resolve(values['checkpoint-dir'] || env.RINGTRAIN_CHECKPOINT_DIR!) }
      : {}),
    checkpointRoomQuota,
    checkpointQuota,
  };
}
