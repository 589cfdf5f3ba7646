import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import { CONV_GRAD_KERNEL, parseBackendPreference, selectBackend, type BackendName, type GpuLike } from './backend.ts';
import { MlError } from './errors.ts';
import { makeStepProbe } from './probe.ts';

/**
 * In Node only tfjs's cpu backend is registered. To exercise probing and fallbacks, some tests
 * register stand-ins through the `register` hook (as the browser registers the real ones): a 'wasm'
 * that is the cpu backend under another name, lacking Conv2DBackpropFilter like tfjs 4.22's wasm,
 * and a 'webgpu' whose initialisation never finishes.
 */

function registerFakeWasm(): void {
  if (tf.findBackendFactory('wasm') != null) return;
  const cpu = tf.findBackendFactory('cpu');
  tf.registerBackend('wasm', () => cpu());
  if (tf.getKernel('Add', 'wasm') == null) {
    tf.copyRegisteredKernels('cpu', 'wasm');
    tf.unregisterKernel(CONV_GRAD_KERNEL, 'wasm');
  }
}

function registerHangingWebgpu(): void {
  if (tf.findBackendFactory('webgpu') == null) tf.registerBackend('webgpu', () => new Promise<never>(() => undefined));
}

const swiftshader: GpuLike = {
  requestAdapter: async () => ({
    info: { vendor: 'google', architecture: 'swiftshader', description: 'SwiftShader', isFallbackAdapter: true },
    isFallbackAdapter: undefined,
  }),
};

afterEach(async () => {
  await tf.setBackend('cpu');
  for (const name of ['wasm', 'webgpu']) if (tf.findBackendFactory(name) != null) tf.removeBackend(name);
});

describe('selectBackend', () => {
  it("auto in Node ends on 'cpu' and records why each other backend was passed over", async () => {
    const r = await selectBackend({ gpu: null });
    expect(r.name).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(r.failures['webgpu']).toMatch(/^unavailable: navigator.gpu missing/);
    expect(r.failures['webgl']).toBe('unavailable: not registered in this environment');
    expect(r.failures['wasm']).toMatch(/^unavailable: not registered \(pass register: registerBrowserBackends/);
    expect(r.reason).toMatch(/^first to initialise in order webgpu → webgl → wasm → cpu; webgpu unavailable: navigator.gpu missing/);
    expect(r.adapter).toBeUndefined();
    expect(r.probeMs).toBeUndefined();
  });

  it('respects a forced backend, naming where the choice came from', async () => {
    registerFakeWasm();
    const r = await selectBackend({ prefer: 'wasm', forcedBy: '?backend=' });
    expect(r).toMatchObject({ name: 'wasm', reason: 'forced by ?backend=', failures: {} });
    expect(tf.getBackend()).toBe('wasm');
    const c = await selectBackend({ prefer: 'cpu' });
    expect(c).toMatchObject({ name: 'cpu', reason: 'forced by prefer option' });
  });

  it('falls back in order when the forced backend is unavailable, and says so', async () => {
    const r = await selectBackend({ prefer: 'webgl', forcedBy: '?backend=', gpu: null });
    expect(r.name).toBe('cpu');
    expect(r.reason).toMatch(/^forced webgl \(by \?backend=\) failed; first to initialise/);
    expect(r.failures['webgl']).toContain('not registered');
  });

  it("reports 'no adapter' and reads adapter info (isFallback from adapter.info)", async () => {
    const none = await selectBackend({ gpu: { requestAdapter: async () => null } });
    expect(none.failures['webgpu']).toBe('unavailable: no adapter');
    const r = await selectBackend({ gpu: swiftshader, candidates: ['webgpu', 'cpu'] });
    expect(r.adapter).toEqual({ vendor: 'google', architecture: 'swiftshader', description: 'SwiftShader', isFallback: true });
    expect(r.failures['webgpu']).toContain('not registered');
  });

  it('uses the probe to pick the fastest backend; the probe runs on the backend it is told', async () => {
    const fake: Record<string, number> = { wasm: 4.6, cpu: 20 };
    const seen: string[] = [];
    const r = await selectBackend({
      gpu: null,
      register: registerFakeWasm,
      probe: async (b: BackendName) => {
        seen.push(`${b}:${tf.getBackend()}`);
        return fake[b]!;
      },
    });
    expect(seen).toEqual(['wasm:wasm', 'cpu:cpu']);
    expect(r.name).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(r.probeMs).toEqual({ wasm: 4.6, cpu: 20 });
    expect(r.reason).toMatch(/^fastest in probe: wasm 4\.6 ms\/step vs cpu 20; webgpu unavailable/);

    fake['cpu'] = 3;
    const again = await selectBackend({ gpu: null, register: registerFakeWasm, probe: async (b) => fake[b]! });
    expect(again.name).toBe('cpu');
    expect(again.reason).toMatch(/^fastest in probe: cpu 3\.0 ms\/step vs wasm 4\.6/);
  });

  it('never lands conv training on a backend without Conv2DBackpropFilter (tfjs 4.22 wasm)', async () => {
    const probed: string[] = [];
    const r = await selectBackend({
      gpu: null,
      register: registerFakeWasm,
      needsConv: true,
      probe: async (b) => {
        probed.push(b);
        return b === 'wasm' ? 1 : 100;
      },
    });
    expect(r.name).toBe('cpu');
    expect(probed).toEqual(['cpu']);
    expect(r.failures['wasm']).toBe(`skipped: lacks ${CONV_GRAD_KERNEL}, which training conv layers needs`);
    expect(r.reason).toMatch(/^fastest in probe: cpu 100 ms\/step \(no other backend probed\)/);
    // The same holds without a probe: wasm comes before cpu in the fallback order, and is skipped.
    const noProbe = await selectBackend({ gpu: null, register: registerFakeWasm, needsConv: true });
    expect(noProbe.name).toBe('cpu');
  });

  it('a real step probe measures each backend and leaves no tensors behind', async () => {
    const before = tf.memory().numTensors;
    const r = await selectBackend({
      gpu: null,
      register: registerFakeWasm,
      candidates: ['wasm', 'cpu'],
      probe: makeStepProbe({ kind: 'mlp', inputShape: [20], numClasses: 4, hidden: [16], seed: 1 }, { batchSize: 16, warmup: 1, steps: 2 }),
    });
    expect(Object.keys(r.probeMs ?? {}).sort()).toEqual(['cpu', 'wasm']);
    expect(Object.values(r.probeMs ?? {}).every((ms) => ms > 0)).toBe(true);
    expect(r.reason).toMatch(/^fastest in probe: /);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('records a failing or hanging probe and moves on', async () => {
    const throwing = await selectBackend({
      gpu: null,
      register: registerFakeWasm,
      probe: async (b) => {
        if (b === 'wasm') throw new Error('shader compile failed');
        return 20;
      },
    });
    expect(throwing.name).toBe('cpu');
    expect(throwing.failures['wasm']).toBe('probe failed: shader compile failed');

    const hanging = await selectBackend({
      gpu: null,
      register: registerFakeWasm,
      probeTimeoutMs: 50,
      probe: (b) => (b === 'wasm' ? new Promise<number>(() => undefined) : Promise.resolve(Number.NaN)),
    });
    expect(hanging.failures['wasm']).toBe('probe failed: probe on wasm timed out after 50 ms');
    expect(hanging.failures['cpu']).toBe('probe failed: probe returned NaN, not a time in ms');
    // Every probe failed: the first backend that initialised, in order.
    expect(hanging.name).toBe('wasm');
    expect(hanging.reason).toMatch(/^probe failed on every backend; first initialised in order/);
  });

  it('times out a hanging backend initialisation, removes it, and tfjs keeps working', async () => {
    const t0 = performance.now();
    const r = await selectBackend({ gpu: swiftshader, register: registerHangingWebgpu, initTimeoutMs: 100 });
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(r.name).toBe('cpu');
    expect(r.adapter?.isFallback).toBe(true);
    expect(r.failures['webgpu']).toBe("setBackend('webgpu') timed out after 100 ms; removed from tfjs's registry");
    expect(tf.findBackendFactory('webgpu')).toBeFalsy();
    const sum = tf.add(tf.scalar(2), tf.scalar(3));
    expect((await sum.data())[0]).toBe(5);
    sum.dispose();
  });

  it('records a failing registration and goes on with what is registered', async () => {
    const r = await selectBackend({
      gpu: null,
      register: () => {
        throw new Error('wasm binary 404');
      },
    });
    expect(r.name).toBe('cpu');
    expect(r.failures['register']).toBe('failed: wasm binary 404');
  });

  it('rejects bad options with MlError, and fails with no-backend when nothing initialises', async () => {
    await expect(selectBackend({ prefer: 'tpu' as 'cpu' })).rejects.toThrow(
      /backend must be one of auto, webgpu, webgl, wasm, cpu; got 'tpu'/,
    );
    await expect(selectBackend({ initTimeoutMs: 0 })).rejects.toThrow(/initTimeoutMs must be a positive number/);
    const e = await selectBackend({ gpu: null, candidates: ['webgl'] }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(MlError);
    expect((e as MlError).code).toBe('no-backend');
    expect((e as MlError).message).toContain('webgl unavailable: not registered');
  });
});

describe('parseBackendPreference', () => {
  it('reads ?backend= values', () => {
    expect(parseBackendPreference(null)).toBe('auto');
    expect(parseBackendPreference('')).toBe('auto');
    expect(parseBackendPreference('webgpu')).toBe('webgpu');
    expect(parseBackendPreference(new URLSearchParams('?backend=wasm').get('backend'))).toBe('wasm');
    expect(() => parseBackendPreference('WebGPU')).toThrow(MlError);
  });
});
