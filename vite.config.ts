import { defineConfig } from 'vite';

export default defineConfig({
  server: {
    // Test output and browser profiles must not trigger reloads of the tabs under test.
    watch: { ignored: ['**/test-results/**', '**/playwright-report/**', '**/bench/results/**', '**/.tmp/**', '**/dist/**'] },
  },
  // Pre-bundle at startup, so the first tab does not trigger a re-optimisation reload.
  optimizeDeps: { include: ['peerjs', 'zod'] },
  build: { outDir: 'dist', target: 'es2022', sourcemap: true },
});
