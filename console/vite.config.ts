import { defineConfig } from 'vite';

// The console is built into the gateway's module, which embeds it
// (gateway/console, //go:embed dist) and serves it under /console/. The
// output is deterministic (content-hashed names, no timestamps), so that the
// committed dist can be checked against a fresh build.
export default defineConfig({
  base: '/console/',
  build: {
    outDir: '../gateway/console/dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    // No inline assets: the CSP allows scripts and styles from 'self' only
    // (images may be data: URLs).
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
});
