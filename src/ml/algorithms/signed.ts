/**
 * An all-gather whose contributions cannot be altered on their way. In the ring's all-gather each
 * peer's vector reaches the others through every peer between them, so a malicious forwarder
 * could change what it passes on (robust aggregation and state agreement both read these
 * vectors). Here each peer signs its vector (ECDSA P-256 over SHA-256, WebCrypto) together with
 * the room, the view's epoch, its rank and the call's number in the view, and appends the
 * signature; every receiver checks each contribution against its sender's public key, which the
 * coordinator hands out with the view. An altered, swapped or replayed contribution fails the
 * check, and the all-gather fails with a `protocol` error (the trainer goes on to the next view)
 * instead of returning it. Which forwarder altered it cannot be told from the end of the ring:
 * the check protects integrity, and a forwarder that keeps altering can stall a run, not steer it.
 *
 * A peer without WebCrypto (a page outside a secure context) has no key: its own contribution
 * travels unsigned and unchecked, and the others' are still checked by every peer that can.
 */
import { RingError } from '../../core/errors.ts';
import { fromBase64Url } from '../../protocol/auth.ts';
import { p256KeyPair } from './secure.ts';

const CURVE = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
/** A P-256 signature (r ‖ s) as 32 16-bit words, which float32 carries exactly. */
const SIG_WORDS = 32;

/** This peer's signing key pair; `pub` goes to the coordinator. */
export const signingKeyPair = (): Promise<{ privateKey: CryptoKey; pub: string }> => p256KeyPair('ECDSA', ['sign']);

/** A member's signing key from its `pub`. */
export function verifyingKey(pub: string): Promise<CryptoKey> {
  return crypto.subtle.importKey('raw', fromBase64Url(pub), CURVE, false, ['verify']);
}

export interface SignedGatherOptions {
  rank: number;
  /** Names the view: the room and its epoch. */
  context: string;
  /** This peer's signing key (null: it cannot sign). */
  privateKey: CryptoKey | null;
  /** Each rank's verifying key (null: that rank cannot sign). */
  publicKeys: readonly (CryptoKey | null)[];
}

/** What a signature covers: the view, the call, the sender's rank and its vector. */
function signedBytes(context: string, call: number, rank: number, v: Float32Array): Uint8Array<ArrayBuffer> {
  const head = new TextEncoder().encode(context);
  const out = new Uint8Array(head.length + 8 + v.byteLength);
  out.set(head);
  const dv = new DataView(out.buffer);
  dv.setUint32(head.length, call);
  dv.setUint32(head.length + 4, rank);
  out.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), head.length + 8);
  return out;
}

/** `allGather` (one view's) with every contribution signed by its sender and checked by every receiver. */
export function signedAllGather(
  allGather: (v: Float32Array) => Promise<Float32Array[]>,
  o: SignedGatherOptions,
): (v: Float32Array) => Promise<Float32Array[]> {
  let calls = 0;
  return async (v) => {
    const call = calls++;
    // NaNs become the one canonical NaN, so that no copy on the way can change their bits.
    const mine = v.map((x) => (Number.isNaN(x) ? NaN : x));
    const out = new Float32Array(v.length + SIG_WORDS);
    out.set(mine);
    if (o.privateKey) {
      const sig = new Uint8Array(await crypto.subtle.sign(SIGN, o.privateKey, signedBytes(o.context, call, o.rank, mine)));
      for (let i = 0; i < SIG_WORDS; i++) out[v.length + i] = (sig[2 * i]! << 8) | sig[2 * i + 1]!;
    }
    const parts = await allGather(out);
    const checks = parts.map(async (p, r) => {
      const key = o.publicKeys[r];
      if (r === o.rank || !key) return true;
      const sig = new Uint8Array(2 * SIG_WORDS);
      for (let i = 0; i < SIG_WORDS; i++) {
        const w = p[v.length + i]!;
        sig[2 * i] = w >> 8;
        sig[2 * i + 1] = w & 0xff;
      }
      return crypto.subtle.verify(SIGN, key, sig, signedBytes(o.context, call, r, p.subarray(0, v.length)));
    });
    const ok = await Promise.all(checks);
    const bad = ok.flatMap((good, r) => (good ? [] : [r]));
    if (bad.length > 0)
      throw new RingError(
        'protocol',
        `the contribution of rank ${bad.join(', ')} arrived altered (its signature does not verify): a peer on the ring changed it on the way`,
      );
    return parts.map((p) => p.subarray(0, v.length));
  };
}
