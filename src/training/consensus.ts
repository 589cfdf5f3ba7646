/**
 * Agreement on one state, by corroboration rather than by claim. Every peer of a view states what
 * it holds in an all-gather, so every peer sees the same claims: its committed state and the state
 * before its last committed step, each as (step, digest). A state that at least two peers hold is
 * corroborated, and the corroborated state with the most steps wins: one peer alone, however many
 * steps it claims, cannot impose a state. A holder of the winning state sends it, and every
 * receiver checks the bytes against its digest before adopting them, so the sender cannot
 * substitute other bytes either.
 *
 * Why the previous state too: a fault can land after some peers received the last frame of a step
 * and before others did. The group then holds s and s + 1. When two or more peers hold s + 1 it is
 * corroborated and the others take it over; when one peer alone completed the step, every peer
 * holds s (that one held it a step ago), so s wins and the step runs again for everyone.
 *
 * Why not a plain majority: peers cut off from the room keep their old state and come back with
 * it; were they the majority, the room would go back to where they left. The most steps among
 * corroborated states keeps the room's progress.
 *
 * When no state is corroborated (a room of 2, or one holder and newcomers), the state with the
 * most steps wins, as before this defence: one liar among one honest holder cannot be outvoted.
 * Ties go to more holders, then to the state whose first holder has the lowest rank (the ring
 * follows join order, so the longest-standing member). Two liars that claim the same state
 * corroborate each other: this defends against one malicious member, not a coalition.
 *
 * Digests are SHA-256, cut to 128 bits and carried as eight 16-bit words, which float32 holds
 * exactly. Pure TypeScript (@noble/hashes): pages outside a secure context have no WebCrypto, and
 * open rooms work there too.
 */
import { sha256 } from '@noble/hashes/sha2';
import { RingError } from '../core/errors.ts';
import type { Group } from './trainer.ts';

/** 16-bit words of a digest in a claim. */
export const DIGEST_WORDS = 8;
/** States a peer claims: its committed one and the one before its last step. */
const CLAIMS = 2;
/** Values of one claim: held, then the digest. */
const CLAIM = 1 + DIGEST_WORDS;

/** The first 128 bits of SHA-256 of `bytes`, as eight 16-bit words. */
export function digestWords(bytes: Uint8Array): number[] {
  const h = sha256(bytes);
  return Array.from({ length: DIGEST_WORDS }, (_, i) => (h[2 * i]! << 8) | h[2 * i + 1]!);
}

/** One state a peer holds: `held` = its step + 1 (a positive number), and its bytes. */
export interface HeldState {
  held: number;
  bytes: Uint8Array;
}

/** A claimed state: `held` (0 = no state) and its digest. */
export interface Claim {
  held: number;
  digest: readonly number[];
}

/** The chosen state: its claim, and the ranks that hold it (ascending). */
export interface Chosen extends Claim {
  holders: number[];
}

/** Holders a state needs to be corroborated. */
const CORROBORATED = 2;

/** The state the group goes on from (`claims[rank]`: that rank's claims); null when no rank holds any. See the module comment. */
export function chooseState(claims: readonly (readonly Claim[])[]): Chosen | null {
  const groups = new Map<string, Chosen>();
  claims.forEach((mine, rank) => {
    for (const c of mine) {
      if (c.held <= 0) continue;
      const key = `${c.held}:${c.digest.join(',')}`;
      const g = groups.get(key);
      if (!g) groups.set(key, { held: c.held, digest: c.digest, holders: [rank] });
      else if (g.holders.at(-1) !== rank) g.holders.push(rank);
    }
  });
  const all = [...groups.values()];
  const corroborated = all.filter((g) => g.holders.length >= CORROBORATED);
  const better = (a: Chosen, b: Chosen): boolean =>
    a.held !== b.held
      ? a.held > b.held
      : a.holders.length !== b.holders.length
        ? a.holders.length > b.holders.length
        : a.holders[0]! < b.holders[0]!;
  return (corroborated.length > 0 ? corroborated : all).reduce<Chosen | null>((best, g) => (!best || better(g, best) ? g : best), null);
}

/**
 * Gathers every peer's claims: this peer holds `states` (at most 2: its committed state first),
 * plus `extra` values every peer reports alongside (the same count on every peer). Returns the
 * chosen state, every rank's extras (the same on every peer), and which of this peer's states it
 * is (-1: none).
 */
export async function gatherClaims(
  allGather: (v: Float32Array) => Promise<Float32Array[]>,
  states: readonly HeldState[],
  extra: readonly number[] = [],
): Promise<{ chosen: Chosen | null; extras: Float32Array[]; mine: number }> {
  if (states.length > CLAIMS) throw new RangeError(`gatherClaims: at most ${CLAIMS} states, got ${states.length}`);
  const v = new Float32Array(CLAIMS * CLAIM + extra.length);
  const digests = states.map((s) => digestWords(s.bytes));
  states.forEach((s, i) => {
    v[i * CLAIM] = s.held;
    v.set(digests[i]!, i * CLAIM + 1);
  });
  v.set(extra, CLAIMS * CLAIM);
  const parts = await allGather(v);
  const claimsOf = (p: Float32Array): Claim[] =>
    Array.from({ length: CLAIMS }, (_, i) => ({ held: p[i * CLAIM]!, digest: Array.from(p.subarray(i * CLAIM + 1, (i + 1) * CLAIM)) }));
  const chosen = chooseState(parts.map(claimsOf));
  const mine = chosen ? states.findIndex((s, i) => s.held === chosen.held && digests[i]!.every((w, j) => w === chosen.digest[j])) : -1;
  return { chosen, extras: parts.map((p) => p.subarray(CLAIMS * CLAIM)), mine };
}

/**
 * The bytes of the state `m`, taken from one of its holders ({@link senderOf}); `mine`: this
 * peer's bytes of it when it holds it (it sends them if asked). Received bytes are checked against
 * `m`'s digest; a sender whose bytes are not the state it claimed is reported and fails the view,
 * and the next view asks another holder.
 */
export async function adoptChosen(
  g: Pick<Group, 'rank' | 'epoch' | 'broadcast' | 'reportInvalid'>,
  m: Chosen,
  mine: Uint8Array | null,
  step: number,
): Promise<Uint8Array> {
  const source = senderOf(m, g.epoch);
  const bytes = await g.broadcast(source, g.rank === source ? mine : null);
  if (mine) return mine;
  const d = digestWords(bytes);
  if (!d.every((w, i) => w === m.digest[i])) {
    g.reportInvalid?.(step, [source]);
    throw new RingError(
      'protocol',
      `rank ${source} sent a state other than the one ${m.holders.length} peer(s) hold; the next view asks another holder`,
    );
  }
  return bytes;
}

/**
 * The holder that sends the winning state in view `epoch`: it rotates with the epoch, so a holder
 * that sent bad bytes (and made the view fail) is not asked again in the next view.
 */
export function senderOf(m: Chosen, epoch: number): number {
  return m.holders[epoch % m.holders.length]!;
}
