/**
 * Helpers shared by the unit tests (vitest only; nothing in the app imports this folder).
 */
import type * as tf from '@tensorflow/tfjs';
import { afterEach, expect } from 'vitest';
import { Communicator } from '../core/collectives/communicator.ts';
import { Mailbox } from '../core/collectives/mailbox.ts';
import { makeView } from '../core/membership/view.ts';
import { MemoryNetwork } from '../core/memory-transport.ts';
import { DataError } from '../data/dataset.ts';
import { createModel, type ModelSpec } from '../ml/models.ts';
import { overRaw, type Exchange } from '../ml/exchange/stage.ts';

/** The DataError `f` throws (fails the test if it throws something else or nothing). */
export function dataError(f: () => unknown): DataError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(DataError);
    return e as DataError;
  }
  throw new Error('expected a DataError, nothing was thrown');
}

/** A `createModel` whose models are disposed after each test of the calling file. */
export function modelBuilder(): (spec: ModelSpec) => tf.Sequential {
  const made: tf.LayersModel[] = [];
  afterEach(() => {
    for (const m of made.splice(0)) m.dispose();
  });
  return (spec) => {
    const m = createModel(spec);
    made.push(m);
    return m;
  };
}

/** `n` Communicators (ids p0..p(n-1)) of one view on a fresh in-memory network. */
export function memoryRing(n: number, o: { chunkBytes: number; timeoutMs: number }): Communicator[] {
  const net = new MemoryNetwork();
  const ids = Array.from({ length: n }, (_, i) => `p${i}`);
  const view = makeView('r', 1, ids);
  return ids.map((id) => {
    const t = net.endpoint(id);
    return new Communicator({ transport: t, mailbox: new Mailbox(t), view, ...o });
  });
}

/** A Communicator's collectives for contributions (the wire a stage set, float32 otherwise). */
export function ringExchange(c: Communicator): Exchange {
  return overRaw(() => ({ sum: (v, wire) => c.allreduce(v, wire ? { wire } : {}), allGather: (v) => c.allGather(v) }));
}
