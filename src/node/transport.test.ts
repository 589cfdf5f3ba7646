/**
 * The Node peer's transport: RingSessions in this Node process (node-datachannel's WebRTC, ws for
 * the coordinator) join a room on the real server and PeerServer, form a ring over real data
 * channels on loopback, and sum exactly.
 */
import './globals.ts';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RingSession } from '../net/session.ts';
import { startServer, type RunningServer } from '../server/app.ts';

const WAIT_MS = 30_000;

describe('Node peers over node-datachannel', () => {
  let server: RunningServer;
  const sessions: RingSession[] = [];

  beforeAll(async () => {
    server = await startServer({ host: '127.0.0.1', port: 0, mode: 'headless', root: '.' });
  }, WAIT_MS);

  afterAll(async () => {
    for (const s of sessions) s.leave();
    await server?.close();
  });

  const join = async (room: string, n: number): Promise<RingSession[]> => {
    const joined = await Promise.all(Array.from({ length: n }, () => RingSession.join({ room, origin: server.url })));
    sessions.push(...joined);
    await Promise.all(joined.map((s) => s.waitForView((v) => v.members.length === n, WAIT_MS)));
    return joined;
  };

  it('three Node peers sum exactly, in one frame and across many chunks', async () => {
    const peers = await join('node-ring', 3);
    const comms = await Promise.all(peers.map((s) => s.communicator(WAIT_MS)));
    const small = comms.map((_, r) => new Float32Array([r + 1, 10 * (r + 1), -r]));
    expect(await Promise.all(comms.map((c, r) => c.allreduce(small[r]!)))).toEqual(comms.map(() => new Float32Array([6, 60, -3])));
    // 300 000 floats (1.2 MB): many frames per ring segment; integers keep the sums exact.
    const n = 300_000;
    const big = comms.map((_, r) => Float32Array.from({ length: n }, (_, i) => ((i * (r + 3)) % 1000) - 500));
    const expected = Float32Array.from({ length: n }, (_, i) => big.reduce((a, v) => a + v[i]!, 0));
    const sums = await Promise.all(comms.map((c, r) => c.allreduce(big[r]!)));
    for (const s of sums) expect(s).toEqual(expected);
  }, 60_000);

  it('a peer that leaves is dropped from the view and the other two go on summing', async () => {
    const peers = await join('node-leave', 3);
    peers[2]!.leave();
    const rest = peers.slice(0, 2);
    await Promise.all(rest.map((s) => s.waitForView((v) => v.members.length === 2, WAIT_MS)));
    const comms = await Promise.all(rest.map((s) => s.communicator(WAIT_MS)));
    expect(await Promise.all(comms.map((c, r) => c.allreduce(new Float32Array([r + 1]))))).toEqual([
      new Float32Array([3]),
      new Float32Array([3]),
    ]);
  }, 60_000);

  it('a WebSocket closed while still connecting closes as in a browser, without ending the process', async () => {
    // A server that accepts the TCP connection and never answers the upgrade: a coordinator too
    // busy to answer (32 Node peers starting on 2 cores), whose client gives up and closes.
    const silent = createServer(() => undefined).listen(0, '127.0.0.1');
    await once(silent, 'listening');
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${(silent.address() as AddressInfo).port}`);
      const closed = new Promise<CloseEvent>((resolve) => {
        ws.onclose = resolve;
      });
      ws.close();
      expect((await closed).wasClean).toBe(false);
    } finally {
      silent.close();
    }
  });
});
