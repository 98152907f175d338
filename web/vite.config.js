// Builds the dashboard into dist/, which the api serves at / (WEB_DIR).
import { defineConfig } from 'vite';

export default defineConfig({
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 400 },
});
