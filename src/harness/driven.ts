/**
 * A peer the CLI and the benchmarks drive, whatever it runs in: a Chromium tab (through
 * Playwright) or a Node peer process (through IPC). Both expose the same `ringtrain` API.
 */
import type { Page } from 'playwright-core';
import type { Job } from '../protocol/index.ts';
import type { TrainEvent, TrainResult } from '../training/trainer.ts';
import type { TreeEvent, TreeResult } from '../training/trees.ts';
import type { NodePeer } from './node-peers.ts';
import type { Op } from './timing.ts';

export type RunEvent = TrainEvent | TreeEvent;

export interface DrivenPeer {
  /** `ringtrain.<method>(...args)` in the peer (`debug.<name>` for a drill or probe). */
  call<T = unknown>(method: string, ...args: unknown[]): Promise<T>;
  /** Trains `job` with the room; `onEvent` gets this peer's training events. */
  run(job: Job, onEvent?: (e: RunEvent) => void): Promise<TrainResult | TreeResult>;
  /** One collective from a barrier (benchmarks): this peer's ms and the bytes it sent. */
  timed(op: Op, bytes: number): Promise<{ ms: number; sent: number }>;
}

declare global {
  interface Window {
    __ringtrainProgress?: (e: RunEvent) => void;
    benchBuf?: Float32Array;
  }
}

/** A tab. Progress reaches `onEvent` through a function exposed to the page (once per page). */
export function pagePeer(page: Page): DrivenPeer {
  let listener: ((e: RunEvent) => void) | null = null;
  let exposed: Promise<unknown> | null = null;
  return {
    call: <T>(method: string, ...args: unknown[]) =>
      page.evaluate(
        ([m, a]) => {
          const [head, tail] = m.split('.');
          const owner: unknown = tail ? Reflect.get(window.ringtrain, head!) : window.ringtrain;
          return Reflect.apply(Reflect.get(owner as object, tail ?? head!) as (...x: unknown[]) => unknown, owner, a);
        },
        [method, args] as const,
      ) as Promise<T>,
    run: async (job, onEvent) => {
      listener = onEvent ?? null;
      if (onEvent) await (exposed ??= page.exposeFunction('__ringtrainProgress', (e: RunEvent) => listener?.(e)));
      const report = !!onEvent;
      return job.kind === 'train'
        ? page.evaluate(([c, r]) => window.ringtrain.train(c, r ? (e) => window.__ringtrainProgress?.(e) : undefined), [
            job.config,
            report,
          ] as const)
        : page.evaluate(([c, r]) => window.ringtrain.trainTrees(c, r ? (e) => window.__ringtrainProgress?.(e) : undefined), [
            job.config,
            report,
          ] as const);
    },
    timed: (op, bytes) =>
      page.evaluate(
        async ([op, bytes]) => {
          const api = window.ringtrain;
          const n = api.view()!.members.length;
          if (window.benchBuf?.length !== bytes / 4) window.benchBuf = Float32Array.from({ length: bytes / 4 }, (_, i) => i % 1024);
          const data = window.benchBuf;
          await api.barrier();
          const before = api.stats().frameBytesSent;
          const t0 = performance.now();
          if (op === 'shift') await api.shift(Math.ceil(bytes / n));
          else if (op === 'ring') await api.allreduce(data);
          else if (op === 'twolevel') await api.allreduce(data, { topology: { kind: 'auto', minPeers: 1 } });
          else await api.allToAllSum(data);
          return { ms: performance.now() - t0, sent: api.stats().frameBytesSent - before };
        },
        [op, bytes] as const,
      ),
  };
}

/** A Node peer process: its runtime's training events are forwarded over IPC. */
export function nodePeer(p: NodePeer): DrivenPeer {
  return {
    call: (method, ...args) => p.call(method, ...args),
    run: async (job, onEvent) => {
      const forward = (e: { type: string; event?: unknown }): void => {
        if (e.type === 'train' || e.type === 'trees') onEvent?.(e.event as RunEvent);
      };
      p.on('event', forward);
      try {
        return await p.call<TrainResult | TreeResult>(job.kind === 'train' ? 'train' : 'trainTrees', job.config);
      } finally {
        p.off('event', forward);
      }
    },
    timed: (op, bytes) => p.call('timed', op, bytes),
  };
}
