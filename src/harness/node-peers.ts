/**
 * Node peers as child processes (src/node/peer-main.ts), driven like tabs: each takes calls of the
 * `ringtrain` API over IPC and reports its runtime's events. Used by the CLI (`ringtrain peer
 * --node`, `ringtrain train --runtime node`), the benchmarks and the e2e tests.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import type { PeerNotice, PeerReply, PeerRequest } from '../node/peer-main.ts';
import type { RuntimeEvent } from '../runtime/events.ts';
import { startServer, type RunningServer, type ServerOptions } from '../server/app.ts';

const ENTRY = path.resolve(import.meta.dirname, '../node/peer-main.ts');
/** tsx's loader by its file URL: a bare `--import tsx` would resolve from the cwd, which need not be this project. */
const TSX = import.meta.resolve('tsx');

export interface NodePeerOptions {
  /** The room's link, e.g. http://127.0.0.1:8080/?room=lab (a private room's `#k=` included). */
  link: string;
  /** webgpu, wasm or cpu; default: the peer probes. */
  backend?: string;
  /** Extra environment, e.g. `VK_ICD_FILENAMES` for a Vulkan driver. */
  env?: NodeJS.ProcessEnv;
  /** Where the child's stdout/stderr go (default: this process's). */
  stdio?: 'inherit' | 'ignore';
  /** Time allowed for the process to start, ms (default 60000). */
  startTimeoutMs?: number;
  /** The peer's script (default src/node/peer-main.ts, run through tsx): the GPU kit passes its bundled peer. */
  entry?: { script: string; execArgv: string[] };
}

export class NodePeer extends EventEmitter<{ event: [RuntimeEvent]; exit: [number | null, NodeJS.Signals | null] }> {
  private next = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly exited: Promise<void>;

  private constructor(readonly child: ChildProcess) {
    super();
    child.on('message', (m: PeerReply | PeerNotice) => {
      if ('event' in m) this.emit('event', m.event);
      else if ('id' in m) {
        const w = this.waiting.get(m.id);
        this.waiting.delete(m.id);
        if ('error' in m) w?.reject(new Error(m.error));
        else w?.resolve(m.value);
      }
    });
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        for (const w of this.waiting.values()) w.reject(new Error(`the Node peer (pid ${child.pid}) exited (${signal ?? code})`));
        this.waiting.clear();
        this.emit('exit', code, signal);
        resolve();
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Starts a Node peer process; resolves once it listens (it has not joined the room yet: call `join`). */
  static async start(o: NodePeerOptions): Promise<NodePeer> {
    const entry = o.entry ?? { script: ENTRY, execArgv: ['--import', TSX] };
    const child = fork(entry.script, [o.link, ...(o.backend ? [o.backend] : [])], {
      execArgv: entry.execArgv,
      serialization: 'advanced',
      stdio: o.stdio === 'ignore' ? ['ignore', 'ignore', 'ignore', 'ipc'] : ['inherit', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, ...o.env },
    });
    const peer = new NodePeer(child);
    const timeoutMs = o.startTimeoutMs ?? 60_000;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the Node peer did not start within ${timeoutMs} ms`));
      }, timeoutMs);
      const onMessage = (m: PeerNotice): void => {
        if (!('ready' in m)) return;
        clearTimeout(t);
        child.off('message', onMessage);
        resolve();
      };
      child.on('message', onMessage);
      child.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`the Node peer exited (${code}) before it started`));
      });
    });
    return peer;
  }

  /** Calls `ringtrain.<method>(...args)` in the peer (`debug.poison` for a nested one, `timed` for a benchmark op). */
  call<T = unknown>(method: string, ...args: unknown[]): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, call: method, args } satisfies PeerRequest, (err) => {
        if (!err) return;
        this.waiting.delete(id);
        reject(err);
      });
    });
  }

  /** Ends the process (SIGKILL: as a crash would) and waits for it to go. */
  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    await this.exited;
  }
}

/** Starts `count` Node peers for the room at `link` (in parallel) and joins each to it. */
export async function startNodePeers(count: number, o: NodePeerOptions): Promise<NodePeer[]> {
  const peers = await Promise.all(Array.from({ length: count }, () => NodePeer.start(o)));
  try {
    await Promise.all(peers.map((p) => p.call('join')));
  } catch (e) {
    await Promise.all(peers.map((p) => p.kill('SIGKILL')));
    throw e;
  }
  return peers;
}

export interface NodeCluster {
  server: RunningServer;
  peers: NodePeer[];
  room: string;
  /** The room's link, for more peers (Node ones or tabs, when the server serves the app). */
  link: string;
  close(): Promise<void>;
}

/**
 * A server on a free loopback port (headless unless `app`: signaling and coordination, no app) and
 * `peers` Node peers joined to one room, every one of them in the view.
 */
export async function startNodeCluster(
  o: { peers: number; room?: string; app?: boolean } & Omit<NodePeerOptions, 'link'> &
    Partial<Pick<ServerOptions, 'heartbeatMs' | 'deadAfterMs' | 'log' | 'maxMessagesPerSecPerAddress'>>,
): Promise<NodeCluster> {
  // Loaded here, not at the top: cluster.ts brings the browser launcher (playwright-core), which the
  // GPU kit's bundle of NodePeer (kit/build.ts) leaves out.
  const { buildApp, PROJECT_ROOT } = await import('./cluster.ts');
  if (o.app) await buildApp(PROJECT_ROOT, true);
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    mode: o.app ? 'prod' : 'headless',
    root: PROJECT_ROOT,
    ...(o.heartbeatMs ? { heartbeatMs: o.heartbeatMs } : {}),
    ...(o.deadAfterMs ? { deadAfterMs: o.deadAfterMs } : {}),
    ...(o.log ? { log: o.log } : {}),
    ...(o.maxMessagesPerSecPerAddress ? { maxMessagesPerSecPerAddress: o.maxMessagesPerSecPerAddress } : {}),
  });
  const room = o.room ?? `node-${Math.random().toString(36).slice(2, 8)}`;
  const link = `${server.url}/?room=${room}`;
  const peers: NodePeer[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(peers.map((p) => p.kill()));
    await server.close();
  };
  try {
    peers.push(...(await startNodePeers(o.peers, { ...o, link })));
    await Promise.all(peers.map((p) => p.call('waitForView', o.peers, 120_000)));
    return { server, peers, room, link, close };
  } catch (e) {
    await close();
    throw e;
  }
}
