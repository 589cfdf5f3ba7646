import express from 'express';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { ExpressPeerServer } from 'peer';
import type { ViteDevServer } from 'vite';
import { WebSocketServer, type WebSocket } from 'ws';
import { MAX_CONTROL_BYTES, PROTOCOL_VERSION, type ClientConfig, type IceServer } from '../protocol/index.ts';
import { CheckpointStore, registerCheckpoints } from './checkpoints.ts';
import { RoomAuth } from './room-auth.ts';
import { Coordinator, type CoordinatorOptions } from './coordinator.ts';
import { registerDatasets } from './datasets.ts';
import { trackTimers } from './timers.ts';
import { hasCredential, registerIce, type TurnOptions } from './turn.ts';

export const PEER_PATH = '/peerjs';
export const PEER_KEY = 'ringtrain';
export const COORDINATOR_PATH = '/ring';

export interface ServerOptions extends CoordinatorOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** PEM file paths; when given the server speaks HTTPS/WSS (WebGPU needs a secure context off localhost). */
  tls?: { cert: string; key: string };
  /**
   * STUN/TURN servers handed to clients. Empty by default: no public server is contacted. Those
   * with a username or credential go to admitted members only (`GET /api/rooms/<room>/ice`).
   */
  iceServers?: IceServer[];
  /** A TURN server sharing a secret with this one (coturn's `use-auth-secret`): each admitted peer gets its own time-limited credential. */
  turn?: TurnOptions;
  /**
   * 'dev' serves the app through Vite; 'prod' serves the built `dist/`; 'headless' serves no app
   * (signaling, coordination and the API only: a room of Node peers, or the GPU kit).
   */
  mode: 'dev' | 'prod' | 'headless';
  /** Project root (where index.html and dist/ live). */
  root: string;
  /** Where room checkpoints are stored (default `<root>/.ringtrain/checkpoints`). */
  checkpointDir?: string;
  /** Most bytes of checkpoints one room keeps (default 3 × 64 MiB). */
  checkpointRoomQuota?: number;
  /** Most bytes of checkpoints all rooms keep together (default 2 GiB). */
  checkpointQuota?: number;
  /**
   * How long a signaling (PeerServer) connection may stay without its id being admitted to a room
   * by the coordinator, ms (default 15000): signaling is for members, not an open relay.
   */
  signalingGraceMs?: number;
}

export interface RunningServer {
  url: string;
  port: number;
  coordinator: Coordinator;
  checkpoints: CheckpointStore;
  close(): Promise<void>;
}

/**
 * The checkpoint folder holds private rooms' keys and every checkpoint, and by default sits inside
 * the served project root (`<root>/.ringtrain/checkpoints`), where Vite's dev server would serve
 * it to anyone. No spelling of a path into its top folder inside the root (encoded, dotted, in
 * another case) is answered with anything but 404.
 */
function refuseToServe(app: express.Express, root: string, dir: string): void {
  const rel = path.relative(root, dir);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return;
  const top = path.join(root, rel.split(path.sep)[0]!).toLowerCase();
  app.use((req, res, next) => {
    let p: string;
    try {
      p = decodeURIComponent(req.path);
    } catch {
      res.status(400).end();
      return;
    }
    const file = path.join(root, path.posix.normalize(`/${p}`)).toLowerCase();
    if (file === top || file.startsWith(top + path.sep)) res.status(404).end();
    else next();
  });
}

/**
 * Starts the one-port RingTrain server: the app (Vite dev middleware or built assets), PeerJS
 * signaling under {@link PEER_PATH}, and the room coordinator's WebSocket at {@link COORDINATOR_PATH}.
 */
export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const log = o.log ?? (() => {});
  const dist = path.join(o.root, 'dist');
  // Check before anything is started, so that a failed start leaves nothing running.
  if (o.mode === 'prod' && !existsSync(path.join(dist, 'index.html'))) {
    throw new Error(`startServer: ${dist}/index.html is missing; run "npm run build" before serving in production mode`);
  }
  const app = express();
  const server = o.tls ? https.createServer({ cert: readFileSync(o.tls.cert), key: readFileSync(o.tls.key) }, app) : http.createServer(app);
  const checkpointDir = o.checkpointDir ?? path.join(o.root, '.ringtrain', 'checkpoints');
  refuseToServe(app, o.root, checkpointDir);
  // Private rooms' keys live beside the checkpoints, so a restarted server still admits their peers.
  const auth = new RoomAuth({ file: path.join(checkpointDir, 'rooms.json'), log });
  const coordinator = new Coordinator({ ...o, auth });

  const clientConfig: ClientConfig = {
    version: PROTOCOL_VERSION,
    peerPath: PEER_PATH,
    peerKey: PEER_KEY,
    coordinatorPath: COORDINATOR_PATH,
    // Anyone may read this: servers with credentials are handed to members only (registerIce).
    iceServers: (o.iceServers ?? []).filter((s) => !hasCredential(s)),
  };
  app.get('/api/config', (_req, res) => {
    res.json(clientConfig);
  });
  const isMember = (room: string, peerId: string, token: string): boolean => coordinator.holdsMembership(room, peerId, token);
  registerIce(app, { iceServers: o.iceServers ?? [], ...(o.turn ? { turn: o.turn } : {}) }, isMember);
  // Built-in datasets: each peer downloads only its own shard.
  registerDatasets(app, o.root);
  // Checkpoints: a room that empties, or this server restarting, resumes from the newest valid one.
  const checkpoints = new CheckpointStore({ dir: checkpointDir, roomQuota: o.checkpointRoomQuota, quota: o.checkpointQuota, log });
  registerCheckpoints(app, checkpoints, auth, isMember, log);

  // PeerServer: its own WebSocketServer without a server, so that it does not answer (with 400)
  // the upgrades meant for the coordinator or Vite's HMR on the same HTTP server.
  const peerWss = new WebSocketServer({ noServer: true });
  const peerApp = ExpressPeerServer(server, {
    path: '/',
    key: PEER_KEY,
    allow_discovery: false,
    createWebSocketServer: () => peerWss,
  });
  peerApp.on('disconnect', (client) => coordinator.peerGone(client.getId()));
  const graceTimers = new Set<ReturnType<typeof setTimeout>>();
  peerApp.on('connection', (client) => {
    const t = setTimeout(() => {
      graceTimers.delete(t);
      if (coordinator.isMember(client.getId())) return;
      log(`signaling for ${client.getId()} closed: not admitted to any room`);
      client.getSocket()?.close(4003, 'not admitted to a room');
    }, o.signalingGraceMs ?? 15_000);
    graceTimers.add(t);
  });
  // PeerServer re-emits socket errors and unparsable signaling messages as 'error' on its app;
  // without a listener, one non-JSON frame from any client would crash the process.
  peerApp.on('error', (e: Error) => log(`signaling error: ${e.message}`));
  // Mounting starts PeerServer's timers, which it never stops: track them to clear them on close.
  const peerTimers = trackTimers(() => app.use(PEER_PATH, peerApp));

  // Frames up to 4x the limit reach the parser, which answers with a typed error and closes;
  // larger ones are refused by ws itself (close code 1009) before they are buffered whole.
  const coordWss = new WebSocketServer({ noServer: true, maxPayload: 4 * MAX_CONTROL_BYTES });
  coordWss.on('connection', (ws: WebSocket, req: http.IncomingMessage) => {
    const session = coordinator.connect(
      {
        send: (msg) => {
          if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
        },
        close: (reason) => ws.close(4000, reason.slice(0, 120)),
      },
      req.socket.remoteAddress ?? '',
    );
    ws.on('message', (data, isBinary) => {
      // A bug in a handler must cost one connection, never the server and every room on it.
      try {
        session.message(isBinary ? null : data.toString());
      } catch (e) {
        log(`coordinator: a message handler threw (${(e as Error).message}); closing that connection`);
        ws.close(1011, 'internal error');
      }
    });
    ws.on('pong', () => session.alive());
    ws.on('close', () => session.closed());
    ws.on('error', (e) => log(`coordinator socket error: ${e.message}`));
  });

  // WebSocket pings are answered by the browser's network stack, not by the page's JavaScript: a
  // tab whose main thread is busy for seconds (WebGPU shader compilation on SwiftShader, a long
  // step) stays a member, while a closed, crashed or cut-off tab stops answering. A tab frozen
  // for good is caught by its ring neighbours' data-channel heartbeats.
  const pinger = setInterval(() => {
    for (const ws of coordWss.clients) ws.ping();
  }, coordinator.heartbeatMs);

  let vite: ViteDevServer | null = null;
  const stop = async (): Promise<void> => {
    clearInterval(pinger);
    for (const t of graceTimers) clearTimeout(t);
    coordinator.close();
    peerTimers.clear();
    for (const ws of [...coordWss.clients, ...peerWss.clients]) ws.terminate();
    await vite?.close();
    server.closeAllConnections();
    if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  try {
    if (o.mode === 'dev') {
      vite = await (await import('vite')).createServer({
        root: o.root,
        configFile: path.join(o.root, 'vite.config.ts'),
        server: { middlewareMode: true, ws: { server } },
        appType: 'spa',
      });
    }
  } catch (e) {
    await stop();
    throw e;
  }

  server.on('upgrade', (req, socket, head) => {
    const pathname = new URL(req.url ?? '/', 'http://x').pathname;
    if (pathname === `${PEER_PATH}/peerjs`) {
      peerWss.handleUpgrade(req, socket, head, (ws) => peerWss.emit('connection', ws, req));
    } else if (pathname === COORDINATOR_PATH) {
      coordWss.handleUpgrade(req, socket, head, (ws) => coordWss.emit('connection', ws, req));
    } else if (!vite) {
      socket.destroy();
    }
    // In dev mode Vite's own upgrade listener takes the HMR socket.
  });

  if (vite) {
    app.use(vite.middlewares);
  } else if (o.mode === 'headless') {
    app.use((_req, res) => res.status(404).json({ error: 'this server serves no app (headless): join with "ringtrain peer --node"' }));
  } else {
    app.use(express.static(dist));
    app.use((_req, res) => res.sendFile(path.join(dist, 'index.html')));
  }

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.port, o.host, () => {
        server.off('error', reject);
        server.on('error', (e) => log(`server error: ${e.message}`));
        resolve();
      });
    });
  } catch (e) {
    // E.g. EADDRINUSE: release Vite's watchers and the timers, or the process would never exit.
    await stop();
    throw e;
  }
  const port = (server.address() as AddressInfo).port;
  const shownHost = o.host === '0.0.0.0' || o.host === '::' ? 'localhost' : o.host;
  const url = `${o.tls ? 'https' : 'http'}://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`;

  return {
    url,
    port,
    coordinator,
    checkpoints,
    close: stop,
  };
}
