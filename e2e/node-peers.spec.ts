import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TrainConfig, TrainEvent, TrainResult } from '../src/training/trainer.ts';
import type { RuntimeEvent } from '../src/runtime/events.ts';
import { MLP_CONFIG } from '../src/harness/drills.ts';
import { relativeDifference } from '../src/ml/compare.ts';
import { startNodeCluster, startNodePeers, type NodePeer } from '../src/harness/node-peers.ts';
import { BIN, expect, newContext, openPeers, QUICK_RUN, ringtrain, roomName, test } from './peers.ts';

/**
 * A room mixing 2 Chromium tabs and 2 Node peers (node-datachannel's WebRTC, the same runtime and
 * protocol): exact sums across all four, then sync SGD with equal checksums everywhere.
 */
test('2 tabs and 2 Node peers in one room: exact allreduce, then training with identical weights on all four', async ({
  ringBrowser,
  baseURL,
}) => {
  test.setTimeout(240_000);
  const room = roomName('mixed-node');
  const ctx = await newContext(ringBrowser, baseURL!);
  const tabs = await openPeers(ctx, 2, room, { backend: 'wasm' });
  let nodes: NodePeer[] = [];
  try {
    nodes = await startNodePeers(2, { link: `${baseURL}/?room=${room}`, backend: 'wasm' });
    await Promise.all([...tabs.map((t) => t.waitForMembers(4, 60_000)), ...nodes.map((n) => n.call('waitForView', 4, 60_000))]);
    // Rank-distinct integers: the sums are exact, and any lost or doubled part shows.
    const vecs = [0, 1, 2, 3].map((r) => Float32Array.from({ length: 50_000 }, (_, i) => ((i * (r + 2)) % 997) - 400));
    const expected = Float32Array.from({ length: 50_000 }, (_, i) => vecs.reduce((a, v) => a + v[i]!, 0));
    const sums = await Promise.all([
      ...tabs.map((t, r) =>
        t.page.evaluate(
          async ([r, n]) => {
            const v = Float32Array.from({ length: n }, (_, i) => ((i * (r + 2)) % 997) - 400);
            return Array.from(await window.ringtrain.allreduce(v));
          },
          [r, 50_000] as const,
        ),
      ),
      ...nodes.map(async (p, i) => Array.from(await p.call<Float32Array>('allreduce', vecs[i + 2]))),
    ]);
    for (const s of sums) expect(s).toEqual(Array.from(expected));

    const config: TrainConfig = { ...MLP_CONFIG, steps: 40, checksumEvery: 20 };
    const results = await Promise.all([
      ...tabs.map((t) => t.page.evaluate((c) => window.ringtrain.train(c), config)),
      ...nodes.map((p) => p.call<TrainResult>('train', config)),
    ]);
    expect(new Set(results.map((r) => r.checksum)).size).toBe(1);
    expect(results.map((r) => r.steps)).toEqual([40, 40, 40, 40]);
    // 40 steps of 128 reach well above chance (0.10) on the held-out split.
    for (const r of results) expect(r.accuracy).toBeGreaterThan(0.6);
    expect(results.slice(2).map((r) => r.backend)).toEqual(['wasm', 'wasm']);
  } finally {
    await Promise.all(nodes.map((n) => n.kill()));
    await ctx.close();
  }
});

test('ringtrain train --runtime node: 3 Node peers, no browser, print the accuracy and write the model', async () => {
  test.setTimeout(150_000);
  const out = mkdtempSync(path.join(tmpdir(), 'ringtrain-node-cli-'));
  try {
    const r = await ringtrain(
      ['train', '--runtime', 'node', '--peers', '3', ...QUICK_RUN, '--out', out],
      // No browser anywhere: a Node run must not look for one.
      { RINGTRAIN_CHROMIUM: '/nonexistent/chromium' },
    );
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toContain('starting the server and 3 Node peer(s)');
    const m = /done in [\d.]+ s; test accuracy ([\d.]+)%; model checksum ([0-9a-f]{8}) on all 3 peers/.exec(r.out);
    expect(m, r.out).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(85);
    expect(readFileSync(path.join(out, 'ringtrain-softmax.weights.bin')).byteLength).toBe(36 * 4);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

for (const algo of [
  { name: 'sync SGD', config: {} },
  { name: 'DiLoCo (H 5, int8 deltas)', config: { algorithm: 'diloco', localSteps: 5, compression: { kind: 'int8' } } },
] as const)
  test(`${algo.name}: a volunteer joins mid-run through "ringtrain peer --node", a Node peer is killed by PID: the run ends with equal weights`, async () => {
    test.setTimeout(240_000);
    const serverLog: string[] = [];
    const cluster = await startNodeCluster({ peers: 3, backend: 'cpu', stdio: 'ignore', log: (l) => serverLog.push(l) });
    // Run from another directory, as a volunteer would: the Node peers must still find their loader.
    const volunteer = spawn(process.execPath, [BIN, 'peer', cluster.link, '--node', '--backend', 'cpu'], {
      cwd: tmpdir(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let said = '';
    const heard: ((text: string) => void)[] = [];
    const onText = (b: Buffer): void => {
      said += b.toString();
      for (const h of heard) h(said);
    };
    volunteer.stdout.on('data', onText);
    volunteer.stderr.on('data', onText);
    /** Resolves when the volunteer's output matches `re` (rejecting after `ms`). */
    const output = (re: RegExp, ms: number): Promise<RegExpExecArray> =>
      new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`the volunteer did not print ${re} within ${ms} ms:\n${said}`)), ms);
        const check = (text: string): void => {
          const m = re.exec(text);
          if (!m) return;
          clearTimeout(t);
          resolve(m);
        };
        heard.push(check);
        check(said);
      });
    /** Resolves with the first of `peer`'s training events that satisfies `pred`. */
    const trainEvent = (peer: NodePeer, pred: (e: TrainEvent) => boolean): Promise<TrainEvent> =>
      new Promise((resolve) => {
        const on = (e: RuntimeEvent): void => {
          if (e.type !== 'train' || !pred(e.event)) return;
          peer.off('event', on);
          resolve(e.event);
        };
        peer.on('event', on);
      });
    // Each peer's latest events, for the message of a stage that does not come.
    const recent = cluster.peers.map(() => [] as string[]);
    cluster.peers.forEach((p, i) =>
      p.on('event', (e: RuntimeEvent) => {
        const r = recent[i]!;
        r.push(JSON.stringify(e.type === 'train' ? e.event : e).slice(0, 160));
        if (r.length > 8) r.shift();
      }),
    );
    /** `p`, or a failure naming the stage that did not come within `ms`, with what the peers did last. */
    const stage = <T>(what: string, p: Promise<T>, ms: number): Promise<T> => {
      let t: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        t = setTimeout(() => {
          const last = recent.map((r, i) => `peer ${i}:\n  ${r.join('\n  ')}`).join('\n');
          reject(
            new Error(
              `${what}: not within ${ms} ms\n${last}\nvolunteer:\n${said.slice(-2000)}\nserver:\n  ${serverLog.slice(-30).join('\n  ')}`,
            ),
          );
        }, ms);
      });
      return Promise.race([p, late]).finally(() => clearTimeout(t));
    };
    try {
      const [a, b, victim] = cluster.peers as [NodePeer, NodePeer, NodePeer];
      const finished = [a, b].map(
        (p) =>
          new Promise<TrainResult>((resolve, reject) => {
            p.on('event', (e) => {
              if (e.type === 'run-finished' && e.outcome.kind === 'train') resolve(e.outcome.result);
              else if (e.type === 'run-failed') reject(new Error(e.message));
            });
          }),
      );
      const config: TrainConfig = { ...MLP_CONFIG, steps: 60, checksumEvery: 20, ...algo.config };
      await a.call('start', { kind: 'train', config });
      await stage(
        'step 5',
        trainEvent(a, (e) => e.type === 'step' && e.step >= 5),
        60_000,
      );
      // Hold the room while the volunteer starts, so that it joins a run still going.
      const paused = trainEvent(a, (e) => e.type === 'control' && e.state === 'paused');
      await a.call('pause');
      await stage('the room paused', paused, 30_000);
      await output(/Node volunteer peer\(s\) \(pids (\d+)\) in room/, 60_000);
      await output(/peer 0: training/, 60_000);
      process.kill(victim.pid, 'SIGKILL');
      await stage('the killed peer exited', victim.exited, 10_000);
      await a.call('resume');
      const [ra, rb] = await stage('the run finished', Promise.all(finished), 90_000);
      const v = await output(/peer 0: test accuracy ([\d.]+)%, checksum ([0-9a-f]{8})/, 60_000);
      expect(ra!.steps).toBe(60);
      expect([rb!.checksum, v[2]]).toEqual([ra!.checksum, ra!.checksum]);
      expect(ra!.recoveries).toBeGreaterThanOrEqual(1);
      expect(ra!.accuracy).toBeGreaterThan(0.6);
      // Ctrl-C: the volunteer leaves and says so.
      const code = new Promise<number | null>((resolve) => volunteer.once('close', resolve));
      volunteer.kill('SIGINT');
      expect(await code).toBe(130);
      expect(said).toContain('leaving the room');
    } finally {
      volunteer.kill('SIGKILL');
      await cluster.close();
    }
  });

for (const { peers, topology } of [
  { peers: 16, topology: 'one ring' },
  { peers: 32, topology: 'the two-level allreduce (groups of 4)' },
])
  test(`${peers} Node peers by ${topology} end with the weights of 1 peer (sync SGD on served data, 1e-4 relative)`, async () => {
    test.setTimeout(420_000);
    // Served data: the global batch of each step is fixed by the seed and the step, whoever computes
    // which slice; the MLP (784-32-10), 20 steps of 256 on the cpu backend.
    const config: TrainConfig = { ...MLP_CONFIG, hidden: [32], batch: 256, steps: 20 };
    const train = async (n: number): Promise<TrainResult[]> => {
      // 32 processes loading tfjs at once on 2 cores: each may take over a minute to start.
      const c = await startNodeCluster({ peers: n, backend: 'cpu', stdio: 'ignore', deadAfterMs: 30_000, startTimeoutMs: 180_000 });
      try {
        return await Promise.all(c.peers.map((p) => p.call<TrainResult>('train', config)));
      } finally {
        await c.close();
      }
    };
    const [solo] = await train(1);
    const ring = await train(peers);
    expect(ring).toHaveLength(peers);
    expect(new Set(ring.map((r) => r.checksum)).size).toBe(1);
    expect(ring[0]!.steps).toBe(20);
    expect(ring[0]!.backend).toBe('cpu');
    const diff = relativeDifference(ring[0]!.weights, solo!.weights);
    console.log(
      `${peers} Node peers vs 1: relative weight difference ${diff.toExponential(2)}, accuracy ${ring[0]!.accuracy} vs ${solo!.accuracy}`,
    );
    expect(diff).toBeLessThan(1e-4);
    // The same model, not merely the same start: training moved the weights well beyond that.
    expect(ring[0]!.accuracy).toBeGreaterThan(0.6);
  });

test('a Node peer computing 10x slower is shrunk, then put on standby with its model kept current; the global batch stays whole', async () => {
  test.setTimeout(240_000);
  const c = await startNodeCluster({ peers: 4, backend: 'cpu', stdio: 'ignore', deadAfterMs: 30_000 });
  try {
    const events: TrainEvent[][] = c.peers.map(() => []);
    c.peers.forEach((p, i) =>
      p.on('event', (e: RuntimeEvent) => {
        if (e.type === 'train') events[i]!.push(e.event);
      }),
    );
    const slow = c.peers[3]!;
    await slow.call('debug.slow', 10);
    const config: TrainConfig = { ...MLP_CONFIG, hidden: [32], steps: 60, balance: true };
    const rs = await Promise.all(c.peers.map((p) => p.call<TrainResult>('train', config)));
    expect(new Set(rs.map((r) => r.checksum)).size).toBe(1);
    const standby = events.map((ev) => ev.flatMap((e) => (e.type === 'straggler' && e.state === 'standby' ? [e] : []))[0]);
    const off = standby[3];
    expect(off, 'the slow peer never went on standby').toMatchObject({ self: true });
    // Every peer saw the slow one go on standby at the same step.
    for (const e of standby) expect(e).toMatchObject({ rank: off!.rank, step: off!.step });
    const at = off!.step;
    // From then on it computes nothing in that view (a new view would measure everyone afresh).
    const view = events[3]!.find((e) => e.type === 'step' && e.step === at);
    for (const ev of events)
      for (const e of ev)
        if (e.type === 'step') {
          expect(e.samples).toBe(128);
          if (ev === events[3] && e.step > at && view?.type === 'step' && e.epoch === view.epoch) expect(e.localSamples).toBe(0);
        }
    console.log(`the slow Node peer went on standby at step ${at}; accuracy ${rs[0]!.accuracy}`);
    expect(at).toBeLessThan(60);
  } finally {
    await c.close();
  }
});
