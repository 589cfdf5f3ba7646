import { describe, expect, it } from 'vitest';
import { clientConfigSchema } from '../protocol/index.ts';
import { ConfigError, DEFAULT_PORT, parseServerArgs, SERVER_USAGE } from './config.ts';

const ROOT = '/srv/ringtrain';
const parse = (argv: string[], env: NodeJS.ProcessEnv = {}): ReturnType<typeof parseServerArgs> => parseServerArgs(argv, env, ROOT);

/** The ConfigError thrown by `fn`; fails when it throws anything else or nothing. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

describe('parseServerArgs', () => {
  it('defaults to 127.0.0.1:8080, dev mode, no ICE servers and no TLS', () => {
    expect(parse([])).toEqual({
      help: false,
      host: '127.0.0.1',
      port: DEFAULT_PORT,
      iceServers: [],
      heartbeatMs: 500,
      deadAfterMs: 2500,
      maxPeersPerRoom: 64,
      maxRooms: 1000,
      maxMessagesPerSec: 40,
      maxConnectionsPerAddress: 256,
      maxMessagesPerSecPerAddress: 1000,
      checkpointRoomQuota: 3 * 64 * 1024 ** 2,
      checkpointQuota: 2 * 1024 ** 3,
      mode: 'dev',
      root: ROOT,
    });
    expect(DEFAULT_PORT).toBe(8080);
    expect(parse(['--max-peers', '8', '--max-rooms', '3'], { RINGTRAIN_MAX_MSGS: '10' })).toMatchObject({
      maxPeersPerRoom: 8,
      maxRooms: 3,
      maxMessagesPerSec: 10,
    });
    expect(parse(['--max-conns-per-address', '16'], { RINGTRAIN_MAX_MSGS_PER_ADDRESS: '200' })).toMatchObject({
      maxConnectionsPerAddress: 16,
      maxMessagesPerSecPerAddress: 200,
    });
    expect(() => parse(['--max-msgs', '2'])).toThrow(/--max-msgs: expected an integer >= 5, got "2"/);
  });

  it('reads the environment', () => {
    const o = parse([], {
      RINGTRAIN_HOST: '0.0.0.0',
      PORT: '9000',
      RINGTRAIN_ICE: 'stun:stun.example.org:3478',
      RINGTRAIN_HEARTBEAT_MS: '200',
      RINGTRAIN_DEAD_AFTER_MS: '1000',
      RINGTRAIN_TLS_CERT: '/c.pem',
      RINGTRAIN_TLS_KEY: '/k.pem',
    });
    expect(o).toMatchObject({
      host: '0.0.0.0',
      port: 9000,
      iceServers: [{ urls: 'stun:stun.example.org:3478' }],
      heartbeatMs: 200,
      deadAfterMs: 1000,
      tls: { cert: '/c.pem', key: '/k.pem' },
    });
  });

  it('lets flags override the environment', () => {
    const env = { RINGTRAIN_HOST: '0.0.0.0', PORT: '9000', RINGTRAIN_ICE: 'stun:env:3478', RINGTRAIN_HEARTBEAT_MS: '200' };
    const o = parse(['--host', '::1', '--port', '0', '--ice', 'stun:flag:3478', '--heartbeat-ms=100', '--dead-after-ms', '400'], env);
    expect(o).toMatchObject({ host: '::1', port: 0, iceServers: [{ urls: 'stun:flag:3478' }], heartbeatMs: 100, deadAfterMs: 400 });
  });

  it('treats empty environment variables as unset (an empty host would listen on every interface)', () => {
    const o = parse([], { RINGTRAIN_HOST: '', PORT: '', RINGTRAIN_ICE: '', RINGTRAIN_TLS_CERT: '', RINGTRAIN_TLS_KEY: '' });
    expect(o).toMatchObject({ host: '127.0.0.1', port: DEFAULT_PORT, iceServers: [] });
    expect(o.tls).toBeUndefined();
  });

  it('--prod serves the build, --help asks for usage', () => {
    expect(parse(['--prod']).mode).toBe('prod');
    expect(parse(['--help']).help).toBe(true);
  });

  it('takes comma-separated stun/turn URLs', () => {
    expect(
      parse(['--ice', 'stun:a.example:3478, turn:b.example:3478?transport=tcp,stuns:c.example,turns:d.example:5349']).iceServers,
    ).toEqual([
      { urls: 'stun:a.example:3478' },
      { urls: 'turn:b.example:3478?transport=tcp' },
      { urls: 'stuns:c.example' },
      { urls: 'turns:d.example:5349' },
    ]);
  });

  it('takes a JSON array of {urls, username, credential}', () => {
    const servers = [
      { urls: 'stun:a.example:3478' },
      { urls: ['turn:b.example:3478', 'turns:b.example:5349'], username: 'u', credential: 'secret' },
    ];
    const o = parse(['--ice', JSON.stringify(servers)]);
    expect(o.iceServers).toEqual(servers);
    // What the server will hand to pages passes the pages' own check.
    expect(clientConfigSchema.shape.iceServers.safeParse(o.iceServers).success).toBe(true);
  });

  it.each<[string, string, RegExp]>([
    ['an http URL', 'http://stun.example.org', /--ice: "http:\/\/stun.example.org" is not a stun:, stuns:, turn: or turns: URL/],
    ['an empty entry', 'stun:a.example,', /--ice: "" is not a stun:/],
    ['bad JSON', '[{"urls": "stun:a"', /--ice: not valid JSON; pass a JSON array/],
    ['JSON without urls', '[{"url": "stun:a"}]', /--ice: the JSON must be an array of objects with "urls"/],
    ['JSON with a non-string urls', '[{"urls": 5}]', /--ice: 0\.urls: .*urls: string or string\[\]/],
    ['JSON with a non-ICE URL', '[{"urls": ["stun:a", "https://b"]}]', /--ice: "https:\/\/b" is not a stun:/],
    ['JSON with a numeric credential', '[{"urls": "turn:a", "username": "u", "credential": 1}]', /--ice: 0\.credential/],
    ['more servers than pages accept', Array.from({ length: 17 }, (_, i) => `stun:s${i}.example`).join(','), /--ice: .*at most 16 servers/],
  ])('rejects %s in --ice with a ConfigError', (_name, ice, message) => {
    expect(configError(() => parse(['--ice', ice])).message).toMatch(message);
    expect(configError(() => parse([], { RINGTRAIN_ICE: ice })).message).toMatch(message);
  });

  it.each(['abc', '-1', '80.5', '65536', '0x50', '1e3', ' ', '8080 '])('rejects port %j with a ConfigError naming --port', (port) => {
    const e = configError(() => parse([`--port=${port}`]));
    expect(e.message).toMatch(/^--port: /);
    expect(configError(() => parse([], { PORT: port })).message).toMatch(/^--port: /);
  });

  it('accepts ports 0 (pick a free one) to 65535', () => {
    expect(parse(['--port', '0']).port).toBe(0);
    expect(parse(['--port', '65535']).port).toBe(65535);
  });

  it.each<[string[], NodeJS.ProcessEnv]>([
    [['--tls-cert', 'c.pem'], {}],
    [['--tls-key', 'k.pem'], {}],
    [[], { RINGTRAIN_TLS_CERT: 'c.pem' }],
  ])('rejects a TLS certificate without its key, or the reverse (%j %j)', (argv, env) => {
    expect(configError(() => parse(argv, env)).message).toBe('--tls-cert and --tls-key go together: give both, or neither');
  });

  it('takes TLS from flags', () => {
    expect(parse(['--tls-cert', 'c.pem', '--tls-key', 'k.pem']).tls).toEqual({ cert: 'c.pem', key: 'k.pem' });
  });

  it.each([['--bogus'], ['--port'], ['stray'], ['--prod=yes']])('rejects %j with a ConfigError that shows the usage', (arg) => {
    const e = configError(() => parse([arg]));
    expect(e.message).toContain(SERVER_USAGE);
    expect(e.name).toBe('ConfigError');
  });

  it('names the unknown flag', () => {
    expect(configError(() => parse(['--bogus'])).message).toMatch(/--bogus/);
  });

  it('takes the checkpoint quotas in bytes, K, M or G, from flags or the environment', () => {
    expect(parse(['--checkpoint-room-quota', '512k', '--checkpoint-quota=3G'])).toMatchObject({
      checkpointRoomQuota: 512 * 1024,
      checkpointQuota: 3 * 1024 ** 3,
    });
    expect(parse([], { RINGTRAIN_CHECKPOINT_ROOM_QUOTA: '1000', RINGTRAIN_CHECKPOINT_QUOTA: '100M' })).toMatchObject({
      checkpointRoomQuota: 1000,
      checkpointQuota: 100 * 1024 ** 2,
    });
    expect(SERVER_USAGE).toMatch(/--checkpoint-room-quota S +RINGTRAIN_CHECKPOINT_ROOM_QUOTA /);
    expect(SERVER_USAGE).toMatch(/--checkpoint-quota S +RINGTRAIN_CHECKPOINT_QUOTA /);
  });

  it.each<[string[], RegExp]>([
    [['--checkpoint-quota', '2T'], /^--checkpoint-quota: expected a size in bytes such as 500000000, 512M or 2G, got "2T"$/],
    [['--checkpoint-room-quota', '0'], /^--checkpoint-room-quota: expected a size in bytes/],
    [['--checkpoint-room-quota', '1.5G'], /^--checkpoint-room-quota: expected a size in bytes/],
    [
      ['--checkpoint-quota', '100M'],
      /^--checkpoint-room-quota \(201326592\) is above --checkpoint-quota \(104857600\), so one room could fill the space of all: lower the first or raise the second$/,
    ],
  ])('checks the checkpoint quotas: %j', (argv, message) => {
    expect(configError(() => parse(argv)).message).toMatch(message);
  });

  it('takes a TURN server and its shared secret (coturn use-auth-secret) from flags or the environment; none by default', () => {
    const secret = 'x'.repeat(32);
    expect(parse([]).turn).toBeUndefined();
    expect(parse(['--turn-url', 'turn:t.example:3478, turns:t.example:5349', '--turn-secret', secret])).toMatchObject({
      turn: { urls: ['turn:t.example:3478', 'turns:t.example:5349'], secret, ttlSeconds: 3600 },
    });
    expect(parse(['--turn-ttl=600'], { RINGTRAIN_TURN_URL: 'turn:t.example', RINGTRAIN_TURN_SECRET: secret }).turn).toEqual({
      urls: ['turn:t.example'],
      secret,
      ttlSeconds: 600,
    });
    expect(
      parse([], { RINGTRAIN_TURN_URL: 'turn:t.example', RINGTRAIN_TURN_SECRET: secret, RINGTRAIN_TURN_TTL: '120' }).turn?.ttlSeconds,
    ).toBe(120);
    expect(SERVER_USAGE).toMatch(/--turn-url URLS +RINGTRAIN_TURN_URL /);
    expect(SERVER_USAGE).toMatch(/--turn-secret S +RINGTRAIN_TURN_SECRET /);
    expect(SERVER_USAGE).toMatch(/--turn-ttl N +RINGTRAIN_TURN_TTL /);
  });

  it.each<[string[], NodeJS.ProcessEnv, RegExp]>([
    [['--turn-url', 'turn:t.example'], {}, /^--turn-url without --turn-secret: set RINGTRAIN_TURN_SECRET/],
    [[], { RINGTRAIN_TURN_SECRET: 'x'.repeat(32) }, /^--turn-secret without --turn-url/],
    [['--turn-ttl', '60'], {}, /^--turn-ttl without --turn-url and --turn-secret/],
    [
      ['--turn-url', 'stun:t.example'],
      { RINGTRAIN_TURN_SECRET: 'x'.repeat(32) },
      /^--turn-url: "stun:t.example" is not a turn: or turns: URL/,
    ],
    [['--turn-url', 'turn:t.example'], { RINGTRAIN_TURN_SECRET: 'short' }, /^--turn-secret: shorter than 16 characters/],
    [
      ['--turn-url', 'turn:t.example', '--turn-ttl', '10'],
      { RINGTRAIN_TURN_SECRET: 'x'.repeat(32) },
      /^--turn-ttl: expected an integer >= 60, got "10"/,
    ],
    [
      ['--turn-url', 'turn:t.example', '--turn-ttl', '999999'],
      { RINGTRAIN_TURN_SECRET: 'x'.repeat(32) },
      /^--turn-ttl: 999999 s is more than a week/,
    ],
  ])('checks the TURN settings: %j %j', (argv, env, message) => {
    expect(configError(() => parse(argv, env)).message).toMatch(message);
  });

  it.each<[string[], RegExp]>([
    [['--heartbeat-ms', '5'], /^--heartbeat-ms: expected an integer >= 10, got "5"/],
    [['--dead-after-ms', 'soon'], /^--dead-after-ms: expected an integer >= 20/],
    [
      ['--heartbeat-ms', '2000'],
      /^--dead-after-ms \(2500\) must be at least twice --heartbeat-ms \(2000\); raise --dead-after-ms or lower --heartbeat-ms/,
    ],
    [['--heartbeat-ms', '100', '--dead-after-ms', '199'], /--dead-after-ms \(199\) must be at least twice --heartbeat-ms \(100\)/],
  ])('checks the heartbeat settings: %j', (argv, message) => {
    expect(configError(() => parse(argv)).message).toMatch(message);
  });
});
