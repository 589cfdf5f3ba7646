/**
 * The conv filter gradient for tfjs 4.22's wasm backend, which has no `Conv2DBackpropFilter`: a
 * CNN could not train on wasm, so a peer without WebGPU or WebGL fell back to the cpu backend (9 to
 * 25 s a step of 128 on 2 cores). The backend does have `Conv3DBackpropFilterV2`, and a 2-D
 * convolution is a 3-D one of depth 1: the 2-D kernel is registered as that one, over views of
 * its inputs with a depth of 1 added (same data, no copy).
 *
 * Only what the 3-D kernel gets right: NHWC, stride 1, dilation 1, padding 'same' or 'valid' (the
 * CNN's layers). Anything else is refused with a message: with a stride of 2 the wasm kernel's
 * filter gradient is wrong at every filter position but the first of each row (checked against
 * the cpu backend, conv-grad.test.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { CONV_GRAD_KERNEL } from './backend.ts';

type Info = tf.TensorInfo;

interface Conv2DBackpropFilterAttrs {
  strides: number | [number, number];
  pad: 'same' | 'valid' | number | object;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: string;
  filterShape: [number, number, number, number];
}

/** Registers {@link CONV_GRAD_KERNEL} for wasm (once; a no-op where it exists or wasm is not registered). */
export function registerWasmConvGrad(): void {
  if (tf.getKernel(CONV_GRAD_KERNEL, 'wasm')) return;
  const conv3d = tf.getKernel('Conv3DBackpropFilterV2', 'wasm');
  if (!conv3d) return;
  tf.registerKernel({
    kernelName: CONV_GRAD_KERNEL,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend, attrs }) => {
      const { x, dy } = inputs as { x: Info; dy: Info };
      const a = attrs as unknown as Conv2DBackpropFilterAttrs;
      const [sh, sw] = typeof a.strides === 'number' ? [a.strides, a.strides] : a.strides;
      if (a.dataFormat !== 'NHWC' || (a.pad !== 'same' && a.pad !== 'valid') || a.dimRoundingMode != null || sh !== 1 || sw !== 1)
        throw new Error(
          `${CONV_GRAD_KERNEL} on wasm: only NHWC, stride 1, padding 'same' or 'valid' is supported (got ${a.dataFormat}, stride ${sh}x${sw}, pad ${JSON.stringify(a.pad)}); pick the cpu backend for this model`,
        );
      const deep = (t: Info): Info => ({ dataId: t.dataId, dtype: t.dtype, shape: [t.shape[0]!, 1, ...t.shape.slice(1)] });
      const out = conv3d.kernelFunc({
        inputs: { x: deep(x), dy: deep(dy) },
        backend,
        attrs: { strides: [1, sh, sw], pad: a.pad, filterShape: [1, ...a.filterShape] },
      }) as Info;
      return { dataId: out.dataId, dtype: out.dtype, shape: [...a.filterShape] };
    },
  });
}
