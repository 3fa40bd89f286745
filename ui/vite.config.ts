/**
 * The web UI's build: `vite build ui` (from the repository root) writes dist/ui, which the
 * control plane serves at `/`. `vite ui` serves it for development, sending /api to a local
 * control plane (BULKHEAD_URL, default http://127.0.0.1:7480).
 */
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'react' } },
  build: {
    outDir: '../dist/ui',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1500,
    rolldownOptions: {
      onwarn(warning, warn) {
        // React libraries mark their modules "use client" for server components; a plain SPA ignores it.
        if (warning.code === 'MODULE_LEVEL_DIRECTIVE') return;
        warn(warning);
      },
    },
  },
  server: {
    proxy: { '/api': 'http://127.0.0.1:7480' },
  },
});
