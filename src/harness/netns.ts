/**
 * WAN emulation for benchmarks (Linux, root): each peer's Chromium runs in its own network
 * namespace, joined to a bridge in the root namespace where the server listens, and the kernel
 * shapes each peer's link.
 *
 *   rtbr0 10.77.0.1/24 (root namespace: the RingTrain server)
 *     ├─ rtv1h ══ rtv1n 10.77.0.11  in namespace rt-peer1 (peer 0's browser)
 *     ├─ rtv2h ══ rtv2n 10.77.0.12  in namespace rt-peer2
 *     └─ ...
 *
 * Rate: a tbf on both ends of every veth (the peer's upload and its download). Delay and loss:
 * netem on the peer's end when the kernel has it; where it has not (this machine), the delay is
 * emulated in the app instead (`?linkDelayMs=`, PeerJsTransport holds every received frame that
 * long) and loss is not emulated at all. `info` says which.
 *
 * With `isolate`, a peer's namespace holds its address as a /32 and one route, to the host's
 * address: no route leads from one peer to another, and every packet between them must go through
 * something in the root namespace (a TURN relay).
 *
 * Run the proof (2 peers; lan, home and a 10 Mbit link; 4 MiB allreduce): `npx tsx src/harness/netns.ts`.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchBrowser } from './browser.ts';
import { startCluster, type Cluster, type ClusterOptions } from './cluster.ts';
import { pagePeer } from './driven.ts';
import { median, timeOp } from './timing.ts';

export interface WanProfile {
  /** One-way latency of every link, ms. */
  delayMs: number;
  /** Each peer's upload and download rate, Mbit/s (10^6 bit). */
  rateMbit: number;
  /** Packet loss on each peer's upload, percent (netem only). */
  lossPct?: number;
}

export const WAN_PROFILES = {
  lan: { delayMs: 1, rateMbit: 1000 },
  home: { delayMs: 20, rateMbit: 50 },
  far: { delayMs: 80, rateMbit: 10, lossPct: 0.1 },
} as const satisfies Record<string, WanProfile>;

export type WanProfileName = keyof typeof WAN_PROFILES;

export interface WanInfo {
  profile: string;
  /** Who delays packets: the kernel (netem) or the app (PeerJsTransport's `linkDelayMs`). */
  delay: 'netem' | 'app';
  delayMs: number;
  /** Whether packet loss is emulated (needs netem; false also when the profile has none). */
  loss: boolean;
  lossPct: number;
  rateMbit: number;
}

export interface Wan {
  info: WanInfo;
  /** The root namespace's address on the bridge: serve the app here. */
  hostAddress: string;
  /** Namespace and address of peer `i` (0-based). */
  peers: { netns: string; address: string; hostVeth: string }[];
  /** An executable that runs `exe` with its arguments inside peer `i`'s namespace. */
  wrapper(i: number, exe: string): string;
  /**
   * Per peer: bytes the root namespace's end of its veth has carried (rx: from the peer, tx: to
   * it), and packets the shaping dropped on its upload and its download.
   */
  linkBytes(): { netns: string; rx: number; tx: number; dropsUp: number; dropsDown: number }[];
  /** Removes the namespaces, veths, bridge and wrapper scripts (idempotent). */
  destroy(): void;
}

const BRIDGE = 'rtbr0';
const SUBNET = '10.77.0';
const HOST_ADDRESS = `${SUBNET}.1`;
/** The root namespace's address on the bridge, where the server (and a test's TURN server) listen. */
export const WAN_HOST_ADDRESS = HOST_ADDRESS;
const MAX_PEERS = 200;
const netnsName = (k: number): string => `rt-peer${k}`;
const hostVeth = (k: number): string => `rtv${k}h`;
const peerVeth = (k: number): string => `rtv${k}n`;
const OURS_NETNS = /^rt-peer\d+$/;
const OURS_LINK = /^(rtv\d+[hn]|rtbr0)$/;
/** One WAN at a time on a machine: this file holds the owner's pid. */
const LOCK = path.join(tmpdir(), 'ringtrain-wan.lock');
/** The wrapper scripts' folder: `<tmp>/ringtrain-wan-XXXXXX`. */
const WRAPPER_DIR_PREFIX = 'ringtrain-wan-';

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function tc(args: string[]): void {
  execFileSync('tc', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Runs a command; its exit status and stderr, never throwing. */
function tryRun(cmd: string, args: string[]): { ok: boolean; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  return { ok: r.status === 0, err: (r.stderr ?? r.error?.message ?? '').trim() };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes namespaces, veths, the bridge and wrapper folders left by any earlier run (ours by name only); call it only while holding the WAN. */
export function removeLeftovers(): void {
  const ns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => OURS_NETNS.test(n));
  for (const n of ns) tryRun('ip', ['netns', 'del', n]);
  const links = (JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as { ifname: string }[])
    .map((l) => l.ifname)
    .filter((n) => OURS_LINK.test(n));
  for (const l of links) tryRun('ip', ['link', 'del', l]);
  for (const d of readdirSync(tmpdir()))
    if (d.startsWith(WRAPPER_DIR_PREFIX)) rmSync(path.join(tmpdir(), d), { recursive: true, force: true });
}

/**
 * Turns IPv6 off on one of our interfaces (`dev`), or for every interface of namespace `ns`. A
 * link-local address finishing duplicate-address detection a second after a link comes up is a
 * network change to Chromium, which then aborts a page load with ERR_NETWORK_CHANGED. Where the
 * kernel has no IPv6 there is nothing to do.
 */
function noIpv6(dev?: string, ns?: string): void {
  if (ns)
    tryRun('ip', ['netns', 'exec', ns, 'sh', '-c', 'for f in all default; do echo 1 > /proc/sys/net/ipv6/conf/$f/disable_ipv6; done']);
  else if (dev && existsSync(`/proc/sys/net/ipv6/conf/${dev}`)) writeFileSync(`/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`, '1');
}

/** tbf at `mbit`: a burst of 2 ms at that rate (at least 16 KiB), a queue of at most 50 ms. */
function tbfArgs(mbit: number): string[] {
  const burst = Math.max(16 * 1024, Math.ceil(((mbit * 1e6) / 8) * 0.002));
  return ['tbf', 'rate', `${mbit}mbit`, 'burst', String(burst), 'latency', '50ms'];
}

/** Warnings already given in this process (each is said once). */
const warned = new Set<string>();
function warnOnce(log: (s: string) => void, msg: string): void {
  if (warned.has(msg)) return;
  warned.add(msg);
  log(msg);
}

/**
 * Creates the bridge, one namespace per peer and the shaping of `profile` (a name from
 * {@link WAN_PROFILES} or its own numbers). Removes leftovers of a crashed run first; refuses while
 * another live process holds the WAN. `destroy` runs on exit and on SIGINT/SIGTERM as well.
 * `isolate`: no route between peers, only to the host's address (see the top of this file).
 */
export function createWan(
  profile: WanProfileName | WanProfile,
  peers: number,
  log: (s: string) => void = console.log,
  o: { isolate?: boolean } = {},
): Wan {
  const p: WanProfile = typeof profile === 'string' ? WAN_PROFILES[profile] : profile;
  if (!p) throw new Error(`createWan: unknown profile "${String(profile)}"; one of ${Object.keys(WAN_PROFILES).join(', ')}`);
  if (!Number.isInteger(peers) || peers < 1 || peers > MAX_PEERS) throw new RangeError(`createWan: ${peers} peers (1..${MAX_PEERS})`);
  if (!(p.rateMbit > 0) || !(p.delayMs >= 0)) throw new RangeError(`createWan: rate ${p.rateMbit} Mbit/s, delay ${p.delayMs} ms`);
  if (process.getuid?.() !== 0) throw new Error('createWan: needs root (network namespaces, veth, tc)');
  const label =
    typeof profile === 'string' ? profile : `custom ${p.rateMbit} Mbit/s ${p.delayMs} ms${p.lossPct ? ` ${p.lossPct}% loss` : ''}`;
  try {
    writeFileSync(LOCK, String(process.pid), { flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    const owner = Number(readFileSync(LOCK, 'utf8'));
    if (owner && owner !== process.pid && alive(owner))
      throw new Error(`createWan: process ${owner} holds the WAN emulation (${LOCK}); wait for it or end it`);
    // Left by a crashed run.
    writeFileSync(LOCK, String(process.pid));
  }
  removeLeftovers();
  const dir = mkdtempSync(path.join(tmpdir(), WRAPPER_DIR_PREFIX));
  let destroyed = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    destroy();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  const destroy = (): void => {
    if (destroyed) return;
    destroyed = true;
    process.off('exit', destroy);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    removeLeftovers();
    rmSync(dir, { recursive: true, force: true });
    if (existsSync(LOCK) && readFileSync(LOCK, 'utf8') === String(process.pid)) rmSync(LOCK, { force: true });
  };
  process.on('exit', destroy);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const loss = p.lossPct ?? 0;
  let netem = false;
  const list: Wan['peers'] = [];
  try {
    ip(['link', 'add', BRIDGE, 'type', 'bridge']);
    noIpv6(BRIDGE);
    ip(['addr', 'add', `${HOST_ADDRESS}/24`, 'dev', BRIDGE]);
    ip(['link', 'set', BRIDGE, 'up']);
    for (let k = 1; k <= peers; k++) {
      const ns = netnsName(k);
      const address = `${SUBNET}.${10 + k}`;
      ip(['netns', 'add', ns]);
      noIpv6(undefined, ns);
      ip(['link', 'add', hostVeth(k), 'type', 'veth', 'peer', 'name', peerVeth(k)]);
      noIpv6(hostVeth(k));
      ip(['link', 'set', peerVeth(k), 'netns', ns]);
      ip(['link', 'set', hostVeth(k), 'master', BRIDGE]);
      ip(['link', 'set', hostVeth(k), 'up']);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', ns, 'addr', 'add', `${address}/${o.isolate ? 32 : 24}`, 'dev', peerVeth(k)]);
      ip(['-n', ns, 'link', 'set', peerVeth(k), 'up']);
      if (o.isolate) ip(['-n', ns, 'route', 'add', `${HOST_ADDRESS}/32`, 'dev', peerVeth(k)]);
      // The peer's upload: netem (delay, loss) with tbf under it where the kernel has netem.
      if (k === 1 || netem) {
        const netemArgs = ['netem', 'delay', `${p.delayMs}ms`, ...(loss > 0 ? ['loss', `${loss}%`] : [])];
        const r = tryRun('tc', ['-n', ns, 'qdisc', 'add', 'dev', peerVeth(k), 'root', 'handle', '1:', ...netemArgs]);
        if (k === 1) {
          netem = r.ok;
          if (!netem) {
            warnOnce(
              log,
              `[wan] netem is not available in this kernel (tc: "${r.err}"): link delay is emulated in the app ` +
                `(PeerJsTransport ?linkDelayMs=, every received frame held back), packet loss is not emulated; the rate is shaped by the kernel (tbf).`,
            );
            if (loss > 0) warnOnce(log, `[wan] profile ${label}: its ${loss}% packet loss is NOT emulated (no netem).`);
          }
        } else if (!r.ok) throw new Error(`tc netem on ${ns}: ${r.err}`);
      }
      tc([
        '-n',
        ns,
        'qdisc',
        'add',
        'dev',
        peerVeth(k),
        ...(netem ? ['parent', '1:1', 'handle', '10:'] : ['root']),
        ...tbfArgs(p.rateMbit),
      ]);
      // The peer's download.
      tc(['qdisc', 'add', 'dev', hostVeth(k), 'root', ...tbfArgs(p.rateMbit)]);
      list.push({ netns: ns, address, hostVeth: hostVeth(k) });
    }
  } catch (e) {
    destroy();
    const err = e as Error & { stderr?: Buffer };
    throw new Error(`createWan: ${err.message}${err.stderr?.length ? `: ${err.stderr.toString().trim()}` : ''}`);
  }

  const wrappers = new Map<string, string>();
  return {
    info: {
      profile: label,
      delay: netem ? 'netem' : 'app',
      delayMs: p.delayMs,
      loss: netem && loss > 0,
      lossPct: netem ? loss : 0,
      rateMbit: p.rateMbit,
    },
    hostAddress: HOST_ADDRESS,
    peers: list,
    wrapper(i, exe) {
      const ns = list[i]?.netns;
      if (!ns) throw new RangeError(`wan: no namespace for peer ${i} (${list.length} made)`);
      const key = `${ns}\0${exe}`;
      let file = wrappers.get(key);
      if (!file) {
        file = path.join(dir, `${ns}-${wrappers.size}.sh`);
        // exec keeps the pid and the inherited pipes (Playwright's --remote-debugging-pipe, fds 3 and 4).
        writeFileSync(file, `#!/bin/sh\nexec ip netns exec '${ns}' '${exe.replaceAll("'", `'\\''`)}' "$@"\n`);
        chmodSync(file, 0o755);
        wrappers.set(key, file);
      }
      return file;
    },
    linkBytes() {
      const stats = JSON.parse(execFileSync('ip', ['-j', '-s', 'link', 'show'], { encoding: 'utf8' })) as {
        ifname: string;
        stats64: { rx: { bytes: number }; tx: { bytes: number } };
      }[];
      // Every qdisc of the device (netem and tbf under it, or tbf alone).
      const drops = (ns: string[], dev: string): number =>
        (
          JSON.parse(execFileSync('tc', [...ns, '-s', '-j', 'qdisc', 'show', 'dev', dev], { encoding: 'utf8' })) as { drops?: number }[]
        ).reduce((a, q) => a + (q.drops ?? 0), 0);
      return list.map((x, i) => {
        const s = stats.find((l) => l.ifname === x.hostVeth)!.stats64;
        return {
          netns: x.netns,
          rx: s.rx.bytes,
          tx: s.tx.bytes,
          dropsUp: drops(['-n', x.netns], peerVeth(i + 1)),
          dropsDown: drops([], x.hostVeth),
        };
      });
    },
    destroy,
  };
}

/**
 * The kernel's rate between two peers' namespaces, without a browser: a TCP stream of `bytes` from
 * peer `from` to peer `to` (Node in each namespace), MB/s (10^6) from the receiver's first byte to
 * its last. Checks the shaping alone; a browser on a busy machine may not reach it.
 */
export async function tcpRate(wan: Wan, from: number, to: number, bytes = 4 << 20, timeoutMs = 60_000): Promise<number> {
  const a = wan.peers[from];
  const b = wan.peers[to];
  if (!a || !b) throw new RangeError(`tcpRate: peers ${from}, ${to} of ${wan.peers.length}`);
  const port = 47_000 + Math.floor(Math.random() * 1000);
  const server = `const s=require('net').createServer(c=>{let n=0,t0=0;c.on('data',d=>{if(!t0)t0=performance.now();n+=d.length});c.on('end',()=>{console.log(JSON.stringify({n,ms:performance.now()-t0}));process.exit(0)})});s.listen(${port},'${b.address}',()=>console.log('ready'))`;
  const client = `const c=require('net').connect(${port},'${b.address}',()=>c.end(Buffer.alloc(${bytes},7)));c.on('close',()=>process.exit(0))`;
  const srv = spawn('ip', ['netns', 'exec', b.netns, process.execPath, '-e', server], { stdio: ['ignore', 'pipe', 'inherit'] });
  const killer = setTimeout(() => srv.kill(), timeoutMs);
  try {
    const lines = (async function* () {
      let buf = '';
      for await (const chunk of srv.stdout) {
        buf += String(chunk);
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          yield buf.slice(0, i);
          buf = buf.slice(i + 1);
        }
      }
    })();
    if ((await lines.next()).value !== 'ready') throw new Error('tcpRate: the receiver did not start');
    const cli = spawn('ip', ['netns', 'exec', a.netns, process.execPath, '-e', client], { stdio: 'ignore' });
    const cliKiller = setTimeout(() => cli.kill(), timeoutMs);
    cli.on('exit', () => clearTimeout(cliKiller));
    const r = (await lines.next()).value;
    if (!r) throw new Error(`tcpRate: no result within ${timeoutMs} ms`);
    const { n, ms } = JSON.parse(r) as { n: number; ms: number };
    if (n !== bytes) throw new Error(`tcpRate: ${n} of ${bytes} bytes arrived`);
    return n / 1e3 / ms;
  } finally {
    clearTimeout(killer);
    srv.kill();
  }
}

/** Init script: keeps every RTCPeerConnection of the page in `window.__rtPcs` (for {@link icePairs}). */
const TRACE_PCS = `(() => {
  const Orig = window.RTCPeerConnection;
  if (!Orig || window.__rtPcs) return;
  window.__rtPcs = [];
  window.RTCPeerConnection = class extends Orig {
    constructor(...a) { super(...a); window.__rtPcs.push(this); }
  };
})();`;

export interface IcePair {
  state: string;
  local: string;
  remote: string;
  protocol: string;
  localType: string;
  /** The remote candidate's type: host, srflx, prflx or relay. */
  remoteType: string;
  bytesSent: number;
  bytesReceived: number;
}

/** The selected ICE candidate pair of every open peer connection of `page` (needs the trace of {@link startWanCluster}). */
export function icePairs(page: Page): Promise<IcePair[]> {
  return page.evaluate(async () => {
    const pcs = (window.__rtPcs ?? []).filter((pc) => pc.connectionState === 'connected');
    const out = [];
    for (const pc of pcs) {
      const stats = [...(await pc.getStats()).values()] as Record<string, unknown>[];
      const transport = stats.find((s) => s.type === 'transport');
      const pair = stats.find(
        (s) =>
          s.type === 'candidate-pair' &&
          (s.id === transport?.selectedCandidatePairId || (!transport?.selectedCandidatePairId && s.nominated && s.state === 'succeeded')),
      );
      if (!pair) continue;
      const l = stats.find((s) => s.id === pair.localCandidateId)!;
      const r = stats.find((s) => s.id === pair.remoteCandidateId)!;
      out.push({
        state: String(pair.state),
        local: `${String(l.address)}:${String(l.port)}`,
        remote: `${String(r.address)}:${String(r.port)}`,
        protocol: String(l.protocol),
        localType: String(l.candidateType),
        remoteType: String(r.candidateType),
        bytesSent: Number(pair.bytesSent),
        bytesReceived: Number(pair.bytesReceived),
      });
    }
    return out;
  });
}

export interface WanClusterOptions extends Omit<ClusterOptions, 'host' | 'launch'> {
  profile: WanProfileName | WanProfile;
  log?: (s: string) => void;
  /** No route between the peers' namespaces, only to the host's address ({@link createWan}). */
  isolate?: boolean;
  /** Runs once the namespaces exist, before the server starts (e.g. to start a TURN server on the host's address); what it starts is the caller's to stop. */
  onWan?: (wan: Wan) => Promise<void> | void;
}

export interface WanCluster extends Cluster {
  wan: Wan;
  info: WanInfo;
  /** Every browser, one per peer (namespace). */
  browsers: Browser[];
}

/**
 * A self-signed certificate for `ip` (EC P-256, valid one day) in a fresh temporary folder, for a
 * server that the harness's own browsers are told to trust. `remove` deletes the folder.
 */
export async function selfSignedCert(ip: string): Promise<{ cert: string; key: string; remove(): void }> {
  const { generate } = await import('selfsigned');
  const pems = await generate([{ name: 'commonName', value: ip }], {
    keyType: 'ec',
    curve: 'P-256',
    notAfterDate: new Date(Date.now() + 86_400_000),
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip }] }],
  });
  const dir = mkdtempSync(path.join(tmpdir(), 'ringtrain-tls-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  writeFileSync(cert, pems.cert);
  writeFileSync(key, pems.private, { mode: 0o600 });
  return { cert, key, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * {@link startCluster} over an emulated WAN: the server on the bridge address over HTTPS/WSS with
 * a certificate made for the run (the bridge address is not a secure context over plain http, and
 * WebGPU and crypto.subtle need one), each peer's own Chromium in its own namespace (one page
 * each), and `linkDelayMs` in every page's URL when the kernel cannot delay packets. `addPeer` is
 * not available beyond `peers` (no namespace for it). `close` also destroys the WAN.
 */
export async function startWanCluster(o: WanClusterOptions): Promise<WanCluster> {
  const wan = createWan(o.profile, o.peers, o.log, { isolate: o.isolate ?? false });
  const browsers: Browser[] = [];
  let tls: Awaited<ReturnType<typeof selfSignedCert>> | null = null;
  const teardown = (): void => {
    tls?.remove();
    wan.destroy();
  };
  try {
    await o.onWan?.(wan);
    tls = await selfSignedCert(wan.hostAddress);
    const launch = async (i: number): Promise<Browser> => {
      const b = await launchBrowser((c) => ({
        ...c,
        executablePath: wan.wrapper(i, c.executablePath),
        // Loopback candidates lead nowhere from a namespace: only the bridge's addresses.
        args: c.args.filter((a) => a !== '--allow-loopback-in-peer-connection'),
      }));
      browsers.push(b);
      return b;
    };
    const query = { ...(wan.info.delay === 'app' && wan.info.delayMs > 0 ? { linkDelayMs: String(wan.info.delayMs) } : {}), ...o.query };
    const cluster = await startCluster({
      ...o,
      query,
      host: wan.hostAddress,
      launch,
      tls,
      initScripts: [...(o.initScripts ?? []), TRACE_PCS],
    });
    const addPeer = async (): Promise<Page> => {
      throw new Error(`startWanCluster: addPeer is not supported (the WAN has ${o.peers} namespaces)`);
    };
    return {
      ...cluster,
      addPeer,
      wan,
      info: wan.info,
      browsers,
      close: async () => {
        try {
          await cluster.close();
        } finally {
          teardown();
        }
      },
    };
  } catch (e) {
    // startCluster has closed what it opened.
    teardown();
    throw e;
  }
}

/** Checks a page's secure-context APIs: WebGPU's entry point and crypto.subtle. */
export function secureApis(page: Page): Promise<{ secure: boolean; gpu: boolean; subtle: boolean }> {
  return page.evaluate(() => ({ secure: window.isSecureContext, gpu: 'gpu' in navigator, subtle: !!crypto.subtle }));
}

export interface WanProofRow {
  profile: string;
  delay: 'netem' | 'app';
  rate_mbit: number;
  allreduce_ms: number;
  /** Bytes each peer sent for one allreduce over its time, MB/s (10^6). */
  allreduce_mb_s: number;
  shift_ms: number;
  shift_mb_s: number;
  /** A 4-byte allreduce: latency-bound. */
  tiny_ms: number;
  ice: string[];
  /** Bytes the veths carried from the peers during the timed operations, MB. */
  veth_mb: number;
  /** Packets the shaping dropped during the timed operations (all peers, both directions). */
  drops: number;
  /** The kernel's rate between the two first namespaces (TCP, no browser), MB/s. */
  tcp_mb_s: number;
}

/**
 * The proof: 2 peers on each profile, a 4 MiB allreduce (and a ring shift of the same bytes per
 * peer), median of `reps`. On `home` it should take about 1000/50 times as long as on an
 * unshaped link, less the app's own overhead.
 */
export async function proveWan(
  o: { profiles?: (WanProfileName | WanProfile)[]; peers?: number; bytes?: number; reps?: number } = {},
  log: (s: string) => void = console.log,
): Promise<WanProofRow[]> {
  const peers = o.peers ?? 2;
  const bytes = o.bytes ?? 4 << 20;
  const reps = o.reps ?? 3;
  const rows: WanProofRow[] = [];
  let built = false;
  for (const profile of o.profiles ?? ['lan', 'home', { delayMs: 20, rateMbit: 10 }]) {
    const c = await startWanCluster({ profile, peers, build: built ? false : 'if-stale', deadAfterMs: 30_000, log });
    built = true;
    try {
      const drivenPages = c.pages.map(pagePeer);
      const apis = await secureApis(c.pages[0]!);
      if (!apis.secure || !apis.gpu || !apis.subtle) throw new Error(`page is not a secure context: ${JSON.stringify(apis)}`);
      // Warm the channels up (a fresh channel is slow for its first megabytes).
      for (const b of [64 << 10, 1 << 20, bytes]) await timeOp(drivenPages, 'ring', b);
      const ice = (await Promise.all(c.pages.map((p) => icePairs(p)))).flat();
      if (ice.length === 0) throw new Error('no connected peer connection found');
      const loop = ice.filter((x) => x.local.startsWith('127.') || x.remote.startsWith('127.'));
      if (loop.length) throw new Error(`loopback ICE pair: ${JSON.stringify(loop)}`);
      const ring: number[] = [];
      const shift: number[] = [];
      const tiny: number[] = [];
      let sent = 0;
      const totals = (): { rx: number; drops: number } =>
        c.wan.linkBytes().reduce((a, l) => ({ rx: a.rx + l.rx, drops: a.drops + l.dropsUp + l.dropsDown }), { rx: 0, drops: 0 });
      const t0 = totals();
      for (let r = 0; r < reps; r++) {
        const x = await timeOp(drivenPages, 'ring', bytes);
        ring.push(x.ms);
        sent = x.sent;
        // The shift moves bytes/n per peer; time it for the same bytes per peer as the allreduce.
        shift.push((await timeOp(drivenPages, 'shift', sent * peers)).ms);
        tiny.push((await timeOp(drivenPages, 'ring', 4)).ms);
      }
      const t1 = totals();
      const tcp = await tcpRate(c.wan, 0, 1, Math.min(bytes, Math.ceil((c.info.rateMbit * 1e6) / 8)));
      const row: WanProofRow = {
        profile: c.info.profile,
        delay: c.info.delay,
        rate_mbit: c.info.rateMbit,
        allreduce_ms: Math.round(median(ring)),
        allreduce_mb_s: Math.round((sent / 1e3 / median(ring)) * 100) / 100,
        shift_ms: Math.round(median(shift)),
        shift_mb_s: Math.round((sent / 1e3 / median(shift)) * 100) / 100,
        tiny_ms: Math.round(median(tiny) * 10) / 10,
        ice: [...new Set(ice.map((x) => `${x.local} <-> ${x.remote} (${x.protocol} ${x.localType})`))],
        veth_mb: Math.round((t1.rx - t0.rx) / 1e4) / 100,
        drops: t1.drops - t0.drops,
        tcp_mb_s: Math.round(tcp * 100) / 100,
      };
      rows.push(row);
      log(JSON.stringify(row));
    } finally {
      await c.close();
    }
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  proveWan().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
