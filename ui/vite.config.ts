import { defineConfig } from "vite";

// Tauri serves the built files; no remote content, relative paths.
export default defineConfig({
  base: "./",
  clearScreen: false,
  build: { outDir: "dist", target: "es2022" },
});
