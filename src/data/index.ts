/**
 * Datasets and partitioning: pure TypeScript shared by the page, the server and the tests (no
 * DOM, no Node modules, no tfjs). Depends only on `core/random.ts`.
 */
export * from './builtin.ts';
export * from './csv.ts';
export * from './dataset.ts';
export * from './idx.ts';
export * from './partition.ts';
export * from './sampling.ts';
export * from './shard-client.ts';
export * from './shard-format.ts';
export * from './synthetic.ts';
