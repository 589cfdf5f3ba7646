/**
 * A Node peer process: the same runtime and `ringtrain` API a tab has, on node-datachannel's
 * WebRTC and Dawn's WebGPU (or wasm, or cpu: chosen by the same measured probe). It joins the room
 * of the link it is given and trains every run the room starts, like a volunteer tab.
 *
 * Started by `ringtrain peer --node` and `ringtrain train --runtime node` (through
 * harness/node-peers.ts), it takes calls of the API from its parent over IPC and reports the
 * runtime's events back; without a parent (run by hand) it prints them.
 *
 * argv: <room-link> [backend]
 */
import './globals.ts';
import { parseBackendPreference } from '../ml/backend.ts';
import { makeStepProbe } from '../ml/probe.ts';
import { pageApi } from '../page-api.ts';
import type { RuntimeEvent } from '../runtime/events.ts';
import { PeerRuntime } from '../runtime/runtime.ts';
import { selectNodeBackend } from './platform.ts';

/** A call from the parent: `call` names an API method (`debug.poison` for a nested one), or `timed` (a benchmark op). */
export interface PeerRequest {
  id: number;
  call: string;
  args: unknown[];
}
export type PeerReply = { id: number; value: unknown } | { id: number; error: string };
/** What the process sends its parent besides replies. */
export type PeerNotice = { event: RuntimeEvent } | { ready: { pid: number } };

const [link, backendArg] = process.argv.slice(2);
if (!link) {
  console.error('usage: peer-main <room-link> [backend]');
  process.exit(2);
}
const url = new URL(link);
const room = url.searchParams.get('room') ?? 'demo';
const secret = new URLSearchParams(url.hash.slice(1)).get('k') ?? undefined;
const prefer = parseBackendPreference(backendArg ?? url.searchParams.get('backend'));

const runtime = new PeerRuntime({
  room,
  webCrypto: true,
  origin: url.origin,
  backendSelector: () => (spec) =>
    selectNodeBackend({
      prefer,
      ...(prefer !== 'auto' ? { forcedBy: '--backend' } : {}),
      needsConv: spec.kind === 'cnn',
      probe: makeStepProbe(spec),
    }),
});
const api = pageApi(runtime, { linkSecretFor: (r) => (r === room ? secret : undefined), chartPoints: () => ({}), eventLogSize: () => 0 });

/** Benchmarks: one collective from a barrier on this peer, its ms and the bytes it sent (as harness/timing.ts in a tab). */
let benchBuf = new Float32Array(0);
async function timed(op: 'shift' | 'ring' | 'twolevel' | 'alltoall', bytes: number): Promise<{ ms: number; sent: number }> {
  const n = api.view()!.members.length;
  if (benchBuf.length !== bytes / 4) benchBuf = Float32Array.from({ length: bytes / 4 }, (_, i) => i % 1024);
  await api.barrier();
  const before = api.stats().frameBytesSent;
  const t0 = performance.now();
  if (op === 'shift') await api.shift(Math.ceil(bytes / n));
  else if (op === 'ring') await api.allreduce(benchBuf);
  else if (op === 'twolevel') await api.allreduce(benchBuf, { topology: { kind: 'auto', minPeers: 1 } });
  else await api.allToAllSum(benchBuf);
  return { ms: performance.now() - t0, sent: api.stats().frameBytesSent - before };
}

function method(call: string): (...args: unknown[]) => unknown {
  if (call === 'timed') return timed as (...args: unknown[]) => unknown;
  const [head, tail] = call.split('.');
  const owner: unknown = tail ? Reflect.get(api, head!) : api;
  const fn: unknown = typeof owner === 'object' && owner ? Reflect.get(owner, tail ?? head!) : undefined;
  if (typeof fn !== 'function') throw new Error(`the Node peer has no method "${call}"`);
  return (...args) => Reflect.apply(fn, owner, args);
}

/** The runtime's events a parent or a terminal follows (the shard and the result plots stay here). */
const FORWARDED = new Set<RuntimeEvent['type']>([
  'phase',
  'joined',
  'join-failed',
  'train',
  'trees',
  'run-started',
  'run-finished',
  'run-failed',
  'error',
]);

// A forced wasm or cpu backend is active from the start: a run loads its data (and maps it to
// random Fourier features, a large matmul) before it selects the model's backend, and did that on
// tfjs's first backend in Node, cpu (10 minutes instead of seconds for the RFF SVM's 2000 features).
if (prefer === 'wasm' || prefer === 'cpu') await selectNodeBackend({ prefer, forcedBy: '--backend' });

if (process.send) {
  const send = process.send.bind(process);
  runtime.subscribe((e) => {
    if (FORWARDED.has(e.type)) send({ event: e } satisfies PeerNotice);
  });
  process.on('message', (m: PeerRequest) => {
    void (async () => {
      try {
        send({ id: m.id, value: await method(m.call)(...m.args) } satisfies PeerReply);
      } catch (e) {
        send({ id: m.id, error: e instanceof Error ? e.message : String(e) } satisfies PeerReply);
      }
    })();
  });
  // The parent gone (killed, or its terminal closed): leave the room rather than linger.
  process.on('disconnect', () => {
    runtime.leave();
    process.exit(0);
  });
  send({ ready: { pid: process.pid } } satisfies PeerNotice);
} else {
  runtime.subscribe((e) => {
    if (e.type === 'phase') console.log(`phase: ${e.phase}`);
    else if (e.type === 'train' && e.event.type === 'backend') console.log(`backend: ${e.event.report.name} (${e.event.report.reason})`);
    else if (e.type === 'run-failed' || e.type === 'error' || e.type === 'join-failed') console.error(JSON.stringify(e));
  });
  await api.join();
  console.log(`joined room ${room} at ${url.origin} as ${api.peerId()}`);
}
