import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` proxies the API to a running voxgate (bash ops/run.sh), so the console can
// be worked on with hot reload; the built console (dist/) is served by voxgate itself.
export default defineConfig({
  plugins: [react()],
  build: { outDir: "dist", sourcemap: false, chunkSizeWarningLimit: 1000 },
  server: {
    proxy: { "/api": { target: process.env.VOX_GATEWAY_URL ?? "http://127.0.0.1:8080", changeOrigin: false } },
  },
});
