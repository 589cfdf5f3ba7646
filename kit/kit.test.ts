import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildKit, KIT_LIMIT_BYTES } from './build.ts';

/**
 * The GPU kit (kit/build.ts) builds into one folder that fits the GPU machine's 64 MiB per run, with
 * everything gpu-bench.sh needs there. Its first build here packs Node and the dataset with xz -9e
 * (minutes on 2 cores); later ones take them from .ringtrain/kit-cache/ by input hash.
 */
describe('GPU kit', () => {
  it('builds one folder of at most 60 MiB with the script, the bundle, Dawn, the Vulkan loader and Node', {
    timeout: 900_000,
  }, async () => {
    const { dir, parts } = await buildKit(() => {});
    const files = readdirSync(dir);
    const total = files.reduce((s, f) => s + statSync(path.join(dir, f)).size, 0);
    expect(total).toBeLessThanOrEqual(KIT_LIMIT_BYTES);
    for (const f of [
      'gpu-bench.sh',
      'torch_ref.py',
      'README.md',
      'app.tar.xz',
      'dawn.node.xz',
      'libvulkan.so.1.xz',
      'node.xz',
      'fashion-mnist.tar.xz',
    ])
      expect(files).toContain(f);
    expect(statSync(path.join(dir, 'gpu-bench.sh')).mode & 0o111).not.toBe(0);
    expect(spawnSync('bash', ['-n', path.join(dir, 'gpu-bench.sh')]).status).toBe(0);

    const app = spawnSync('tar', ['-tJf', path.join(dir, 'app.tar.xz')], { encoding: 'utf8' }).stdout.split('\n');
    for (const f of ['app/bench.mjs', 'app/peer.mjs', 'app/native/node_datachannel.node', 'app/tfjs-backend-wasm-simd.wasm'])
      expect(app).toContain(f);

    // Packed sizes as measured here (kit/README.md): Dawn about 4.3 MB, Node about 22.5 MB.
    const packed = Object.fromEntries(parts.map((p) => [p.file, p]));
    expect(packed['dawn.node.xz']!.raw).toBeGreaterThan(15e6);
    expect(packed['node.xz']!.raw).toBeGreaterThan(50e6);
    expect(packed['libvulkan.so.1.xz']!.raw).toBeGreaterThan(100e3);

    // SHA256SUMS is what the script checks first.
    for (const line of readFileSync(path.join(dir, 'SHA256SUMS'), 'utf8').trim().split('\n')) {
      const [sum, file] = line.split(/ {2}/);
      expect(
        createHash('sha256')
          .update(readFileSync(path.join(dir, file!)))
          .digest('hex'),
        file,
      ).toBe(sum);
    }
  });
});
