import { describe, expect, it } from 'vitest';
import {
  type ClientMessage,
  MAX_CONTROL_BYTES,
  parseClientMessage,
  parseServerMessage,
  ProtocolError,
  type ProtocolErrorCode,
  type ServerMessage,
} from './messages.ts';
import { PROTOCOL_VERSION } from './version.ts';
import { mulberry32 } from '../core/random.ts';

const text = (m: unknown): string => JSON.stringify(m);

function expectCode(r: unknown, code: ProtocolErrorCode): void {
  expect(r).toBeInstanceOf(ProtocolError);
  expect((r as ProtocolError).code).toBe(code);
}

const hello = { type: 'hello', version: PROTOCOL_VERSION, room: 'room-1', peerId: 'peer_A' };
const welcome = { type: 'welcome', version: PROTOCOL_VERSION, peerId: 'peer_A', heartbeatMs: 1000, deadAfterMs: 5000 };
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
      { type: 'view', view: { ...view.view, members: [{ peerId: 'a', rank: 1 }, { peerId: 'b', rank: 0 }] } },
    ],
    [
      'view with a duplicate member',
      { type: 'view', view: { ...view.view, members: [{ peerId: 'a', rank: 0 }, { peerId: 'a', rank: 1 }] } },
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

  it('returns a message or a ProtocolError for 5000 mutated messages', () => {
    const rnd = mulberry32(7);
    const seeds = [hello, welcome, view, { type: 'link-down', epoch: 1, peer: 'x' }, { type: 'error', code: 'evicted', message: 'bye' }].map(text);
    const alphabet = '{}[]":,0123456789-.eE abtypehlowvrsinmcdkux\\\u00e9\u0000';
    let accepted = 0;
    for (let i = 0; i < 5000; i++) {
      const chars = [...seeds[i % seeds.length]!];
      for (let k = 1 + Math.floor(rnd() * 3); k > 0; k--) {
        const at = Math.floor(rnd() * chars.length);
        const c = alphabet[Math.floor(rnd() * alphabet.length)]!;
        const op = rnd();
        if (op < 0.4) chars[at] = c;
        else if (op < 0.7) chars.splice(at, 1);
        else chars.splice(at, 0, c);
      }
      const raw = chars.join('');
      for (const parse of [parseClientMessage, parseServerMessage] as const) {
        const r = parse(raw);
        if (!(r instanceof ProtocolError)) {
          accepted++;
          expect(typeof r.type).toBe('string');
        } else {
          expect(['oversized', 'bad-json', 'bad-message', 'bad-version']).toContain(r.code);
        }
      }
    }
    expect(accepted).toBeGreaterThan(0);
  });
});
