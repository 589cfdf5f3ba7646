import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * ml/ (with ml/algorithms) sits beside data/ above core (ARCHITECTURE.md): it may import tfjs, core and protocol, never
 * net, ui, server or training. Only backends-browser.ts may import the browser-only backend packages
 * and Vite `?url` assets; everything else must load in Node.
 */
const ML = dirname(fileURLToPath(import.meta.url));
const SRC = resolve(ML, '..');

function sources(dir = ML): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [p] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]/g)) out.push(m[1]!);
  for (const m of text.matchAll(/(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)) out.push(m[1]!);
  for (const m of text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]!);
  return out;
}

function target(file: string, spec: string): string {
  if (!spec.startsWith('.')) return `package:${spec}`;
  return relative(SRC, resolve(dirname(file), spec)).split(/[\\/]/)[0]!;
}

describe('ml layering', () => {
  it('src/ml imports only ml, core, protocol and tfjs; browser-only packages only in backends-browser.ts', () => {
    const files = sources();
    expect(files.length).toBeGreaterThan(5);
    const bad: string[] = [];
    for (const f of files) {
      const browserOnly = f.endsWith('backends-browser.ts');
      for (const spec of imports(f)) {
        const to = target(f, spec);
        const ok =
          ['ml', 'core', 'protocol'].includes(to) ||
          to === 'package:@tensorflow/tfjs' ||
          (browserOnly && /^package:@tensorflow\/tfjs-backend-(webgpu|wasm)(\/|$)/.test(to));
        if (!ok) bad.push(`${relative(SRC, f)} imports ${spec}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('finds imports (the scanner is not silently empty)', () => {
    expect(imports(join(ML, 'backends-browser.ts'))).toContain('@tensorflow/tfjs-backend-wasm');
    expect(imports(join(ML, 'models.ts'))).toContain('../core/random.ts');
  });
});
