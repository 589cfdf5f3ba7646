import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The dependency direction of ARCHITECTURE.md for the two bottom layers: protocol depends on
 * nothing but zod; core depends only on protocol (and itself), never on net, ui, PeerJS or tfjs.
 */
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [p] : [];
  });
}

/** Every module specifier a file imports or re-exports (static and dynamic). */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]/g)) out.push(m[1]!);
  for (const m of text.matchAll(/(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)) out.push(m[1]!);
  for (const m of text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]!);
  return out;
}

/** The layer (top folder under src/) a relative import lands in, or the package name. */
function target(file: string, spec: string): string {
  if (!spec.startsWith('.')) return `package:${spec.split('/')[0]}`;
  return relative(SRC, resolve(dirname(file), spec)).split(/[\\/]/)[0]!;
}

describe('layering', () => {
  it.each<[string, string[]]>([
    ['protocol', ['protocol', 'package:zod']],
    ['core', ['core', 'protocol']],
  ])('src/%s imports only %j', (layer, allowed) => {
    const files = sources(join(SRC, layer));
    expect(files.length).toBeGreaterThan(0);
    const bad = files.flatMap((f) =>
      imports(f)
        .map((spec) => ({ spec, to: target(f, spec) }))
        .filter(({ to }) => !allowed.includes(to))
        .map(({ spec }) => `${relative(SRC, f)} imports ${spec}`),
    );
    expect(bad).toEqual([]);
  });

  it('finds imports (the scanner is not silently empty)', () => {
    expect(imports(join(SRC, 'core', 'collectives', 'communicator.ts'))).toContain('../errors.ts');
  });
});
