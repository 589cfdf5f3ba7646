/**
 * The conv gradients for tfjs 4.22's wasm backend, as forward convolutions (which wasm runs
 * through XNNPACK) between transposed views. The backend has no `Conv2DBackpropFilter`, so a CNN
 * could not train on wasm at all, and its `Conv2DBackpropInput` is a plain loop, 4x slower than
 * this for the default CNN's second layer. For stride 1:
 *
 * - filter gradient `dW[i,j,c,o] = Σ_{n,y,x} X[n,y+i,x+j,c] dY[n,y,x,o]`: a 'valid' convolution of
 *   the padded images with channels and batch swapped ([c, H, W, n]) by dY as the filter
 *   ([oh, ow, n, o]), giving [c, kh, kw, o], transposed to [kh, kw, c, o];
 * - input gradient: dY padded by the rest of the kernel, convolved ('valid') with the filter turned
 *   by 180° and its channels swapped ([kh, kw, o, c]).
 *
 * Only NHWC, stride 1, dilation 1, padding 'same' or 'valid' (the CNN's layers). The filter
 * gradient refuses anything else with a message; the input gradient leaves it to wasm's own kernel.
 * Both are checked against the cpu backend (conv-grad.test.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { CONV_GRAD_KERNEL } from './backend.ts';

type Info = tf.TensorInfo;

interface ConvGradAttrs {
  strides: number | [number, number];
  pad: 'same' | 'valid' | number | object;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: string;
  dilations?: number | [number, number];
}

const pair = (v: number | [number, number] = 1): [number, number] => (typeof v === 'number' ? [v, v] : v);

/** Whether this conv gradient is one these kernels compute: NHWC, stride 1, no dilation, padding 'same' or 'valid'. */
function handled(a: ConvGradAttrs): boolean {
  const ones = (v?: number | [number, number]): boolean => pair(v).every((s) => s === 1);
  return (
    a.dataFormat === 'NHWC' && (a.pad === 'same' || a.pad === 'valid') && a.dimRoundingMode == null && ones(a.strides) && ones(a.dilations)
  );
}

/** The padding [before, after] of one axis for a kernel of `k`: 'same' at stride 1 pads k - 1, the smaller half first. */
const samePad = (k: number): [number, number] => [Math.floor((k - 1) / 2), Math.ceil((k - 1) / 2)];

/**
 * Registers wasm's conv gradients (once; a no-op where wasm is not registered): {@link CONV_GRAD_KERNEL},
 * and `Conv2DBackpropInput` in place of wasm's own for the cases it handles.
 */
export function registerWasmConvGrad(): void {
  if (tf.getKernel(CONV_GRAD_KERNEL, 'wasm')) return;
  const kernel = (name: string): tf.KernelFunc | undefined => tf.getKernel(name, 'wasm')?.kernelFunc;
  const [transpose, pad, reverse, conv2d] = ['Transpose', 'PadV2', 'Reverse', 'Conv2D'].map(kernel);
  const own = tf.getKernel('Conv2DBackpropInput', 'wasm');
  if (!transpose || !pad || !reverse || !conv2d || !own) return;
  /** Runs kernels on `backend`; `result()` frees every output but the last, and returns that one. */
  const session = (backend: unknown) => {
    const b = backend as tf.KernelBackend;
    const made: Info[] = [];
    const run = (f: tf.KernelFunc, inputs: Record<string, Info>, attrs: object): Info => {
      const out = f({ inputs, backend: b, attrs: attrs as tf.NamedAttrMap }) as Info;
      made.push(out);
      return out;
    };
    return {
      run,
      padded: (x: Info, [h, w]: [number, number][]): Info => run(pad, { x }, { paddings: [[0, 0], h, w, [0, 0]], constantValue: 0 }),
      convolve: (x: Info, filter: Info): Info =>
        run(conv2d, { x, filter }, { strides: 1, pad: 'valid', dataFormat: 'NHWC', dilations: 1, dimRoundingMode: null }),
      result: (): Info => {
        for (const t of made.slice(0, -1)) b.disposeData(t.dataId);
        return made.at(-1)!;
      },
    };
  };
  tf.registerKernel({
    kernelName: CONV_GRAD_KERNEL,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, dy } = inputs as { x: Info; dy: Info };
      const a = attrs as unknown as ConvGradAttrs & { filterShape: [number, number, number, number] };
      if (!handled(a))
        throw new Error(
          `${CONV_GRAD_KERNEL} on wasm: only NHWC, stride 1, padding 'same' or 'valid' is supported (got ${a.dataFormat}, stride ${pair(a.strides).join('x')}, pad ${JSON.stringify(a.pad)}); pick the cpu backend for this model`,
        );
      const [kh, kw] = a.filterShape;
      const s = session(backend);
      const images = s.run(transpose, { x: a.pad === 'same' ? s.padded(x, [samePad(kh), samePad(kw)]) : x }, { perm: [3, 1, 2, 0] });
      const filter = s.run(transpose, { x: dy }, { perm: [1, 2, 0, 3] });
      s.run(transpose, { x: s.convolve(images, filter) }, { perm: [1, 2, 0, 3] });
      return s.result();
    },
  });
  tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
  tf.registerKernel({
    // Its setup still runs when the backend starts: wasm's own kernel does what this one leaves.
    ...own,
    kernelFunc: (args) => {
      if (!handled(args.attrs as unknown as ConvGradAttrs)) return own.kernelFunc(args);
      const { dy, filter } = args.inputs as { dy: Info; filter: Info };
      const [kh, kw] = filter.shape as [number, number];
      const same = (args.attrs as unknown as ConvGradAttrs).pad === 'same';
      // The rest of the kernel around dY: k - 1 less what the forward pass padded on that side.
      const rest = (k: number): [number, number] => (same ? samePad(k) : [0, 0]).map((p) => k - 1 - p) as [number, number];
      const s = session(args.backend);
      const dyp = s.padded(dy, [rest(kh), rest(kw)]);
      const turned = s.run(transpose, { x: s.run(reverse, { x: filter }, { dims: [0, 1] }) }, { perm: [0, 1, 3, 2] });
      s.convolve(dyp, turned);
      return s.result();
    },
  });
}
