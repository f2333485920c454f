// The web app's JavaScript held to the Python side's standard: ESLint's recommended rules and a
// few that catch what a browser forgives silently. `make lint` runs it.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/", "dist/"] },
  js.configs.recommended,
  {
    languageOptions: { ecmaVersion: 2024, sourceType: "module" },
    rules: {
      eqeqeq: "error",
      "no-var": "error",
      "prefer-const": "error",
      "no-shadow": "error",
      "no-implicit-globals": "error",
      "no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
    },
  },
  // HH_TRUSTED_KEY: the public key web/build.mjs builds into app.js (or null).
  { files: ["src/**/*.js"], languageOptions: { globals: { ...globals.browser, HH_TRUSTED_KEY: "readonly" } } },
  { files: ["public/sw.js"], languageOptions: { sourceType: "script", globals: globals.serviceworker } },
  { files: ["build.mjs", "eslint.config.js", "test/**/*.mjs"], languageOptions: { globals: globals.node } },
];
