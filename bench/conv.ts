/**
 * `npm run bench -- conv`: ms per gradient step of the CNN (a batch of 128 Fashion-MNIST-shaped
 * images), side by side in one process, per conv layout:
 *
 * - wasm with RingTrain's conv gradients (ml/conv-grad.ts: forward convolutions through XNNPACK);
 * - wasm with the kernels tfjs 4.22 has: the filter gradient through its 3-D kernel at depth 1
 *   (what conv-grad.ts did before), the input gradient by wasm's own loop;
 * - the cpu backend (where a CNN trained on a peer without WebGPU or WebGL before): one step.
 *
 * Each row also splits the wasm step into its kernels (tf.profile), and gives the ratios.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { createModel, DEFAULT_CNN_DENSE, DEFAULT_CNN_FILTERS } from '../src/ml/models.ts';
import { computeGradients } from '../src/ml/step.ts';
import { selectNodeBackend } from '../src/node/platform.ts';

const GRADS = ['Conv2DBackpropFilter', 'Conv2DBackpropInput'] as const;

/** The CNN's layouts measured: the default before issue 20 (conv 8/16, no dense layer), a middle one, and the default now. */
export const CONV_LAYOUTS = [
  { filters: [8, 16], dense: [] },
  { filters: [16, 32], dense: [128] },
  { filters: [...DEFAULT_CNN_FILTERS], dense: [...DEFAULT_CNN_DENSE] },
];

export interface ConvRow {
  filters: number[];
  dense: number[];
  batch: number;
  ms_per_step: { wasm: number; wasm_tfjs_kernels: number; cpu: number };
  /** How many times faster wasm with RingTrain's kernels is than the others. */
  speedup: { vs_wasm_tfjs_kernels: number; vs_cpu: number };
  /** ms per kernel in one wasm step with RingTrain's kernels, the largest first. */
  wasm_kernels_ms: Record<string, number>;
}

type Kernels = Record<(typeof GRADS)[number], tf.KernelConfig>;

/** tfjs 4.22's own: wasm's input gradient, and the filter gradient as its 3-D kernel over depth-1 views (call before the backend starts). */
function tfjsKernels(): Kernels {
  const conv3d = tf.getKernel('Conv3DBackpropFilterV2', 'wasm')!.kernelFunc;
  const deep = (t: tf.TensorInfo): tf.TensorInfo => ({ dataId: t.dataId, dtype: t.dtype, shape: [t.shape[0]!, 1, ...t.shape.slice(1)] });
  return {
    Conv2DBackpropInput: tf.getKernel('Conv2DBackpropInput', 'wasm')!,
    Conv2DBackpropFilter: {
      kernelName: 'Conv2DBackpropFilter',
      backendName: 'wasm',
      kernelFunc: ({ inputs, backend, attrs }) => {
        const a = attrs as { pad: 'same' | 'valid'; filterShape: number[] };
        const out = conv3d({
          inputs: { x: deep(inputs['x']!), dy: deep(inputs['dy']!) },
          backend,
          attrs: { strides: [1, 1, 1], pad: a.pad, filterShape: [1, ...a.filterShape] },
        }) as tf.TensorInfo;
        return { ...out, shape: a.filterShape };
      },
    },
  };
}

/** Puts `k` in place of the wasm conv gradients (their setup has run: the backend started with RingTrain's, which carry wasm's). */
function use(k: Kernels): void {
  for (const name of GRADS) {
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel(k[name]);
  }
}

/** Median ms of `steps` gradient steps after `warmup` ones, on the current backend. */
async function msPerStep(filters: number[], dense: number[], batch: number, steps: number, warmup = 2): Promise<number> {
  const model = createModel({ kind: 'cnn', inputShape: [784], numClasses: 10, hidden: filters, dense, seed: 1 });
  const x = Float32Array.from({ length: batch * 784 }, (_, i) => ((i * 7919) % 256) / 255);
  const y = Int32Array.from({ length: batch }, (_, i) => i % 10);
  const times: number[] = [];
  for (let i = 0; i < steps + warmup; i++) {
    const t0 = performance.now();
    await computeGradients(model, x, y, batch, 'crossentropy');
    if (i >= warmup) times.push(performance.now() - t0);
  }
  model.dispose();
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

export async function benchConv(
  o: { layouts: { filters: number[]; dense: number[] }[]; batch: number; steps: number },
  log: (s: string) => void,
): Promise<ConvRow[]> {
  const theirs = tfjsKernels();
  await selectNodeBackend({ prefer: 'wasm', forcedBy: '--backend' });
  const ours = Object.fromEntries(GRADS.map((n) => [n, tf.getKernel(n, 'wasm')!])) as Kernels;
  const rows: ConvRow[] = [];
  for (const { filters, dense } of o.layouts) {
    await tf.setBackend('wasm');
    use(theirs);
    const before = await msPerStep(filters, dense, o.batch, o.steps);
    use(ours);
    const wasm = await msPerStep(filters, dense, o.batch, o.steps);
    const model = createModel({ kind: 'cnn', inputShape: [784], numClasses: 10, hidden: filters, dense, seed: 1 });
    const x = new Float32Array(o.batch * 784).fill(0.5);
    const prof = await tf.profile(() => computeGradients(model, x, new Int32Array(o.batch), o.batch, 'crossentropy').then(() => undefined));
    model.dispose();
    const kernels: Record<string, number> = {};
    for (const k of prof.kernels) kernels[k.name] = (kernels[k.name] ?? 0) + (k.kernelTimeMs as number);
    await tf.setBackend('cpu');
    // The cpu backend takes seconds to a minute a step, and has nothing to warm up.
    const cpu = await msPerStep(filters, dense, o.batch, 1, 0);
    const r = (v: number): number => Math.round(v * 10) / 10;
    const row: ConvRow = {
      filters,
      dense,
      batch: o.batch,
      ms_per_step: { wasm: r(wasm), wasm_tfjs_kernels: r(before), cpu: r(cpu) },
      speedup: { vs_wasm_tfjs_kernels: r(before / wasm), vs_cpu: r(cpu / wasm) },
      wasm_kernels_ms: Object.fromEntries(
        Object.entries(kernels)
          .sort((a, b) => b[1] - a[1])
          .slice(0, 6)
          .map(([k, v]) => [k, r(v)]),
      ),
    };
    log(
      `conv ${filters.join('/')} dense ${dense.join('/') || '-'}: wasm ${row.ms_per_step.wasm} ms, wasm with tfjs's kernels ${row.ms_per_step.wasm_tfjs_kernels} ms (x${row.speedup.vs_wasm_tfjs_kernels}), cpu ${row.ms_per_step.cpu} ms (x${row.speedup.vs_cpu}); wasm kernels ${JSON.stringify(row.wasm_kernels_ms)}`,
    );
    rows.push(row);
  }
  return rows;
}
