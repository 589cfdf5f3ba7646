/**
 * Installs, on import, what PeerJS and the coordinator client expect of a browser: WebRTC
 * (node-datachannel's RTCPeerConnection and companions) and WebSocket (ws). PeerJS decides whether
 * WebRTC is supported when its module loads, so an entry point imports this file before anything
 * that imports `net/`.
 */
import { networkInterfaces } from 'node:os';
import { RTCIceCandidate, RTCPeerConnection, RTCSessionDescription } from 'node-datachannel/polyfill';
import { WebSocket } from 'ws';

/**
 * libjuice (node-datachannel's ICE) leaves loopback addresses out of its host candidates, so on a
 * machine whose only interface is loopback (a loopback-only network namespace, as CI runs the
 * tests in) two Node peers would have no candidate at all. There, and only there, ICE binds to
 * 127.0.0.1: peers on the same machine are the only ones it can reach anyway.
 */
const LOOPBACK_ONLY = Object.values(networkInterfaces()).every((addrs) => (addrs ?? []).every((a) => a.internal));

/**
 * PeerJS hands a candidate that arrives as its connection closes to addIceCandidate; rejected
 * there, its error handler reads the closed connection's cleared fields and throws from a promise,
 * which in Node ends the process. A candidate for a closed connection is moot: it is dropped here.
 */
class PeerConnection extends RTCPeerConnection {
  constructor(config?: RTCConfiguration) {
    // node-datachannel reads its own options (bindAddress) from the same object.
    const own: RTCConfiguration & { bindAddress?: string } = LOOPBACK_ONLY ? { ...config, bindAddress: '127.0.0.1' } : { ...config };
    super(own);
  }

  override async addIceCandidate(candidate?: RTCIceCandidateInit): Promise<void> {
    try {
      await super.addIceCandidate(candidate);
    } catch (e) {
      if (this.connectionState !== 'closed') throw e;
    }
  }
}

/**
 * A browser's WebSocket reports an error as an event and goes on to close; ws's is an EventEmitter,
 * whose 'error' with no listener throws and ends the process (closing a socket that is still
 * connecting emits one: the coordinator client does so when the server is slow to answer). A
 * listener that does nothing gives it the browser's behaviour; onerror and onclose still fire.
 */
class BrowserWebSocket extends WebSocket {
  constructor(...args: ConstructorParameters<typeof WebSocket>) {
    super(...args);
    this.on('error', () => undefined);
  }
}

Object.assign(globalThis, {
  RTCPeerConnection: globalThis.RTCPeerConnection ?? PeerConnection,
  RTCSessionDescription: globalThis.RTCSessionDescription ?? RTCSessionDescription,
  RTCIceCandidate: globalThis.RTCIceCandidate ?? RTCIceCandidate,
  WebSocket: globalThis.WebSocket ?? BrowserWebSocket,
});
