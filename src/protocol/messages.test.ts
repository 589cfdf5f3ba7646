import { describe, expect, it } from 'vitest';
import {
  type ClientMessage,
  MAX_CONTROL_BYTES,
  parseClientMessage,
  parseServerMessage,
  ProtocolError,
  type ProtocolErrorCode,
  type ServerMessage,
  serverErrorCodes,
} from './messages.ts';
import { PROTOCOL_VERSION } from './version.ts';
import { mulberry32 } from '../core/random.ts';

const text = (m: unknown): string => JSON.stringify(m);

function expectCode(r: unknown, code: ProtocolErrorCode): void {
  expect(r).toBeInstanceOf(ProtocolError);
  expect((r as ProtocolError).code).toBe(code);
}

const hello = { type: 'hello', version: PROTOCOL_VERSION, room: 'room-1', peerId: 'peer_A' };
const welcome = {
  type: 'welcome',
  version: PROTOCOL_VERSION,
  peerId: 'peer_A',
  heartbeatMs: 1000,
  deadAfterMs: 5000,
  token: 'Tok_-0123456789abcdefg',
};
const view = {
  type: 'view',
  view: {
    room: 'room-1',
    epoch: 3,
    members: [
      { peerId: 'a', rank: 0 },
      { peerId: 'b', rank: 1 },
      { peerId: 'c', rank: 2 },
    ],
  },
};

describe('parseClientMessage', () => {
  it.each<ClientMessage>([
    hello as ClientMessage,
    { type: 'heartbeat' },
    { type: 'link-down', epoch: 0, peer: 'x' },
    { type: 'link-down', epoch: 0xffff_ffff, peer: 'A'.repeat(64) },
    { type: 'leave' },
  ])('accepts a valid %j', (m) => {
    expect(parseClientMessage(text(m))).toEqual(m);
  });

  it('strips unknown fields rather than passing them on', () => {
    expect(parseClientMessage(text({ type: 'leave', extra: 1 }))).toEqual({ type: 'leave' });
  });

  it.each([PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1, 0, 999])('rejects hello version %i with bad-version', (v) => {
    const r = parseClientMessage(text({ ...hello, version: v }));
    expectCode(r, 'bad-version');
    expect((r as ProtocolError).message).toContain('reload the page');
  });

  it.each(['', '{', 'hello', '{"type":"hello",}', 'undefined', '\u0000'])('rejects non-JSON %j with bad-json', (raw) => {
    expectCode(parseClientMessage(raw), 'bad-json');
  });

  it.each<[string, unknown]>([
    ['a JSON number', 42],
    ['JSON null', null],
    ['an array', [hello]],
    ['no type', { version: 1 }],
    ['unknown type', { type: 'shout' }],
    ['type of another direction', welcome],
    ['hello without version', { type: 'hello', room: 'r', peerId: 'p' }],
    ['fractional version', { ...hello, version: 1.5 }],
    ['string version', { ...hello, version: '1' }],
    ['empty room', { ...hello, room: '' }],
    ['room with a slash', { ...hello, room: '../etc' }],
    ['peerId with a space', { ...hello, peerId: 'a b' }],
    ['peerId of 65 chars', { ...hello, peerId: 'p'.repeat(65) }],
    ['non-ASCII peerId', { ...hello, peerId: 'pé' }],
    ['negative epoch', { type: 'link-down', epoch: -1, peer: 'x' }],
    ['epoch above u32', { type: 'link-down', epoch: 2 ** 32, peer: 'x' }],
    ['fractional epoch', { type: 'link-down', epoch: 0.5, peer: 'x' }],
    ['link-down with a bad peer', { type: 'link-down', epoch: 1, peer: '' }],
  ])('rejects %s with bad-message', (_name, m) => {
    expectCode(parseClientMessage(text(m)), 'bad-message');
  });

  it('rejects input that is not a string with bad-message', () => {
    for (const raw of [undefined, null, 3, {}, new Uint8Array(4), new ArrayBuffer(2)]) {
      expectCode(parseClientMessage(raw), 'bad-message');
    }
  });

  it('rejects text longer than MAX_CONTROL_BYTES with oversized, before parsing it', () => {
    const padded = `{"type":"leave","pad":"${'x'.repeat(MAX_CONTROL_BYTES)}"}`;
    expectCode(parseClientMessage(padded), 'oversized');
    // Not even valid JSON: the size check comes first.
    expectCode(parseClientMessage('{'.repeat(MAX_CONTROL_BYTES + 1)), 'oversized');
  });

  it('accepts text of exactly MAX_CONTROL_BYTES', () => {
    const base = text({ type: 'leave', pad: '' });
    const m = `{"type":"leave","pad":"${'x'.repeat(MAX_CONTROL_BYTES - base.length)}"}`;
    expect(m.length).toBe(MAX_CONTROL_BYTES);
    expect(parseClientMessage(m)).toEqual({ type: 'leave' });
  });

  it('refuses a job config nested 30 000 deep within the size limit: the run-config schema bounds every field', () => {
    // The server re-sends a config with JSON.stringify, which recurses: nesting once crashed it.
    const config =
      '"dataset":"fashion-mnist","partition":{"scheme":"iid","seed":1},"model":"mlp","algorithm":"sgd","optimizer":{"kind":"adam","lr":0.01},"batch":32,"steps":10,"seed":1';
    const start = (arrays: number): string =>
      `{"type":"start","job":{"kind":"train","config":{${config},"hidden":${'['.repeat(arrays)}${']'.repeat(arrays)}}}}`;
    const deepest = start(30_000);
    expect(deepest.length).toBeLessThan(MAX_CONTROL_BYTES);
    expectCode(parseClientMessage(deepest), 'bad-message');
    expect((parseClientMessage(deepest) as ProtocolError).message).toContain('job.config.hidden');
  });

  it('names the offending field in the message', () => {
    const r = parseClientMessage(text({ ...hello, peerId: 'a b' }));
    expect((r as ProtocolError).message).toContain('peerId');
  });
});

describe('parseServerMessage', () => {
  it.each<ServerMessage>([
    welcome as ServerMessage,
    view as ServerMessage,
    { type: 'view', view: { room: 'r', epoch: 0, members: [] } },
    { type: 'error', code: 'id-taken', message: 'pick another id' },
  ])('accepts a valid %j', (m) => {
    expect(parseServerMessage(text(m))).toEqual(m);
  });

  it.each([PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1])('rejects a welcome of version %i with bad-version', (v) => {
    expectCode(parseServerMessage(text({ ...welcome, version: v })), 'bad-version');
  });

  it.each<[string, unknown]>([
    ['unknown type', { type: 'kick' }],
    ['client message', hello],
    ['zero heartbeat', { ...welcome, heartbeatMs: 0 }],
    ['negative deadAfterMs', { ...welcome, deadAfterMs: -5 }],
    ['unknown error code', { type: 'error', code: 'oops', message: '' }],
    ['error message too long', { type: 'error', code: 'evicted', message: 'x'.repeat(1025) }],
    ['view epoch above u32', { type: 'view', view: { ...view.view, epoch: 2 ** 32 } }],
    ['view with a bad member id', { type: 'view', view: { ...view.view, members: [{ peerId: '!', rank: 0 }] } }],
    ['view with a negative rank', { type: 'view', view: { ...view.view, members: [{ peerId: 'a', rank: -1 }] } }],
    [
      'view whose ranks are not the ring order',
      {
        type: 'view',
        view: {
          ...view.view,
          members: [
            { peerId: 'a', rank: 1 },
            { peerId: 'b', rank: 0 },
          ],
        },
      },
    ],
    [
      'view with a duplicate member',
      {
        type: 'view',
        view: {
          ...view.view,
          members: [
            { peerId: 'a', rank: 0 },
            { peerId: 'a', rank: 1 },
          ],
        },
      },
    ],
    [
      'view with more than 1024 members',
      { type: 'view', view: { ...view.view, members: Array.from({ length: 1025 }, (_, i) => ({ peerId: `p${i}`, rank: i })) } },
    ],
  ])('rejects %s with bad-message', (_name, m) => {
    expectCode(parseServerMessage(text(m)), 'bad-message');
  });

  it('rejects bad JSON and oversized text', () => {
    expectCode(parseServerMessage('{"type":'), 'bad-json');
    expectCode(parseServerMessage(' '.repeat(MAX_CONTROL_BYTES + 1)), 'oversized');
  });
});

describe('the parsers never throw', () => {
  const CASES = 100_000;
  const CODES: readonly ProtocolErrorCode[] = ['oversized', 'bad-json', 'bad-message', 'bad-version'];

  /**
   * Control-message inputs from a seeded PRNG, so that a failing case reproduces: messages of every
   * type of both directions built field by field, each field valid or wrong (out of range, of
   * another type, missing) with now and then an extra key (`__proto__`, `constructor`, ...); job
   * configs nested up to thousands deep; messages padded to MAX_CONTROL_BYTES give or take a few
   * characters (or twice it); unknown types and wrong versions. Half are then mutated character by
   * character (into non-JSON, lone surrogates and NULs too), and one in a hundred is not text at all.
   */
  function controlInputs(seed: number): () => unknown {
    const rnd = mulberry32(seed);
    const below = (n: number): number => Math.floor(rnd() * n);
    const pick = <T>(xs: readonly T[]): T => xs[below(xs.length)]!;
    type Gen = () => string;
    /** Mostly `good()`, one time in twenty (or with probability `p`) `bad()`. */
    const mostly =
      (good: Gen, bad: Gen, p = 0.05): Gen =>
      () =>
        rnd() < p ? bad() : good();
    const q = JSON.stringify;
    const HOSTILE_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'type', 'extra'];

    /** Any JSON value, nested at most `depth` deep. */
    const anyValue = (depth: number): string => {
      switch (below(depth > 0 ? 8 : 6)) {
        case 0:
          return 'null';
        case 1:
          return 'true';
        case 2:
          return String(rnd() * 1e6 - 5e5);
        case 3:
          return pick(['1e309', '-0', '1e-400', '9007199254740993']);
        case 4:
          return q('s'.repeat(below(8)));
        case 5:
          return '{}';
        case 6:
          return `[${anyValue(depth - 1)},${anyValue(depth - 1)}]`;
        default:
          return `{${q(pick(HOSTILE_KEYS))}:${anyValue(depth - 1)}}`;
      }
    };
    /** Arrays or objects nested a few levels, dozens, or thousands deep. */
    const deep = (): string => {
      const d = pick([2, 40, below(12_000)]);
      return rnd() < 0.5 ? '['.repeat(d) + ']'.repeat(d) : `${'{"a":'.repeat(d)}1${'}'.repeat(d)}`;
    };
    /** A JSON object of `fields`, each present with probability 0.95, sometimes with an extra (often hostile) key. */
    const obj = (fields: Record<string, Gen>): Gen => {
      const entries = Object.entries(fields).map(([k, v]) => [`${q(k)}:`, v] as const);
      return () => {
        const parts = entries.flatMap(([k, v]) => (rnd() < 0.95 ? [k + v()] : []));
        if (rnd() < 0.1) parts.splice(below(parts.length + 1), 0, `${q(pick(HOSTILE_KEYS))}:${anyValue(2)}`);
        return `{${parts.join(',')}}`;
      };
    };
    const list = (item: Gen, max: number): Gen =>
      mostly(
        () => `[${Array.from({ length: below(max + 1) }, item).join(',')}]`,
        () => pick(['{}', 'null', '"[]"']),
      );
    const oneOf = (xs: readonly string[]): Gen =>
      mostly(
        () => q(pick(xs)),
        () => pick(['"nope"', '""', '0', 'null']),
      );

    const id = mostly(
      () => q(`p${below(1000)}`),
      () => pick(['""', '"a b"', q('p'.repeat(65)), '"pé"', '"../x"', '7', 'null']),
    );
    const u32 = mostly(
      () => String(pick([0, 1, below(1000), 0xffff_ffff])),
      () => pick(['-1', '4294967296', '0.5', '1e309', '-1e309', '"3"', 'null', '[]']),
    );
    const amount = mostly(
      () => String(rnd() * 1000),
      () => pick(['-1', '1e16', '1e309', '"1"', 'null']),
    );
    const positive = mostly(
      () => String(1 + below(10_000)),
      () => pick(['0', '-5', '1.5', '1e400', '"100"']),
    );
    const text = (max: number): Gen =>
      mostly(
        () => q('m'.repeat(below(20))),
        () => pick([q('m'.repeat(max + 1)), '1', '{}']),
      );
    const b64 = (n: number): Gen =>
      mostly(
        () => q('A_-z9'.repeat(n).slice(0, n)),
        () => pick([q('A'.repeat(n - 1)), q(`${'A'.repeat(n - 1)}+`), '1']),
      );
    const version = mostly(
      () => String(PROTOCOL_VERSION),
      () => pick([String(PROTOCOL_VERSION + 1), '0', '-1', '1.5', `"${PROTOCOL_VERSION}"`, '1e309']),
      0.2,
    );
    const lr = mostly(
      () => String(0.001 + rnd() * 0.5),
      () => pick(['0', '-1', '11', '"0.1"', 'null']),
    );
    // A run config (the schema in run-config.ts), now and then with a field nested deep.
    const config = mostly(
      () =>
        obj({
          dataset: oneOf(['fashion-mnist', 'local']),
          partition: obj({ scheme: oneOf(['iid', 'dirichlet']), seed: u32 }),
          model: oneOf(['softmax', 'cnn']),
          algorithm: oneOf(['sgd', 'gd']),
          optimizer: obj({ kind: oneOf(['adam', 'sgd']), lr }),
          batch: positive,
          steps: positive,
          seed: u32,
          ...(rnd() < 0.05 ? { hidden: deep } : {}),
        })(),
      () => pick(['[]', 'null', '"{}"']),
    );
    const job = obj({ kind: oneOf(['train']), config });
    const stats = obj({
      state: oneOf(['idle', 'training', 'done']),
      backend: text(64),
      step: u32,
      shard: u32,
      ...Object.fromEntries(
        ['samplesPerSec', 'computeMs', 'readbackMs', 'allreduceMs', 'applyMs', 'sendBytesPerSec'].map((k) => [k, amount]),
      ),
    });
    /** Ring members whose ranks are their indexes, with now and then a wrong one (or a duplicate id). */
    const members: Gen = () =>
      `[${Array.from({ length: below(6) }, (_, i) => (rnd() < 0.95 ? `{"peerId":"m${i}","rank":${i}}` : `{"peerId":${pick(['"m0"', id()])},"rank":${u32()}}`)).join(',')}]`;
    const byType = Object.entries<Record<string, Gen>>({
      hello: {
        version,
        room: id,
        peerId: id,
        epoch: u32,
        auth: obj({ proof: b64(43), key: b64(43) }),
        keys: obj({ pub: b64(87), sig: b64(87) }),
      },
      heartbeat: {},
      leave: {},
      'link-down': { epoch: u32, peer: id },
      resync: { epoch: u32 },
      start: { job },
      finished: { run: u32 },
      stats: { stats },
      invalid: { epoch: u32, step: u32, peer: id },
      challenge: {
        nonce: mostly(
          () => q('n'.repeat(16 + below(49))),
          () => pick([q('n'.repeat(15)), q('n'.repeat(65)), '"not a nonce!!!!!!"']),
        ),
      },
      welcome: { version, peerId: id, heartbeatMs: positive, deadAfterMs: positive, token: b64(22) },
      view: { view: obj({ room: id, epoch: u32, members }) },
      run: { run: u32, by: id, job },
      keys: { epoch: u32, keys: list(obj({ peerId: id, pub: b64(87), sig: b64(87) }), 4) },
      'room-stats': { peers: list(obj({ peerId: id, stats }), 4) },
      error: { code: oneOf(serverErrorCodes), message: text(1024) },
    });
    const known = byType.map(([type, fields]) => obj({ type: () => q(type), ...fields }));
    const unknown = obj({ type: () => q(pick(['shout', '', 'HELLO', '__proto__', 'constructor', 'toString'])), epoch: u32 });
    const message: Gen = () => (rnd() < 0.95 ? pick(known) : unknown)();
    const PAD = 'x'.repeat(2 * MAX_CONTROL_BYTES);
    /** `m` (an object) with a "pad" field first that brings it to MAX_CONTROL_BYTES give or take a character, or to twice it. */
    const padded = (m: string): string => {
      const size = MAX_CONTROL_BYTES + pick([-1, 0, 1, 2, MAX_CONTROL_BYTES]);
      return `{"pad":"${PAD.slice(0, Math.max(0, size - m.length - 9))}",${m.slice(1)}`;
    };
    const whole: Gen = () => {
      const r = rnd();
      if (r < 0.01) return deep();
      if (r < 0.02) return pick(['42', 'null', '"hello"', '[]', `[${message()}]`]);
      return message();
    };
    const ALPHABET = [...'{}[]":,0123456789-+.eE tfnulrs\\/abcxyz', '\u0000', '\u001f', 'é', '\ud800', '\udc00', '\ufeff', '\u2028', '😀'];
    /** 1 to 4 edits: replace, delete, insert, duplicate a slice, truncate. */
    const mutate = (s: string): string => {
      for (let k = 1 + below(4); k > 0; k--) {
        const at = below(s.length + 1);
        const n = 1 + below(16);
        switch (below(5)) {
          case 0:
            s = s.slice(0, at) + pick(ALPHABET) + s.slice(at + 1);
            break;
          case 1:
            s = s.slice(0, at) + s.slice(at + n);
            break;
          case 2:
            s = s.slice(0, at) + pick(ALPHABET) + s.slice(at);
            break;
          case 3:
            s = s.slice(0, at) + s.slice(at, at + n) + s.slice(at);
            break;
          default:
            s = s.slice(0, at);
        }
      }
      return s;
    };
    const notText = (s: string): unknown => pick([undefined, null, 0, {}, [s], new TextEncoder().encode(s)]);
    return () => {
      const s = whole();
      const r = rnd();
      if (r < 0.01) return notText(s);
      const t = r < 0.5 ? s : mutate(s);
      return rnd() < 0.006 ? padded(t) : t;
    };
  }

  /** True if every object in `v` is a plain object or array: no `__proto__` key swapped a prototype. */
  function plain(v: unknown): boolean {
    const todo = [v];
    while (todo.length > 0) {
      const x = todo.pop();
      if (typeof x !== 'object' || x === null) continue;
      const proto: unknown = Object.getPrototypeOf(x);
      if (proto !== Object.prototype && proto !== Array.prototype) return false;
      todo.push(...Object.values(x));
    }
    return true;
  }

  /**
   * What is wrong with `parse`'s answer `r`: nothing ('') for a ProtocolError of a known code, or
   * for a message of plain objects that can be sent on (JSON.stringify, as the coordinator does)
   * and parses back to itself.
   */
  function wrongWith(r: ClientMessage | ServerMessage | ProtocolError, parse: (raw: unknown) => typeof r): string {
    if (r instanceof ProtocolError) return CODES.includes(r.code) ? '' : `unknown code ${r.code}`;
    const sent = JSON.stringify(r);
    const back = parse(sent);
    if (back instanceof ProtocolError || JSON.stringify(back) !== sent)
      return `accepted, but ${sent.slice(0, 200)} parses back as ${String(back)}`;
    return plain(r) ? '' : 'accepted an object with a foreign prototype';
  }

  it(`returns a valid message or a typed ProtocolError for ${CASES} random and mutated inputs, both directions`, () => {
    const SEED = 0x5eed;
    const next = controlInputs(SEED);
    const parsers = { client: parseClientMessage, server: parseServerMessage };
    const tally = (): Record<ProtocolErrorCode | 'accepted', number> => ({
      accepted: 0,
      oversized: 0,
      'bad-json': 0,
      'bad-message': 0,
      'bad-version': 0,
    });
    const seen = { client: tally(), server: tally() };
    const failures: string[] = [];
    let slowestMs = 0;
    const prototypeKeys = Object.getOwnPropertyNames(Object.prototype);
    // Most inputs are rejected, and capturing each rejection's stack trace would double the time.
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      for (let i = 0; i < CASES; i++) {
        const raw = next();
        for (const side of ['client', 'server'] as const) {
          const t0 = performance.now();
          let wrong: string;
          try {
            const r = parsers[side](raw);
            seen[side][r instanceof ProtocolError ? r.code : 'accepted']++;
            wrong = wrongWith(r, parsers[side]);
          } catch (e) {
            wrong = `threw ${String(e)}`;
          }
          slowestMs = Math.max(slowestMs, performance.now() - t0);
          if (wrong && failures.length < 5) {
            const shown = typeof raw === 'string' ? `${raw.length} chars: ${JSON.stringify(raw.slice(0, 300))}` : String(raw);
            failures.push(`seed ${SEED}, case ${i}, ${side}: ${wrong}; input ${shown}`);
          }
        }
      }
    } finally {
      Error.stackTraceLimit = stackTraceLimit;
    }
    expect(failures).toEqual([]);
    // The generator reaches every outcome on both sides (so a degenerate one fails here).
    for (const counts of Object.values(seen)) {
      for (const n of Object.values(counts)) expect(n).toBeGreaterThan(CASES / 1000);
    }
    // No input takes a parser long (a backtracking pattern on 64 KiB would take seconds).
    expect(slowestMs).toBeLessThan(1000);
    expect(Object.getOwnPropertyNames(Object.prototype)).toEqual(prototypeKeys);
  });
});
