import { parseArgs } from 'node:util';
import type { IceServer } from '../protocol/index.ts';
import type { ServerOptions } from './app.ts';

export const DEFAULT_PORT = 8080;

export const SERVER_USAGE = `Options (flag, or environment variable):
  --host H           RINGTRAIN_HOST   interface to listen on (default 127.0.0.1; 0.0.0.0 for other machines)
  --port P           PORT             port (default ${DEFAULT_PORT}; 0 picks a free one)
  --tls-cert FILE    RINGTRAIN_TLS_CERT  PEM certificate: serve HTTPS (WebGPU needs a secure context off localhost)
  --tls-key FILE     RINGTRAIN_TLS_KEY   PEM private key
  --ice URLS         RINGTRAIN_ICE    STUN/TURN servers for peers: comma-separated URLs, or a JSON array of
                                      {urls, username, credential}. Default none (same-machine and LAN only).
  --heartbeat-ms N   RINGTRAIN_HEARTBEAT_MS   peer heartbeat period (default 500)
  --dead-after-ms N  RINGTRAIN_DEAD_AFTER_MS  silence before a peer is removed (default 2500)
  --prod                              serve the built dist/ instead of the Vite dev server
  --help`;

/** A command-line or environment mistake, with a message that says what to fix. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

function parseIce(raw: string): IceServer[] {
  const text = raw.trim();
  if (!text) return [];
  if (text.startsWith('[')) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw new ConfigError('--ice: not valid JSON; pass a JSON array of {urls, username, credential} or comma-separated URLs');
    }
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'object' && s !== null && 'urls' in s)) {
      throw new ConfigError('--ice: the JSON must be an array of objects with "urls"');
    }
    return v as IceServer[];
  }
  return text.split(',').map((u) => {
    const url = u.trim();
    if (!/^(stun|stuns|turn|turns):/.test(url)) throw new ConfigError(`--ice: "${url}" is not a stun:, stuns:, turn: or turns: URL`);
    return { urls: url };
  });
}

function int(name: string, raw: string | undefined, fallback: number, min: number): number {
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) throw new ConfigError(`${name}: expected an integer >= ${min}, got "${raw}"`);
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
        'heartbeat-ms': { type: 'string' },
        'dead-after-ms': { type: 'string' },
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
  return {
    help: values.help ?? false,
    host: values.host ?? env.RINGTRAIN_HOST ?? '127.0.0.1',
    port,
    ...(cert && key ? { tls: { cert, key } } : {}),
    iceServers: parseIce(values.ice ?? env.RINGTRAIN_ICE ?? ''),
    heartbeatMs: int('--heartbeat-ms', values['heartbeat-ms'] ?? env.RINGTRAIN_HEARTBEAT_MS, 500, 10),
    deadAfterMs: int('--dead-after-ms', values['dead-after-ms'] ?? env.RINGTRAIN_DEAD_AFTER_MS, 2500, 20),
    mode: values.prod ? 'prod' : 'dev',
    root,
  };
}
