/**
 * The trainer's `Group` over a session: the communicator of a usable view, its collectives with
 * timeouts in proportion to what they move, all-gathers signed by every member, and the pair keys
 * of secure aggregation, all from the members' public keys the coordinator hands out with each view.
 */
import { DEFAULT_TIMEOUT_MS, type Communicator } from '../core/collectives/communicator.ts';
import { RingError } from '../core/errors.ts';
import type { View } from '../core/membership/view.ts';
import { maskKeyPair, pairKey } from '../ml/algorithms/secure.ts';
import { signedAllGather, signingKeyPair, verifyingKey } from '../ml/algorithms/signed.ts';
import type { MemberKeys } from '../protocol/index.ts';
import type { Group } from '../training/trainer.ts';

/** What the adapter needs of a session (net/session.ts's RingSession; a test's fake). */
export interface GroupSession {
  readonly peerId: string;
  readonly view: View | null;
  nextCommunicator(failedEpoch: number | undefined, o: { minPeers?: number; timeoutMs: number }): Promise<Communicator>;
  keysOf(epoch: number): Promise<Map<string, MemberKeys>>;
  reportInvalid(epoch: number, step: number, peer: string): void;
}

export interface GroupTimeouts {
  /** Base timeout of a training collective, ms; large vectors get 4 s per MB on top. */
  sumMs: number;
  /** How long a training run waits for a usable view after a failure before giving up, ms. */
  groupMs: number;
  /** How long a run with a quorum waits for enough peers, ms. */
  quorumMs: number;
}

export const GROUP_TIMEOUTS: GroupTimeouts = {
  // The communicator's default.
  sumMs: DEFAULT_TIMEOUT_MS,
  groupMs: 120_000,
  quorumMs: 30 * 60_000,
};

/** The timeout of a collective that moves `bytes`, ms: 4 s per MB on top of the base. */
export const collectiveTimeout = (t: GroupTimeouts, bytes: number): number => t.sumMs + bytes / 250;

/** Why secure aggregation cannot run here. */
export const NO_WEBCRYPTO_SECURE =
  'secure aggregation needs WebCrypto, which this page lacks (not a secure context): open the app over https or on localhost on every peer';

/** This peer's key pairs for secure aggregation and for signing (the public halves go to the coordinator on join). */
export class PeerKeys {
  private constructor(
    readonly mask: ReturnType<typeof maskKeyPair> | null,
    readonly sign: ReturnType<typeof signingKeyPair> | null,
  ) {}

  /** Fresh key pairs; none without WebCrypto (`webCrypto` false). */
  static make(webCrypto: boolean): PeerKeys {
    return webCrypto ? new PeerKeys(maskKeyPair(), signingKeyPair()) : new PeerKeys(null, null);
  }

  /** The public halves for the session's hello, once made; undefined without WebCrypto. */
  async publicKeys(): Promise<MemberKeys | undefined> {
    if (!this.mask || !this.sign) return undefined;
    return { pub: (await this.mask).pub, sig: (await this.sign).pub };
  }

  /** `gather` with every contribution signed and checked (ml/algorithms/signed.ts), with the keys of `view`. */
  async signedGather(
    s: GroupSession,
    view: View,
    rank: number,
    gather: (v: Float32Array) => Promise<Float32Array[]>,
  ): Promise<(v: Float32Array) => Promise<Float32Array[]>> {
    const keys = await s.keysOf(view.epoch);
    const publicKeys = await Promise.all(view.members.map((m) => keys.get(m.peerId)?.sig).map((sig) => (sig ? verifyingKey(sig) : null)));
    return signedAllGather(gather, {
      rank,
      context: `${view.room}|${view.epoch}`,
      privateKey: (await this.sign)?.privateKey ?? null,
      publicKeys,
    });
  }

  /** Keys shared with every other member of `view` (null at this peer's rank), from the members' public keys. */
  async pairKeys(s: GroupSession, view: View): Promise<(CryptoKey | null)[]> {
    if (!this.mask) throw new Error(NO_WEBCRYPTO_SECURE);
    const pubs = await s.keysOf(view.epoch);
    const { privateKey } = await this.mask;
    return Promise.all(
      view.members.map((m) => {
        if (m.peerId === s.peerId) return null;
        const pub = pubs.get(m.peerId)?.pub;
        if (!pub) throw new RingError('protocol', `peer ${m.peerId} sent no public key; it cannot take part in secure aggregation`);
        return pairKey(privateKey, pub, view.room, view.epoch);
      }),
    );
  }
}

export interface GroupOptions {
  keys: PeerKeys;
  /** At least this many members (a run's quorum); none: any view with this peer in its ring. */
  minPeers?: number | undefined;
  /** Called before waiting when the view has fewer than the quorum. */
  onQuorumWait?: (have: number, need: number) => void;
  timeouts?: GroupTimeouts;
}

/**
 * The group of a view newer than `failedEpoch` with at least `minPeers` members (telling
 * `onQuorumWait` when the room has fewer).
 */
export async function groupOf(s: GroupSession, o: GroupOptions, failedEpoch?: number): Promise<Group> {
  const t = o.timeouts ?? GROUP_TIMEOUTS;
  const min = o.minPeers ?? 1;
  const have = s.view?.members.length ?? 0;
  if (have < min) o.onQuorumWait?.(have, min);
  const comm = await s.nextCommunicator(failedEpoch, { minPeers: min, timeoutMs: o.minPeers ? t.quorumMs : t.groupMs });
  let maskKeysOf: Promise<(CryptoKey | null)[]> | undefined;
  let gatherOf: Promise<(v: Float32Array) => Promise<Float32Array[]>> | undefined;
  const gather = (v: Float32Array): Promise<Float32Array[]> =>
    comm.allGather(v, { timeoutMs: collectiveTimeout(t, v.byteLength * comm.size) });
  return {
    epoch: comm.view.epoch,
    rank: comm.rank,
    size: comm.size,
    // Large vectors (tree histograms run to tens of MB) get time in proportion: 4 s per MB on top
    // (4 tabs on 2 cores move a 34 MB histogram round in over a minute).
    sum: (v, wire) => comm.allreduce(v, { timeoutMs: collectiveTimeout(t, v.byteLength), ...(wire ? { wire } : {}) }),
    allGather: async (v) => (await (gatherOf ??= o.keys.signedGather(s, comm.view, comm.rank, gather)))(v),
    broadcast: (root, data) => comm.broadcast(root, data, { timeoutMs: collectiveTimeout(t, data?.byteLength ?? 0) }),
    reportInvalid: (step, ranks) => {
      for (const r of ranks) s.reportInvalid(comm.view.epoch, step, comm.view.members[r]!.peerId);
    },
    maskKeys: () => (maskKeysOf ??= o.keys.pairKeys(s, comm.view)),
  };
}
