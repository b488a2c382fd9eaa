import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

// Studio is served by `ecs serve` at /studio/; in development `npm run dev`
// proxies the API to a local server (ECS_URL, default http://127.0.0.1:8080).
const api = process.env.ECS_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/studio/',
  plugins: [react()],
  resolve: {
    // @rjsf/core's test helper imports the Ajv validator, which compiles
    // schemas with eval and is not used: Studio's interpreting validator
    // stands in (ADR 0013).
    alias: { '@rjsf/validator-ajv8': fileURLToPath(new URL('./src/lib/validator.ts', import.meta.url)) },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    // Keep the first screen small: heavy editors load on demand.
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: { '/v1': api },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
