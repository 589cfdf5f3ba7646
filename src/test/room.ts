/**
 * A room on the in-memory transport with a minimal coordinator, for unit tests of the training
 * loop and the chaos harness: views in join order, a new epoch on every change or resync request,
 * and one Communicator per member and view (vitest and benches only; the app never imports it).
 */
import { Communicator } from '../core/collectives/communicator.ts';
import { Mailbox } from '../core/collectives/mailbox.ts';
import { RingError } from '../core/errors.ts';
import { makeView, type View } from '../core/membership/view.ts';
import { MemoryNetwork, type MemoryTransport } from '../core/memory-transport.ts';
import { holdOut, localShard, type LocalData } from '../data/local.ts';
import { gaussianBlobs } from '../data/synthetic.ts';
import { maskKeyPair, pairKey } from '../ml/algorithms/secure.ts';
import { signedAllGather, signingKeyPair, verifyingKey } from '../ml/algorithms/signed.ts';
import type { Drill, Group, TrainConfig, TrainControl, TrainEvent, TrainerDeps } from '../training/trainer.ts';

/** Seeded Gaussian blobs held in memory: 3 classes in 4 dimensions, 240 samples (a fifth held out for test). */
export const BLOBS = holdOut(gaussianBlobs({ n: 240, classes: 3, dims: 4, spread: 0.25, seed: 3 }), 'blobs', 1);

/** Full-batch GD of softmax regression on {@link BLOBS} for 20 steps: the unit tests' base run. */
export const BLOBS_GD: TrainConfig = {
  dataset: 'local',
  partition: { scheme: 'iid', seed: 2 },
  model: 'softmax',
  algorithm: 'gd',
  optimizer: { kind: 'momentum', lr: 0.3, beta: 0.9 },
  batch: 0,
  steps: 20,
  seed: 5,
};

export interface TestRoomOptions {
  /** Collective timeout, ms (default 5000). */
  timeoutMs?: number;
  /** Bytes per ring chunk (default 512: several frames per allreduce even for tiny models). */
  chunkBytes?: number;
}

export class TestRoom {
  readonly net = new MemoryNetwork();
  epoch = 0;
  members: string[] = [];
  private readonly peers = new Map<
    string,
    {
      t: MemoryTransport;
      mailbox: Mailbox;
      comm: Communicator | null;
      keys: ReturnType<typeof maskKeyPair> | null;
      signs: ReturnType<typeof signingKeyPair> | null;
    }
  >();
  private readonly changed = new Set<() => void>();
  /** Checkpoints stored through `saveCheckpoint`, newest last. */
  readonly checkpoints: Uint8Array[] = [];

  constructor(
    private readonly data: LocalData,
    private readonly o: TestRoomOptions = {},
  ) {}

  add(id: string): void {
    const t = this.net.endpoint(id);
    this.peers.set(id, { t, mailbox: new Mailbox(t), comm: null, keys: null, signs: null });
    this.members.push(id);
    this.publish();
  }

  /** Takes `id` out of the view (as the coordinator does when its socket closes). */
  remove(id: string): void {
    this.members = this.members.filter((m) => m !== id);
    this.publish();
  }

  /** A new view of the same members (as after a server restart or a resync request). */
  resync(): void {
    this.publish();
  }

  private publish(): void {
    this.epoch++;
    const view = makeView('r', this.epoch, this.members);
    for (const [id, p] of this.peers) {
      p.comm?.close();
      p.comm = this.members.includes(id)
        ? new Communicator({
            transport: p.t,
            mailbox: p.mailbox,
            view,
            chunkBytes: this.o.chunkBytes ?? 512,
            timeoutMs: this.o.timeoutMs ?? 5_000,
          })
        : null;
    }
    for (const f of [...this.changed]) f();
  }

  /** The endpoint of `id`, to inject faults. */
  transport(id: string): MemoryTransport {
    return this.peers.get(id)!.t;
  }

  async group(id: string, failedEpoch?: number): Promise<Group> {
    if (!this.members.includes(id)) throw new RingError('closed', `${id} is not a member of the room`);
    if (failedEpoch === this.epoch) this.publish();
    while (!(failedEpoch === undefined || this.epoch > failedEpoch)) {
      await new Promise<void>((resolve) => {
        const f = (): void => {
          this.changed.delete(f);
          resolve();
        };
        this.changed.add(f);
      });
    }
    if (!this.members.includes(id)) throw new RingError('closed', `${id} is not a member of the room`);
    const peer = this.peers.get(id)!;
    const comm = peer.comm!;
    const view = comm.view;
    let gather: Promise<(v: Float32Array) => Promise<Float32Array[]>> | undefined;
    return {
      epoch: view.epoch,
      rank: comm.rank,
      size: comm.size,
      sum: (v, wire) => comm.allreduce(v, wire ? { wire } : {}),
      // Signed as in the app: every member has a signing key pair (made once).
      allGather: async (v) => (await (gather ??= this.signedGather((peer.signs ??= signingKeyPair()), view, comm)))(v),
      broadcast: (root, data) => comm.broadcast(root, data),
      // Secure aggregation: every member's key pair (made once), pair keys bound to this view.
      maskKeys: async () => {
        const mine = await (peer.keys ??= maskKeyPair());
        return Promise.all(
          view.members.map(async (m) => {
            if (m.peerId === id) return null;
            const other = this.peers.get(m.peerId)!;
            return pairKey(mine.privateKey, (await (other.keys ??= maskKeyPair())).pub, view.room, view.epoch);
          }),
        );
      },
    };
  }

  private async signedGather(
    mine: ReturnType<typeof signingKeyPair>,
    view: View,
    comm: Communicator,
  ): Promise<(v: Float32Array) => Promise<Float32Array[]>> {
    const publicKeys = await Promise.all(
      view.members.map(async (m) => verifyingKey((await (this.peers.get(m.peerId)!.signs ??= signingKeyPair())).pub)),
    );
    return signedAllGather((v) => comm.allGather(v), {
      rank: comm.rank,
      context: `${view.room}|${view.epoch}`,
      privateKey: (await mine).privateKey,
      publicKeys,
    });
  }

  deps(
    id: string,
    cfg: TrainConfig,
    hooks: { control?: () => TrainControl; drill?: () => Drill | null; onEvent?: (e: TrainEvent) => void; signal?: AbortSignal } = {},
  ): TrainerDeps {
    return {
      group: (failed) => this.group(id, failed),
      loadShard: async (split, rank, size) => localShard(this.data, split, { rank, size, ...cfg.partition }),
      selectBackend: async () => ({ name: 'cpu', reason: 'test', failures: {} }),
      emit: (e) => hooks.onEvent?.(e),
      saveCheckpoint: async (bytes) => {
        this.checkpoints.push(bytes);
      },
      loadCheckpoint: async () => this.checkpoints.at(-1) ?? null,
      ...(hooks.control ? { control: hooks.control } : {}),
      ...(hooks.drill ? { drill: hooks.drill } : {}),
      ...(hooks.signal ? { signal: hooks.signal } : {}),
    };
  }
}
