/*
 * The browser libraries chat-markdown.js uses, loaded in Node from the vendored copies in
 * streaming/static/streaming/vendor/ (make vendor), so the tests need no npm packages.
 */
"use strict";

const fs = require("node:fs");
const path = require("node:path");

const VENDOR = path.join(__dirname, "../../streaming/static/streaming/vendor");

function vendored(file) {
  return require(path.join(VENDOR, file));
}

const markdownit = vendored("markdown-it/markdown-it.umd.min.js");

// Its UMD build requires markdown-it's Token module by package name, which only a
// node_modules tree resolves: hand it the class from the vendored markdown-it instead.
function loadTaskLists() {
  const source = fs.readFileSync(path.join(VENDOR, "markdown-it-task-lists/markdown-it-task-lists.umd.js"), "utf8");
  const module = { exports: {} };
  const md = markdownit();
  const Token = new md.core.State("", md, {}).Token;
  new Function("module", "exports", "require", source)(module, module.exports, () => Token);
  return module.exports;
}

const libs = {
  markdownit,
  taskLists: loadTaskLists(),
  texmath: vendored("markdown-it-texmath/texmath.js"),
  katex: vendored("katex/katex.min.js"),
  hljs: vendored("highlight.js/highlight.min.js"),
};

module.exports = { libs };
