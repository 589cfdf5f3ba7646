import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The dependency direction of ARCHITECTURE.md, checked on every non-test source file:
 * protocol <- core <- {data, ml} <- training <- main; net depends on core and protocol; ui never
 * calls net; server depends on protocol, core and data. Only ml/backends-browser.ts loads the
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
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(import|export)\s+[^'"]*?from\s*['"]([^'"]+)['"]/g)) out.push(m[2]!);
  for (const m of text.matchAll(/(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)) out.push(m[1]!);
  for (const m of text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]!);
  return out;
}

/** The layer (top folder under src/, or a root file) an import lands in, or `package:<name>`. */
function target(file: string, spec: string): string {
  if (!spec.startsWith('.')) return `package:${spec}`;
  return relative(SRC, resolve(dirname(file), spec)).split(/[\\/]/)[0]!;
}

const TFJS = /^package:@tensorflow\/tfjs$/;
const RULES: Record<string, (to: string, file: string) => boolean> = {
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
  // The dashboard sits above training and draws what it makes (data summaries, trees), but never
  // loads tfjs or reaches the network itself. The plots use uPlot (a chart library, as the
  // dashboard issue asks, not hand-drawn canvas code).
  ui: (to) => ['ui', 'core', 'protocol', 'data', 'ml', 'package:uplot', 'package:uplot/dist/uPlot.min.css'].includes(to),
  server: (to) => ['server', 'protocol', 'core', 'data'].includes(to) || to.startsWith('package:'),
};

describe('layering', () => {
  it.each(Object.keys(RULES))('src/%s imports only what ARCHITECTURE.md allows', (layer) => {
    const files = sources(join(SRC, layer));
    expect(files.length).toBeGreaterThan(0);
    const bad = files.flatMap((f) =>
      imports(f)
        .filter((spec) => !RULES[layer]!(target(f, spec), f))
        .map((spec) => `${relative(SRC, f)} imports ${spec}`),
    );
    expect(bad).toEqual([]);
  });

  it('the scanner finds imports, type-only ones and multi-line ones included', () => {
    expect(imports(join(SRC, 'core', 'collectives', 'communicator.ts'))).toContain('../errors.ts');
    expect(imports(join(SRC, 'ml', 'backends-browser.ts'))).toContain('@tensorflow/tfjs-backend-wasm');
    expect(imports(join(SRC, 'ui', 'status-panel.ts'))).toContain('../core/membership/view.ts');
  });
});
