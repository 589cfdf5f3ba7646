/**
 * Secure aggregation on the ring (pairwise masking, as in Bonawitz et al.): every pair of peers
 * shares a key (ECDH on P-256, public keys exchanged through the coordinator, the key bound to the
 * room and the view's epoch by HKDF). For step t both peers of a pair draw the same mask from
 * AES-CTR under their key; the lower rank adds it, the higher rank subtracts it. Each peer's
 * contribution then looks like noise to its neighbours, and the masks cancel in the sum, which
 * comes out as the plain sum up to float rounding (masks are scaled to `scale`; the rounding grows
 * with it). A peer that drops after masking leaves the step unfinished; the trainer runs it again
 * on the next view, with that view's keys. WebCrypto only, in browsers and in Node.
 */
import { toBase64Url } from '../../protocol/auth.ts';
import type { SumAllPeers } from './distributed.ts';

const CURVE = { name: 'ECDH', namedCurve: 'P-256' } as const;

function fromB64url(s: string): Uint8Array<ArrayBuffer> {
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** This peer's key pair for a session; `pub` (raw point, base64url) goes to the coordinator. */
export async function maskKeyPair(): Promise<{ privateKey: CryptoKey; pub: string }> {
  const kp = (await crypto.subtle.generateKey(CURVE, false, ['deriveBits'])) as CryptoKeyPair;
  return { privateKey: kp.privateKey, pub: toBase64Url(new Uint8Array(await crypto.subtle.exportKey('raw', kp.publicKey))) };
}

/** The AES-CTR key this peer shares with the owner of `theirPub`, for `room` at view `epoch`. */
export async function pairKey(privateKey: CryptoKey, theirPub: string, room: string, epoch: number): Promise<CryptoKey> {
  const pub = await crypto.subtle.importKey('raw', fromB64url(theirPub), CURVE, false, []);
  const shared = await crypto.subtle.deriveBits({ name: 'ECDH', public: pub }, privateKey, 256);
  const hkdf = await crypto.subtle.importKey('raw', shared, 'HKDF', false, ['deriveKey']);
  const info = new TextEncoder().encode(`ringtrain-mask|${room}|${epoch}`);
  return crypto.subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(32), info }, hkdf, { name: 'AES-CTR', length: 256 }, false, ['encrypt']);
}

/** `length` mask values in [-scale, scale) for step `step`: AES-CTR keystream under `key`. */
export async function maskFor(key: CryptoKey, step: number, length: number, scale: number): Promise<Float32Array> {
  const counter = new Uint8Array(16);
  new DataView(counter.buffer).setUint32(4, step >>> 0);
  const stream = new Uint32Array(await crypto.subtle.encrypt({ name: 'AES-CTR', counter, length: 64 }, key, new Uint8Array(length * 4)));
  return Float32Array.from(stream, (u) => (u / 2 ** 32 - 0.5) * 2 * scale);
}

/**
 * A sum in which this peer's contribution is masked: `keys[j]` is the key shared with rank j (null
 * for this peer's own rank). The masks cancel over the group, so the result is the plain sum up to
 * rounding. The last `clear` values (a packed gradient's sample count, which must stay a whole
 * number) are summed unmasked.
 */
export function maskedSum(sum: SumAllPeers, rank: number, keys: (CryptoKey | null)[], step: number, scale: number, clear = 0): SumAllPeers {
  return async (v) => {
    const out = Float32Array.from(v);
    const masked = Math.max(0, v.length - clear);
    for (let j = 0; j < keys.length; j++) {
      const key = keys[j];
      if (j === rank || !key) continue;
      const m = await maskFor(key, step, masked, scale);
      const sign = rank < j ? 1 : -1;
      for (let i = 0; i < masked; i++) out[i]! += sign * m[i]!;
    }
    return sum(out);
  };
}
