import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'bench/**/*.test.ts', 'kit/**/*.test.ts'],
    testTimeout: 30_000,
  },
});
