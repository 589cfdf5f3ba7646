/**
 * Benchmarks: `npm run bench -- <scenario> [options]`. Each scenario prints a table and writes
 * bench/results/<scenario>.json.
 *
 *   allreduce  [--peers 4[,8]] [--sizes 65536,1048576,4194304,16777216] [--reps 3]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ALLREDUCE_HEADER, benchAllreduce } from './allreduce.ts';

const list = (s: string, name: string): number[] =>
  s.split(',').map((x) => {
    const v = Number(x);
    if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name}: "${x}" is not a positive integer`);
    return v;
  });

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      peers: { type: 'string', default: '4' },
      sizes: { type: 'string', default: '65536,1048576,4194304,16777216' },
      reps: { type: 'string', default: '3' },
    },
  });
  const scenario = positionals[0] ?? 'allreduce';
  const outDir = path.resolve(import.meta.dirname, 'results');
  mkdirSync(outDir, { recursive: true });
  if (scenario !== 'allreduce') throw new Error(`unknown scenario "${scenario}"; available: allreduce`);
  const peers = list(values.peers, 'peers');
  const sizes = list(values.sizes, 'sizes');
  for (const s of sizes) if (s % 4) throw new Error(`--sizes: ${s} is not a multiple of 4 bytes (float32)`);
  console.log(`allreduce benchmark: peers ${peers.join(',')}, sizes ${sizes.join(',')} B, median of ${values.reps}`);
  console.log(ALLREDUCE_HEADER);
  const rows = await benchAllreduce({ peers, sizes, reps: list(values.reps, 'reps')[0]! }, (s) => console.log(s));
  const file = path.join(outDir, 'allreduce.json');
  writeFileSync(file, `${JSON.stringify(rows, null, 2)}\n`);
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`bench failed: ${(e as Error).message}`);
    process.exit(1);
  },
);
