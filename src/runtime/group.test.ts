import { describe, expect, it, vi } from 'vitest';
import { Communicator } from '../core/collectives/communicator.ts';
import { Mailbox } from '../core/collectives/mailbox.ts';
import { RingError } from '../core/errors.ts';
import { makeView, type View } from '../core/membership/view.ts';
import { MemoryNetwork } from '../core/memory-transport.ts';
import type { MemberKeys } from '../protocol/index.ts';
import {
  collectiveTimeout,
  GROUP_TIMEOUTS,
  groupOf,
  NO_WEBCRYPTO_SECURE,
  PeerKeys,
  type GroupSession,
  type GroupTimeouts,
} from './group.ts';

/** `ids` in one view on the in-memory network, each with key pairs and a session the adapter can use. */
async function room(ids: string[], o: { webCrypto?: boolean; members?: string[] } = {}) {
  const net = new MemoryNetwork();
  const view = makeView('r', 1, ids);
  const keys = ids.map(() => PeerKeys.make(o.webCrypto ?? true));
  const pubs = new Map<string, MemberKeys>();
  for (const [i, id] of ids.entries()) pubs.set(id, (await keys[i]!.publicKeys()) ?? {});
  const sessions = ids.map((id) => {
    const t = net.endpoint(id);
    const comm = new Communicator({ transport: t, mailbox: new Mailbox(t), view, chunkBytes: 512 });
    const roomView: View = o.members ? makeView('r', 1, o.members) : view;
    const s: GroupSession & { reported: string[] } = {
      peerId: id,
      view: roomView,
      reported: [],
      nextCommunicator: vi.fn(async () => comm),
      keysOf: async () => pubs,
      reportInvalid: (_epoch, _step, peer) => void s.reported.push(peer),
    };
    return s;
  });
  return { sessions, keys };
}

const FAST: GroupTimeouts = { sumMs: 150, groupMs: 1000, quorumMs: 5000 };

describe('groupOf', () => {
  it('sums, gathers (signed) and broadcasts over the view', async () => {
    const { sessions, keys } = await room(['a', 'b', 'c']);
    const groups = await Promise.all(sessions.map((s, i) => groupOf(s, { keys: keys[i]! })));
    expect(groups.map((g) => [g.epoch, g.rank, g.size])).toEqual([
      [1, 0, 3],
      [1, 1, 3],
      [1, 2, 3],
    ]);
    const sums = await Promise.all(groups.map((g, r) => g.sum(new Float32Array([r, 1]))));
    for (const s of sums) expect(Array.from(s)).toEqual([3, 3]);
    const gathered = await Promise.all(groups.map((g, r) => g.allGather(new Float32Array([10 + r]))));
    for (const g of gathered) expect(g.map((v) => v[0])).toEqual([10, 11, 12]);
    const sent = await Promise.all(groups.map((g, r) => g.broadcast(1, r === 1 ? new Uint8Array([7, 8]) : null)));
    for (const b of sent) expect(Array.from(b)).toEqual([7, 8]);
    const masks = await groups[0]!.maskKeys!();
    expect(masks[0]).toBeNull();
    expect(masks.slice(1).every((k) => k !== null)).toBe(true);
  });

  it('reports left-out ranks by peer id, for the view of the group', async () => {
    const { sessions, keys } = await room(['a', 'b']);
    const g = await groupOf(sessions[0]!, { keys: keys[0]! });
    g.reportInvalid!(5, [1]);
    expect(sessions[0]!.reported).toEqual(['b']);
  });

  it("a sum that a peer never joins fails within the base timeout plus the vector's share", async () => {
    const { sessions, keys } = await room(['a', 'b']);
    const g = await groupOf(sessions[0]!, { keys: keys[0]!, timeouts: FAST });
    const t0 = Date.now();
    const err = await g.sum(new Float32Array(1000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RingError);
    expect((err as RingError).code).toBe('timeout');
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(collectiveTimeout(FAST, 4000) - 20);
    expect(took).toBeLessThan(5000);
  });

  it('waits for a quorum with the quorum timeout, telling who waits; without a quorum, the group timeout', async () => {
    const { sessions, keys } = await room(['a', 'b'], { members: ['a'] });
    const waits: [number, number][] = [];
    await groupOf(sessions[0]!, { keys: keys[0]!, minPeers: 2, onQuorumWait: (have, need) => waits.push([have, need]) }, 3);
    expect(waits).toEqual([[1, 2]]);
    expect(sessions[0]!.nextCommunicator).toHaveBeenLastCalledWith(3, { minPeers: 2, timeoutMs: GROUP_TIMEOUTS.quorumMs });
    await groupOf(sessions[0]!, { keys: keys[0]!, onQuorumWait: () => waits.push([0, 0]) });
    expect(waits).toHaveLength(1);
    expect(sessions[0]!.nextCommunicator).toHaveBeenLastCalledWith(undefined, { minPeers: 1, timeoutMs: GROUP_TIMEOUTS.groupMs });
  });

  it('without WebCrypto: no public keys, and secure aggregation says why it cannot run', async () => {
    const { sessions, keys } = await room(['a', 'b'], { webCrypto: false });
    expect(await keys[0]!.publicKeys()).toBeUndefined();
    const g = await groupOf(sessions[0]!, { keys: keys[0]! });
    await expect(g.maskKeys!()).rejects.toThrow(NO_WEBCRYPTO_SECURE);
  });
});

describe('collectiveTimeout', () => {
  it('gives 4 s per MB on top of the base', () => {
    expect(collectiveTimeout(GROUP_TIMEOUTS, 0)).toBe(GROUP_TIMEOUTS.sumMs);
    expect(collectiveTimeout(GROUP_TIMEOUTS, 1_000_000)).toBe(GROUP_TIMEOUTS.sumMs + 4000);
  });
});
