/**
 * Installs, on import, what PeerJS and the coordinator client expect of a browser: WebRTC
 * (node-datachannel's RTCPeerConnection and companions) and WebSocket (ws). PeerJS decides whether
 * WebRTC is supported when its module loads, so an entry point imports this file before anything
 * that imports `net/`.
 */
import { RTCIceCandidate, RTCPeerConnection, RTCSessionDescription } from 'node-datachannel/polyfill';
import { WebSocket } from 'ws';

/**
 * PeerJS hands a candidate that arrives as its connection closes to addIceCandidate; rejected
 * there, its error handler reads the closed connection's cleared fields and throws from a promise,
 * which in Node ends the process. A candidate for a closed connection is moot: it is dropped here.
 */
class PeerConnection extends RTCPeerConnection {
  override async addIceCandidate(candidate?: RTCIceCandidateInit): Promise<void> {
    try {
      await super.addIceCandidate(candidate);
    } catch (e) {
      if (this.connectionState !== 'closed') throw e;
    }
  }
}

Object.assign(globalThis, {
  RTCPeerConnection: globalThis.RTCPeerConnection ?? PeerConnection,
  RTCSessionDescription: globalThis.RTCSessionDescription ?? RTCSessionDescription,
  RTCIceCandidate: globalThis.RTCIceCandidate ?? RTCIceCandidate,
  WebSocket: globalThis.WebSocket ?? WebSocket,
});
