/*
 * ESLint for chatsite's own JavaScript (`make check`; `make format` fixes what it can): the
 * chat page's modules, its two classic scripts, and their Node tests. As strict as ruff is on
 * the Python side: every recommended rule, no undeclared globals (each file gets only its
 * environment's: the browser's or Node's), no unused names, imports sorted, and the modern
 * forms (const, ===, templates). Prettier formats (frontend/prettier.config.json), so no rule
 * here is about layout. Vendored libraries are not ours to lint.
 */
import js from "@eslint/js";
import simpleImportSort from "eslint-plugin-simple-import-sort";
import globals from "globals";

export default [
  { ignores: ["streaming/static/streaming/vendor/", "frontend/node_modules/"] },
  js.configs.recommended,
  {
    linterOptions: { reportUnusedDisableDirectives: "error" },
    plugins: { "simple-import-sort": simpleImportSort },
    rules: {
      "array-callback-return": "error",
      curly: "error",
      "default-case-last": "error",
      "dot-notation": "error",
      eqeqeq: "error",
      "no-console": ["error", { allow: ["warn"] }],
      "no-else-return": "error",
      "no-implicit-coercion": ["error", { allow: ["!!"] }],
      "no-implicit-globals": "error",
      "no-lonely-if": "error",
      "no-loop-func": "error",
      "no-new-func": "error",
      "no-param-reassign": "error",
      "no-promise-executor-return": "error",
      "no-self-compare": "error",
      "no-shadow": ["error", { hoist: "functions" }],
      "no-template-curly-in-string": "error",
      "no-throw-literal": "error",
      "no-unmodified-loop-condition": "error",
      "no-unneeded-ternary": "error",
      "no-unused-expressions": "error",
      "no-unused-vars": ["error", { args: "after-used", caughtErrors: "all" }],
      "no-useless-concat": "error",
      "no-useless-return": "error",
      "no-var": "error",
      "object-shorthand": "error",
      "prefer-arrow-callback": "error",
      "prefer-const": "error",
      "prefer-object-has-own": "error",
      "prefer-template": "error",
      radix: "error",
      "simple-import-sort/exports": "error",
      "simple-import-sort/imports": "error",
      yoda: "error",
    },
  },
  {
    // The chat page's modules: the browser's globals only.
    files: ["streaming/static/streaming/chat/**/*.js"],
    languageOptions: { sourceType: "module", globals: globals.browser },
  },
  {
    // Classic scripts: theme.js must run before the page is drawn, markdown-it-token.js
    // between two vendored libraries. theme.js also exports to Node's tests.
    files: ["streaming/static/streaming/*.js"],
    languageOptions: { sourceType: "script", globals: { ...globals.browser, module: "readonly" } },
  },
  {
    files: ["tests/js/**/*.js", "frontend/*.mjs"],
    languageOptions: { sourceType: "module", globals: globals.node },
  },
];
