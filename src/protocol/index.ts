export * from './version.ts';
export * from './frame.ts';
export * from './messages.ts';
export * from './checkpoint.ts';
export * from './run-config.ts';
export * from './base64.ts';
export * from './registry.ts';
export * from './catalogs.ts';
