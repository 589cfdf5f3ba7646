import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The dependency direction of ARCHITECTURE.md, checked on every non-test source file:
 * protocol <- core <- {data, ml} <- training <- runtime <- main; net depends on core and protocol;
 * runtime wires net and training without a DOM; ui never calls net, and sees the runtime through
 * its types only; server depends on protocol, core and data. Only ml/backends-browser.ts loads the
 * browser-only tfjs backends, so the rest of ml runs in Node.
 */
const SRC = dirname(fileURLToPath(import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [p] : [];
  });
}

/** Every module a file imports or re-exports (static and dynamic), type-only imports included. */
function imports(file: string): string[] {
  return importsOf(file).map((i) => i.spec);
}

/** Each import of {@link imports} and whether it is type-only (`import type ...` / `export type ...`). */
function importsOf(file: string): { spec: string; typeOnly: boolean }[] {
  const text = readFileSync(file, 'utf8');
  const out: { spec: string; typeOnly: boolean }[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(import|export)\s+(type\s)?[^'"]*?from\s*['"]([^'"]+)['"]/g))
    out.push({ spec: m[3]!, typeOnly: m[2] !== undefined });
  for (const m of text.matchAll(/(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)) out.push({ spec: m[1]!, typeOnly: false });
  for (const m of text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push({ spec: m[1]!, typeOnly: false });
  return out;
}

/** A file's code without its comments (a rough cut: enough to look for names in it). */
const code = (file: string): string =>
  readFileSync(file, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:'"`])\/\/.*$/gm, '$1');

/** Browser globals the runtime must not touch: it runs in Node too (a later issue). */
const DOM_GLOBALS = /(?<![.\w$])(document|window|HTMLElement|location)\b/g;

/** The layer (top folder under src/, or a root file) an import lands in, or `package:<name>`. */
function target(file: string, spec: string): string {
  if (!spec.startsWith('.')) return `package:${spec}`;
  return relative(SRC, resolve(dirname(file), spec)).split(/[\\/]/)[0]!;
}

const TFJS = /^package:@tensorflow\/tfjs$/;
const RULES: Record<string, (to: string, file: string, typeOnly: boolean) => boolean> = {
  protocol: (to) => ['protocol', 'package:zod'].includes(to),
  core: (to) => ['core', 'protocol'].includes(to),
  data: (to) => ['data', 'core'].includes(to),
  ml: (to, file) =>
    ['ml', 'core', 'protocol'].includes(to) ||
    TFJS.test(to) ||
    (file.endsWith('backends-browser.ts') && /^package:@tensorflow\/tfjs-backend-(webgpu|wasm)(\/|$)/.test(to)),
  // SHA-256 in pure TypeScript (@noble/hashes): pages outside a secure context have no WebCrypto.
  training: (to) => ['training', 'ml', 'data', 'core', 'protocol', 'package:@noble/hashes/sha2'].includes(to) || TFJS.test(to),
  net: (to) => ['net', 'core', 'protocol', 'package:peerjs'].includes(to),
  // The headless peer: session, group adapter, runs, results and exports; no DOM (checked below).
  runtime: (to) => ['runtime', 'training', 'ml', 'data', 'net', 'core', 'protocol'].includes(to) || TFJS.test(to),
  // The dashboard sits above training and draws what it makes (data summaries, trees), but never
  // loads tfjs or reaches the network itself. The plots use uPlot (a chart library, as the
  // dashboard issue asks, not hand-drawn canvas code); the room's link a QR code. It renders the
  // runtime's events and may name the runtime's types (`import type` only, checked below).
  ui: (to, _file, typeOnly) =>
    ['ui', 'core', 'protocol', 'data', 'ml', 'package:uplot', 'package:uplot/dist/uPlot.min.css', 'package:qrcode'].includes(to) ||
    (to === 'runtime' && typeOnly),
  server: (to) => ['server', 'protocol', 'core', 'data'].includes(to) || to.startsWith('package:'),
  // The Node peer: the runtime and the page's API on node-datachannel's WebRTC, ws and Dawn's WebGPU.
  // Nothing imports it but the harness (which starts it as a process) and the CLI.
  node: (to) =>
    [
      'node',
      'runtime',
      'page-api.ts',
      'training',
      'ml',
      'data',
      'net',
      'core',
      'protocol',
      'package:node-datachannel/polyfill',
      'package:ws',
      'package:webgpu',
    ].includes(to) ||
    to.startsWith('package:node:') ||
    /^package:@tensorflow\/tfjs(-backend-(webgpu|wasm))?$/.test(to),
};

describe('layering', () => {
  it.each(Object.keys(RULES))('src/%s imports only what ARCHITECTURE.md allows', (layer) => {
    const files = sources(join(SRC, layer));
    expect(files.length).toBeGreaterThan(0);
    const bad = files.flatMap((f) =>
      importsOf(f)
        .filter(({ spec, typeOnly }) => !RULES[layer]!(target(f, spec), f, typeOnly))
        .map(({ spec }) => `${relative(SRC, f)} imports ${spec}`),
    );
    expect(bad).toEqual([]);
  });

  it('src/runtime touches no DOM global (document, window, HTMLElement, location)', () => {
    const bad = sources(join(SRC, 'runtime')).flatMap((f) => [...code(f).matchAll(DOM_GLOBALS)].map((m) => `${relative(SRC, f)}: ${m[1]}`));
    expect(bad).toEqual([]);
  });

  it('the DOM check sees globals in code, not in comments or as properties', () => {
    const found = (text: string): string[] => [...text.matchAll(DOM_GLOBALS)].map((m) => m[1]!);
    expect(found('const a = document.body; location.href; new window.URL(x); let e: HTMLElement;')).toEqual([
      'document',
      'location',
      'window',
      'HTMLElement',
    ]);
    expect(found('a.location; this.window; documents; myLocation')).toEqual([]);
  });

  it('the scanner tells type-only imports from value imports', () => {
    const ui = importsOf(join(SRC, 'ui', 'dashboard.ts'));
    expect(ui).toContainEqual({ spec: '../runtime/events.ts', typeOnly: true });
    expect(ui).toContainEqual({ spec: './charts.ts', typeOnly: false });
  });

  it('the scanner finds imports, type-only ones and multi-line ones included', () => {
    expect(imports(join(SRC, 'core', 'collectives', 'communicator.ts'))).toContain('../errors.ts');
    expect(imports(join(SRC, 'ml', 'backends-browser.ts'))).toContain('@tensorflow/tfjs-backend-wasm');
    expect(imports(join(SRC, 'ui', 'status-panel.ts'))).toContain('../core/membership/view.ts');
  });
});
