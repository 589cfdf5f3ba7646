/**
 * Secure aggregation on the ring (pairwise masking, as in Bonawitz et al.): every pair of peers
 * shares a key (ECDH on P-256, public keys exchanged through the coordinator, the key bound to the
 * room and the view's epoch by HKDF). For step t both peers of a pair draw the same mask from
 * AES-CTR under their key; the lower rank adds it, the higher rank subtracts it.
 *
 * The arithmetic is modular, so the masks cancel exactly and hide exactly: each value becomes a
 * fixed-point integer q = round(x · S) in 32-bit two's complement (S: `secureAggregation.scale`,
 * default {@link SECURE_SCALE}), the masks are raw keystream words, uniform over Z_2^32, and the
 * ring adds words modulo 2^32 (the `u32` wire, protocol/wire.ts). A masked contribution is then
 * uniformly distributed whatever the gradient, and the sum comes out as Σ round(x · S) / S: each
 * peer's rounding errs by at most 1 / (2S) per value, and nothing else is lost.
 *
 * The sum must stay within int32: |Σ q| < 2^31, i.e. |sum| < 2^31 / S (524 288 at the default).
 * So that no peer can wrap it, each of the N peers clamps its q to ±⌊(2^31 − 1) / N⌋, i.e. its
 * values to about ±2^31 / (N · S) (131 072 for N = 4 at the default): a finite value beyond that
 * saturates there, as float16 does, and training goes on with that coordinate clipped. Gradient
 * sums, losses and random-k's coordinates are of the gradient's size; PowerSGD's P factors are not
 * (P = M·Q with Q the last step's summed factor, orthonormalised only after the sum, so P grows as
 * the gradient squared): with large full-batch sums they can reach the bound, where a smaller
 * scale is needed. A NaN or ±Inf has no fixed-point value: the peer that holds one says so in a
 * clear count added to the vector, and every peer's sum comes out NaN, so the gradient guard sees
 * a broken step as it does without the masks.
 *
 * A peer that drops after masking leaves the step unfinished; the trainer runs it again on the next
 * view, with that view's keys. WebCrypto only, in browsers and in Node.
 */
import { fromBase64Url, toBase64Url } from '../../protocol/auth.ts';
import { Contribution } from '../exchange/contribution.ts';
import type { SumOf } from '../exchange/stage.ts';

const CURVE = { name: 'ECDH', namedCurve: 'P-256' } as const;

/** A P-256 key pair for `name`; `pub` (raw point, base64url) goes to the coordinator. */
export async function p256KeyPair(name: 'ECDH' | 'ECDSA', usages: KeyUsage[]): Promise<{ privateKey: CryptoKey; pub: string }> {
  const kp = (await crypto.subtle.generateKey({ name, namedCurve: 'P-256' }, false, usages)) as CryptoKeyPair;
  return { privateKey: kp.privateKey, pub: toBase64Url(new Uint8Array(await crypto.subtle.exportKey('raw', kp.publicKey))) };
}

/** This peer's key pair for secure aggregation in a session. */
export const maskKeyPair = (): Promise<{ privateKey: CryptoKey; pub: string }> => p256KeyPair('ECDH', ['deriveBits']);

/** The AES-CTR key this peer shares with the owner of `theirPub`, for `room` at view `epoch`. */
export async function pairKey(privateKey: CryptoKey, theirPub: string, room: string, epoch: number): Promise<CryptoKey> {
  const pub = await crypto.subtle.importKey('raw', fromBase64Url(theirPub), CURVE, false, []);
  const shared = await crypto.subtle.deriveBits({ name: 'ECDH', public: pub }, privateKey, 256);
  const hkdf = await crypto.subtle.importKey('raw', shared, 'HKDF', false, ['deriveKey']);
  const info = new TextEncoder().encode(`ringtrain-mask|${room}|${epoch}`);
  return crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(32), info },
    hkdf,
    { name: 'AES-CTR', length: 256 },
    false,
    ['encrypt'],
  );
}

/**
 * Default fixed-point scale: 2^12 resolves 2.4e-4 (a gradient summed over a local batch of b
 * samples errs by at most 1.2e-4 / b per coordinate of the mean) and leaves room for a full
 * shard's loss sum (2.3 × 15 000 samples for Fashion-MNIST over 4 peers) below the clamp.
 */
export const SECURE_SCALE = 2 ** 12;

/** `length` mask words for step `step`: the AES-CTR keystream under `key`, uniform over Z_2^32. */
export async function maskFor(key: CryptoKey, step: number, length: number): Promise<Uint32Array> {
  const counter = new Uint8Array(16);
  new DataView(counter.buffer).setUint32(4, step >>> 0);
  return new Uint32Array(await crypto.subtle.encrypt({ name: 'AES-CTR', counter, length: 64 }, key, new Uint8Array(length * 4)));
}

/** The largest |q| each of `peers` may contribute: together they stay below 2^31, so the int32 sum never wraps. */
export function clampBound(peers: number): number {
  return Math.floor((2 ** 31 - 1) / peers);
}

/**
 * A sum in which this peer's contribution is masked: `keys[j]` is the key shared with rank j (null
 * for this peer's own rank; `keys.length` is the group's size). The result is Σ round(x · scale) /
 * scale exactly, then rounded to float32 (see the module comment). The contribution's public tail
 * (a packed gradient's sample count, which must stay a whole number; none for PowerSGD's second
 * round) is summed unmasked, as float32; the loss is masked with the body.
 *
 * On the wire: `[masked words | the public tail | broken]` (`broken`: how many peers held a NaN or
 * ±Inf), u32. One copy out (the words); the sum comes back decoded in place.
 */
export function maskedSum(sum: SumOf, rank: number, keys: (CryptoKey | null)[], step: number, scale = SECURE_SCALE): SumOf {
  return async (c) => {
    const clear = c.publicTail;
    const masked = c.length - clear;
    const bound = clampBound(keys.length);
    const wire = Contribution.zeros(masked, c.tail.slice(masked - c.bodyLength), 'u32').append({ broken: 0 });
    const words = new Uint32Array(wire.data.buffer, wire.data.byteOffset, masked);
    const v = c.data;
    let broken = 0;
    for (let i = 0; i < masked; i++) {
      const x = v[i]!;
      if (!Number.isFinite(x)) broken = 1;
      // A Uint32Array stores a negative q as its two's complement.
      else words[i] = Math.max(-bound, Math.min(bound, Math.round(x * scale)));
    }
    for (let j = 0; j < keys.length; j++) {
      const key = keys[j];
      if (j === rank || !key) continue;
      const m = await maskFor(key, step, masked);
      if (rank < j) for (let i = 0; i < masked; i++) words[i] = words[i]! + m[i]!;
      else for (let i = 0; i < masked; i++) words[i] = words[i]! - m[i]!;
    }
    wire.data.set(v.subarray(masked), masked);
    wire.set('broken', broken);
    const total = await sum(wire);
    // Decoded in place: each word's slot becomes its float.
    const out = total.data;
    const q = new Int32Array(out.buffer, out.byteOffset, masked);
    if (total.get('broken') > 0) out.fill(NaN, 0, masked);
    else for (let i = 0; i < masked; i++) out[i] = q[i]! / scale;
    return c.like(out.subarray(0, c.length));
  };
}
