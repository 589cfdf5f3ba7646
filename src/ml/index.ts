/**
 * ml/: tfjs backend selection, models, gradient <-> flat vector, optimizers. Browser-only backend
 * registration lives in `./backends-browser.ts` and is deliberately not re-exported here, so that
 * Node code (tests, the CLI) can import this barrel.
 */
export * from './errors.ts';
export * from './backend.ts';
export * from './models.ts';
export * from './flat.ts';
export * from './step.ts';
export * from './optimizer.ts';
export * from './probe.ts';
