/**
 * PeerJS's `Peer` class wherever it loads. Browsers (through Vite) get the package's ES module,
 * which exports it by name; Node loads its CommonJS build, whose names Node cannot see and which
 * therefore sit on the default export.
 */
import * as peerjs from 'peerjs';

type PeerClass = typeof peerjs.Peer;

export const Peer: PeerClass = peerjs.Peer ?? (Reflect.get(peerjs.default, 'Peer') as PeerClass);
export type Peer = peerjs.Peer;
