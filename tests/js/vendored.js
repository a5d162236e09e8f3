/*
 * The browser libraries chat/markdown.js uses, loaded in Node from the vendored copies in
 * streaming/static/streaming/vendor/ (make vendor), so the tests need no npm packages. They
 * are UMD builds: Node loads them as CommonJS.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const VENDOR = "../../streaming/static/streaming/vendor/";
const require = createRequire(import.meta.url);

function vendored(file) {
  return require(`${VENDOR}${file}`);
}

const markdownit = vendored("markdown-it/markdown-it.umd.min.js");

// Its UMD build requires markdown-it's Token module by package name, which only a
// node_modules tree resolves: hand it the class from the vendored markdown-it instead.
function loadTaskLists() {
  const file = `${VENDOR}markdown-it-task-lists/markdown-it-task-lists.umd.js`;
  const source = readFileSync(new URL(file, import.meta.url), "utf8");
  const module = { exports: {} };
  const md = markdownit();
  const Token = new md.core.State("", md, {}).Token;
  // eslint-disable-next-line no-new-func -- the vendored file itself, run as CommonJS would
  new Function("module", "exports", "require", source)(module, module.exports, () => Token);
  return module.exports;
}

export const libs = {
  markdownit,
  taskLists: loadTaskLists(),
  texmath: vendored("markdown-it-texmath/texmath.js"),
  katex: vendored("katex/katex.min.js"),
  hljs: vendored("highlight.js/highlight.min.js"),
};
