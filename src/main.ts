/**
 * Composition root: joins a room from the page, wires session events to the UI, and exposes the
 * page-level API `window.ringtrain` that tests, benchmarks and later features use.
 */
import type { CollectiveOptions } from './core/collectives/communicator.ts';
import type { TrafficStats } from './core/collectives/context.ts';
import type { View } from './core/membership/view.ts';
import { fetchShard, shardPath } from './data/shard-client.ts';
import { DataError } from './data/dataset.ts';
import { parseBackendPreference } from './ml/backend.ts';
import { selectBrowserBackend } from './ml/backends-browser.ts';
import { makeStepProbe } from './ml/probe.ts';
import { RingSession, type SessionOptions, type SessionStatus } from './net/session.ts';
import { train, type TrainConfig, type TrainEvent, type TrainResult } from './training/trainer.ts';
import { renderStatus, type PanelState } from './ui/status-panel.ts';

export interface RingTrainApi {
  /** Joins a room (default: the `room` URL parameter, else "demo"). */
  join(opts?: Partial<SessionOptions>): Promise<{ peerId: string; view: View | null }>;
  leave(): void;
  peerId(): string | null;
  status(): SessionStatus | 'idle';
  view(): View | null;
  /** Resolves when the view has `n` members (or satisfies `pred`). */
  waitForView(n: number | ((v: View) => boolean), timeoutMs?: number): Promise<View>;
  allreduce(data: Float32Array, o?: CollectiveOptions): Promise<Float32Array>;
  allreduceMean(data: Float32Array, count: number, o?: CollectiveOptions): Promise<{ mean: Float32Array; count: number }>;
  broadcast(root: number, data: Uint8Array | null, o?: CollectiveOptions): Promise<Uint8Array>;
  barrier(o?: CollectiveOptions): Promise<void>;
  /** Benchmark: concurrent ring shift of `bytes` per peer. */
  shift(bytes: number, o?: CollectiveOptions): Promise<void>;
  /** Baseline: naive all-to-all sum (opens links to every member first). */
  allToAllSum(data: Float32Array, o?: CollectiveOptions): Promise<Float32Array>;
  stats(): TrafficStats;
  /**
   * Trains with every peer of the current view (each must call it with the same config). The
   * backend is `?backend=` from the URL (webgpu, webgl, wasm, cpu), else chosen by a probe.
   */
  train(config: TrainConfig, onEvent?: (e: TrainEvent) => void): Promise<TrainResult>;
}

declare global {
  interface Window {
    ringtrain: RingTrainApi;
  }
}

const panel = document.getElementById('status-panel')!;
const form = document.getElementById('join-form') as HTMLFormElement;
const roomInput = document.getElementById('room-input') as HTMLInputElement;
const params = new URLSearchParams(location.search);
let session: RingSession | null = null;
const state: PanelState = { room: params.get('room') ?? roomInput.value, peerId: null, status: 'idle', view: null };
const draw = (): void => renderStatus(panel, state);

function need(): RingSession {
  if (!session) throw new Error('ringtrain: call join() first');
  return session;
}

async function join(opts: Partial<SessionOptions> = {}): Promise<{ peerId: string; view: View | null }> {
  if (session) return { peerId: session.peerId, view: session.view };
  const room = opts.room ?? state.room;
  state.room = room;
  state.status = 'connecting';
  delete state.error;
  draw();
  try {
    session = await RingSession.join({ ...opts, room });
  } catch (e) {
    state.status = 'idle';
    state.error = `Could not join: ${(e as Error).message}. Check that the RingTrain server is running, then try again.`;
    draw();
    throw e;
  }
  const s = session;
  state.peerId = s.peerId;
  state.view = s.view;
  state.status = s.status;
  s.events.on((e) => {
    if (e.type === 'status') {
      state.status = e.status;
      if (e.detail) state.detail = e.detail;
    } else if (e.type === 'view') {
      state.view = e.view;
    }
    draw();
  });
  form.hidden = true;
  draw();
  return { peerId: s.peerId, view: s.view };
}

window.ringtrain = {
  join,
  leave: () => {
    session?.leave();
    session = null;
    form.hidden = false;
  },
  peerId: () => session?.peerId ?? null,
  status: () => session?.status ?? 'idle',
  view: () => session?.view ?? null,
  waitForView: (n, timeoutMs = 30_000) => need().waitForView(typeof n === 'number' ? (v) => v.members.length === n : n, timeoutMs),
  allreduce: async (data, o) => (await need().communicator()).allreduce(data, o),
  allreduceMean: async (data, count, o) => (await need().communicator()).allreduceMean(data, count, o),
  broadcast: async (root, data, o) => (await need().communicator()).broadcast(root, data, o),
  barrier: async (o) => (await need().communicator()).barrier(o),
  shift: async (bytes, o) => (await need().communicator()).shift(bytes, o),
  allToAllSum: async (data, o) => {
    const s = need();
    const comm = await s.communicator();
    await s.transport.connect(comm.view.members.map((m) => m.peerId), 15_000);
    return comm.allToAllSum(data, o);
  },
  stats: () => ({ ...need().stats }),
  train: async (config, onEvent) => {
    const comm = await need().communicator();
    const prefer = parseBackendPreference(params.get('backend'));
    return train(config, {
      rank: comm.rank,
      size: comm.size,
      sum: (v) => comm.allreduce(v),
      broadcast: (root, data) => comm.broadcast(root, data),
      loadShard: async (split) => {
        const path = shardPath(config.dataset, { split, rank: comm.rank, size: comm.size, ...config.partition });
        const ds = await fetchShard(path, {
          onProgress: (loaded, total) => {
            state.loading = { label: `Loading this peer's ${split} shard`, loaded, ...(total ? { total } : {}) };
            draw();
          },
        });
        delete state.loading;
        draw();
        if (ds instanceof DataError) throw ds;
        return ds;
      },
      selectBackend: (spec) =>
        selectBrowserBackend({
          prefer,
          // A forced backend gets longer to start: the first WebGPU device of a browser on
          // SwiftShader can take over 10 s while other tabs start too.
          ...(params.has('backend') ? { forcedBy: '?backend= in the URL', initTimeoutMs: 30_000 } : {}),
          needsConv: spec.kind === 'cnn',
          probe: makeStepProbe(spec),
        }),
      emit: (e) => {
        showTraining(e);
        onEvent?.(e);
      },
    });
  },
};

function showTraining(e: TrainEvent): void {
  if (e.type === 'backend') state.backend = `${e.report.name} (${e.report.reason})`;
  else if (e.type === 'step') state.training = `step ${e.step}/${e.steps}, loss ${e.loss.toFixed(4)}, ${Math.round(e.samplesPerSec)} samples/s`;
  else if (e.type === 'eval') state.accuracy = `${(e.accuracy * 100).toFixed(2)}% on ${e.count} test samples (step ${e.step})`;
  else return;
  draw();
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  state.room = roomInput.value;
  history.replaceState(null, '', `?room=${encodeURIComponent(state.room)}`);
  join().catch(() => undefined);
});
draw();
if (params.has('room') && params.get('autojoin') !== '0') join().catch(() => undefined);
