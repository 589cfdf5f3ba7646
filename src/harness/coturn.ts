/**
 * A coturn TURN server for tests (Debian's `coturn`, binary `turnserver`), without installing it
 * on the system: `turnserver` from PATH where there is one; else Debian's package and the shared
 * libraries this machine lacks, fetched with `apt-get download` (no root needed, only apt's
 * package lists: `apt-get update` once) into node_modules/.cache/ringtrain-coturn, unpacked with
 * `dpkg-deb -x` and run with LD_LIBRARY_PATH. The cache is reused: the download happens once.
 *
 * `startCoturn` runs it with `use-auth-secret` (the TURN REST scheme of server/turn.ts) on one
 * address, logging to a pipe that the test reads: which usernames got an allocation.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface Turnserver {
  exe: string;
  /** Environment to run it with (LD_LIBRARY_PATH for the unpacked libraries). */
  env: NodeJS.ProcessEnv;
  source: 'path' | 'cache';
}

const ROOT = path.resolve(import.meta.dirname, '../..');
/** Where the unpacked package lives: `<dir>/root/usr/bin/turnserver`, its libraries under `<dir>/root`. */
export const COTURN_CACHE = path.join(ROOT, 'node_modules', '.cache', 'ringtrain-coturn');
const FIX =
  'Install it ("apt-get install coturn" as root), or let the test fetch it: it needs apt-get, dpkg-deb and apt\'s package lists ("apt-get update" as root, once)';

function run(cmd: string, args: string[], cwd?: string): { ok: boolean; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  return { ok: r.status === 0, out: r.stdout ?? '', err: (r.stderr || r.error?.message || '').trim() };
}

// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format string, not a template
const installed = (pkg: string): boolean => run('dpkg-query', ['-W', '-f=${db:Status-Status}', pkg]).out === 'installed';

/** The library packages `pkg` depends on directly (`lib*`, real packages, not virtual ones). */
function libDepends(pkg: string): string[] {
  const r = run('apt-cache', [
    'depends',
    '--no-recommends',
    '--no-suggests',
    '--no-conflicts',
    '--no-breaks',
    '--no-replaces',
    '--no-enhances',
    pkg,
  ]);
  if (!r.ok) throw new Error(`apt-cache depends ${pkg}: ${r.err}`);
  return [...r.out.matchAll(/^\s+\|?(?:Pre)?Depends: (lib[^\s<>]+)$/gm)].map((m) => m[1]!);
}

/** Every folder under `dir` that holds a shared library. */
function libDirs(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    const entries = readdirSync(d, { withFileTypes: true });
    if (entries.some((e) => !e.isDirectory() && /\.so(\.|$)/.test(e.name))) out.push(d);
    for (const e of entries) if (e.isDirectory()) walk(path.join(d, e.name));
  };
  for (const sub of ['lib', 'usr/lib']) if (existsSync(path.join(dir, sub))) walk(path.join(dir, sub));
  return out;
}

function cached(dir: string): Turnserver {
  const libs = libDirs(path.join(dir, 'root'));
  const env = { ...process.env, LD_LIBRARY_PATH: [...libs, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') };
  return { exe: path.join(dir, 'root', 'usr', 'bin', 'turnserver'), env, source: 'cache' };
}

/** Shared libraries `t` cannot load here (ldd's "not found"). */
function missingLibs(t: Turnserver): string[] {
  const r = spawnSync('ldd', [t.exe], { encoding: 'utf8', env: t.env });
  return [...(r.stdout ?? '').matchAll(/^\s*(\S+) => not found$/gm)].map((m) => m[1]!);
}

/**
 * A `turnserver` to run: from PATH, from the cache, or fetched into the cache now. Throws an
 * Error that says what to do when none can be had.
 */
export function findTurnserver(log: (s: string) => void = () => undefined): Turnserver {
  const onPath = run('sh', ['-c', 'command -v turnserver']).out.trim();
  if (onPath) return { exe: onPath, env: process.env, source: 'path' };
  const marker = path.join(COTURN_CACHE, 'complete');
  if (existsSync(marker)) {
    const t = cached(COTURN_CACHE);
    if (existsSync(t.exe) && missingLibs(t).length === 0) return t;
  }
  for (const tool of ['apt-get', 'apt-cache', 'dpkg-deb', 'dpkg-query', 'ldd']) {
    if (!run('sh', ['-c', `command -v ${tool}`]).out.trim())
      throw new Error(`coturn's turnserver is not on PATH, and ${tool} (to fetch Debian's package) is missing. ${FIX}.`);
  }
  // The library packages this machine lacks, with theirs, breadth first.
  const want = ['coturn'];
  const seen = new Set(want);
  for (let i = 0; i < want.length; i++) {
    for (const lib of libDepends(want[i]!)) {
      if (seen.has(lib)) continue;
      seen.add(lib);
      if (!installed(lib)) want.push(lib);
    }
  }
  mkdirSync(path.dirname(COTURN_CACHE), { recursive: true });
  const tmp = mkdtempSync(path.join(path.dirname(COTURN_CACHE), 'ringtrain-coturn-tmp-'));
  try {
    log(`[coturn] fetching ${want.join(', ')} with apt-get download into ${COTURN_CACHE}`);
    // As root apt would hand the download to its _apt user, which cannot write here.
    const sandbox = process.getuid?.() === 0 ? ['-o', 'APT::Sandbox::User=root'] : [];
    const dl = run('apt-get', [...sandbox, 'download', ...want], tmp);
    if (!dl.ok)
      throw new Error(
        `coturn's turnserver is not on PATH, and "apt-get download ${want.join(' ')}" failed: ${dl.err.split('\n').slice(-3).join(' ')}. ${FIX}.`,
      );
    for (const deb of readdirSync(tmp).filter((f) => f.endsWith('.deb'))) {
      const x = run('dpkg-deb', ['-x', deb, 'root'], tmp);
      if (!x.ok) throw new Error(`dpkg-deb -x ${deb}: ${x.err}`);
      rmSync(path.join(tmp, deb));
    }
    const t = cached(tmp);
    if (!existsSync(t.exe)) throw new Error(`the coturn package holds no usr/bin/turnserver. ${FIX}.`);
    const missing = missingLibs(t);
    if (missing.length) throw new Error(`turnserver from Debian's package still lacks ${missing.join(', ')} here. ${FIX}.`);
    writeFileSync(path.join(tmp, 'complete'), `${want.join(' ')}\n`);
    rmSync(COTURN_CACHE, { recursive: true, force: true });
    renameSync(tmp, COTURN_CACHE);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return cached(COTURN_CACHE);
}

export interface Coturn {
  /** The `turn:` URL of its UDP listener. */
  url: string;
  /** Usernames that were granted an allocation (a relay address), in order. */
  allocations(): string[];
  /** Everything it logged so far. */
  log(): string;
  /** Ends the process (SIGTERM, then SIGKILL after 3 s) and removes its files. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts coturn on `ip:port` (UDP, no TLS, relay ports on the same address) with `use-auth-secret`
 * and `secret`. Resolves once its UDP listener is open; rejects with its log if it is not within
 * 10 s or it exits. The process is also ended if this one exits first.
 */
export async function startCoturn(t: Turnserver, o: { ip: string; port: number; secret: string; realm?: string }): Promise<Coturn> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ringtrain-coturn-run-'));
  const conf = path.join(dir, 'turnserver.conf');
  // The secret goes in a file of this run's folder, not on the command line (which any user can read).
  writeFileSync(
    conf,
    [
      `listening-ip=${o.ip}`,
      `relay-ip=${o.ip}`,
      `listening-port=${o.port}`,
      'min-port=49152',
      'max-port=65535',
      'use-auth-secret',
      `static-auth-secret=${o.secret}`,
      `realm=${o.realm ?? 'ringtrain'}`,
      'fingerprint',
      'no-cli',
      'no-tls',
      'no-dtls',
      'no-tcp-relay',
      'no-multicast-peers',
      'no-software-attribute',
      'log-file=stdout',
      'simple-log',
      'verbose',
      `pidfile=${path.join(dir, 'turnserver.pid')}`,
      `userdb=${path.join(dir, 'turndb')}`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const child: ChildProcess = spawn(t.exe, ['-c', conf], { env: t.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const killOnExit = (): void => void child.kill('SIGKILL');
  process.on('exit', killOnExit);
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t3 = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t3);
      }
      process.off('exit', killOnExit);
      rmSync(dir, { recursive: true, force: true });
    })());
  const listening = `UDP listener opened on: ${o.ip}:${o.port}`;
  const ready = await new Promise<boolean>((resolve) => {
    const deadline = Date.now() + 10_000;
    const poll = setInterval(() => {
      if (text.includes(listening)) done(true);
      else if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) done(false);
    }, 50);
    const done = (ok: boolean): void => {
      clearInterval(poll);
      resolve(ok);
    };
  });
  if (!ready) {
    await stop();
    throw new Error(`coturn did not open ${o.ip}:${o.port} (UDP) within 10 s; its log:\n${text.slice(-3000)}`);
  }
  return {
    url: `turn:${o.ip}:${o.port}?transport=udp`,
    allocations: () => [...text.matchAll(/user <([^>]*)>: incoming packet ALLOCATE processed, success/g)].map((m) => m[1]!),
    log: () => text,
    stop,
  };
}

// `npm install` runs this file (postinstall) to fetch coturn ahead of the tests, which may run
// where there is no network (CI runs them in a loopback-only namespace). Never fails the install:
// where it cannot fetch, the test tries again and says what to do.
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  try {
    if (process.platform === 'linux') findTurnserver((s) => console.log(s));
  } catch (e) {
    console.log(`[coturn] not fetched for the TURN test (e2e/turn.spec.ts will try again): ${(e as Error).message}`);
  }
}
