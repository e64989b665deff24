import { defineConfig } from "vitest/config";

// The dashboard is served by the Python package (`km serve` / `km ui`) from
// src/kilometers/server/static/; the server sends a strict CSP (script-src 'self',
// style-src 'self'), so everything is bundled: no CDN, no inline script or style.
const backend = process.env.KM_BACKEND ?? "http://127.0.0.1:8899";

export default defineConfig({
  base: "/",
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  build: {
    outDir: "../src/kilometers/server/static",
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2022",
    sourcemap: false,
    // Keep every asset a file: a data: URL for a font or script would fight the CSP.
    assetsInlineLimit: 0,
  },
  server: {
    // `npm run dev` proxies the API to a running `km serve` (KM_BACKEND to change it).
    // The server refuses unsafe requests whose Origin is not its own, so the proxy
    // presents the backend's origin.
    proxy: Object.fromEntries(
      ["/api", "/auth"].map((prefix) => [
        prefix,
        {
          target: backend,
          changeOrigin: true,
          configure: (proxy: {
            on: (
              ev: "proxyReq",
              fn: (req: { setHeader(k: string, v: string): void; getHeader(k: string): unknown }) => void,
            ) => void;
          }) => {
            proxy.on("proxyReq", (req) => {
              if (req.getHeader("origin")) req.setHeader("origin", backend);
            });
          },
        },
      ]),
    ),
  },
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
