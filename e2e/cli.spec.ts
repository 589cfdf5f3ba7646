/**
 * The `ringtrain` command as a user runs it: a real child process that starts its own server and
 * headless peers, trains, prints the accuracy and writes the model; bad flags and a missing
 * browser end with a message and a non-zero status.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, QUICK_RUN, ringtrain, test } from './peers.ts';

test('train --peers 2 on synthetic blobs prints the accuracy and writes a tfjs model', async () => {
  test.setTimeout(200_000);
  const out = mkdtempSync(path.join(tmpdir(), 'ringtrain-cli-'));
  try {
    const r = await ringtrain(['train', '--peers', '2', ...QUICK_RUN, '--out', out]);
    expect(r.code, r.out + r.err).toBe(0);
    const m = /done in [\d.]+ s; test accuracy ([\d.]+)%; model checksum ([0-9a-f]{8}) on all 2 peers/.exec(r.out);
    expect(m, r.out).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(85);
    // Not a terminal: plain progress lines (never a bar's carriage returns), the last at 100%.
    expect(r.out).not.toContain('\r');
    expect(r.out).toMatch(/^100% step (\d+)\/\1, loss [\d.]+, \d+ samples\/s/m);
    const model = JSON.parse(readFileSync(path.join(out, 'ringtrain-softmax.json'), 'utf8')) as {
      weightsManifest: { paths: string[]; weights: { shape: number[] }[] }[];
    };
    expect(model.weightsManifest[0]!.paths).toEqual(['ringtrain-softmax.weights.bin']);
    // 8 features x 4 classes + 4 biases, float32.
    expect(model.weightsManifest[0]!.weights.map((w) => w.shape)).toEqual([[8, 4], [4]]);
    expect(readFileSync(path.join(out, 'ringtrain-softmax.weights.bin')).byteLength).toBe(36 * 4);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('bad flags and a missing browser give a clear message and a non-zero status', async () => {
  const cases: [string[], Record<string, string>, number, RegExp][] = [
    [['train', '--peers', '0'], {}, 2, /--peers: "0" must be a whole number from 1 to 32/],
    [['train', '--model', 'forest'], {}, 2, /model: "forest" is not one of softmax, mlp, cnn, svm, transformer, tree, gbdt/],
    [['train', '--epochs'], {}, 2, /--epochs/],
    [['peer', 'not a url'], {}, 2, /is not a URL/],
    [['launch'], {}, 2, /unknown command "launch"/],
    [
      ['train', '--peers', '1'],
      { RINGTRAIN_CHROMIUM: '/nonexistent/chromium' },
      3,
      /RINGTRAIN_CHROMIUM=\/nonexistent\/chromium: no such file/,
    ],
  ];
  for (const [args, env, code, msg] of cases) {
    const r = await ringtrain(args, env, 30_000);
    expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(code);
    expect(r.err).toMatch(msg);
  }
});
