// Build the web app into a folder any static server can host:
//   node build.mjs OUT_DIR [MODEL.tflite] [--trust KEY.pub]
// app.js (bundled with esbuild), the page, the LiteRT.js wasm (CPU builds), the service worker
// with its precache list, and the model as model.tflite when one is given. With --trust, the
// public key is built into app.js: the page then runs only models signed with its private key
// (a key fetched at run time could be left out by whoever serves the page). No CDN at run time.
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

import { publicKeyFromPem } from "./src/signature.js";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const trustAt = args.indexOf("--trust");
const trustArg = trustAt >= 0 ? args.splice(trustAt, 2)[1] : undefined;
const [outArg, modelArg] = args;
if (!outArg || (trustAt >= 0 && !trustArg) || args.length > 2) {
  console.error("usage: node build.mjs OUT_DIR [MODEL.tflite] [--trust KEY.pub]");
  process.exit(2);
}
let trustedKey = null;
if (trustArg) {
  try {
    trustedKey = readFileSync(trustArg, "utf8");
    publicKeyFromPem(trustedKey);
  } catch (error) {
    console.error(`error: ${trustArg}: ${error.code === "ENOENT" ? "no such key file" : error.message}`);
    process.exit(2);
  }
}
const out = resolve(outArg);
if (modelArg && !statSync(modelArg, { throwIfNoEntry: false })?.isFile()) {
  console.error(`error: ${modelArg}: no such model file`);
  process.exit(2);
}
// OUT is replaced whole: only when it is new, empty, or an earlier build (never a folder of other files).
if (existsSync(out) && !statSync(out).isDirectory()) {
  console.error(`error: ${outArg} is a file, not a folder`);
  process.exit(2);
}
const earlier = existsSync(out) ? readdirSync(out) : [];
if (earlier.length && !["index.html", "app.js", "sw.js"].every((name) => earlier.includes(name))) {
  console.error(`error: ${outArg} holds other files than a build of this app; give a new or empty folder`);
  process.exit(2);
}
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "wasm"), { recursive: true });

await build({
  entryPoints: [join(here, "src/app.js")], bundle: true, format: "esm", outfile: join(out, "app.js"), minify: true,
  logLevel: "warning", define: { HH_TRUSTED_KEY: JSON.stringify(trustedKey) },
});
for (const name of ["index.html", "manifest.webmanifest", "icon.svg"]) copyFileSync(join(here, "public", name), join(out, name));
// The plain and the compat CPU builds: LiteRT.js picks one by the browser's WebAssembly
// features. (The threaded and JSPI builds need headers or flags a static host may not give.)
const wasm = join(here, "node_modules/@litertjs/core/wasm");
for (const name of readdirSync(wasm).filter((n) => /^litert_wasm_(compat_)?internal\.(js|wasm)$/.test(n))) {
  copyFileSync(join(wasm, name), join(out, "wasm", name));
}
if (modelArg) copyFileSync(modelArg, join(out, "model.tflite"));

const files = ["./", "index.html", "app.js", "manifest.webmanifest", "icon.svg",
  ...readdirSync(join(out, "wasm")).map((n) => `wasm/${n}`), ...(modelArg ? ["model.tflite"] : [])];
const hash = createHash("sha256");
for (const file of files.filter((f) => f !== "./")) hash.update(readFileSync(join(out, file)));
const precache = JSON.stringify({ version: hash.digest("hex").slice(0, 12), files });
const worker = readFileSync(join(here, "public/sw.js"), "utf8").replace(/\/\*PRECACHE\*\/.*\/\*END\*\//, precache);
writeFileSync(join(out, "sw.js"), worker);
console.log(`built ${out}: ${files.length - 1} files${modelArg ? `, model ${modelArg}` : ""}${trustArg ? `, trusting ${trustArg}` : ""}`);
