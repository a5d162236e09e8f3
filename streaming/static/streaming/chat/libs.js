/*
 * The vendored browser libraries (streaming/static/streaming/vendor/, make vendor) that
 * render an answer's Markdown. They are UMD builds, loaded as classic `defer` scripts before
 * the page's modules (in document order, so they have run by then), and each publishes a
 * global; this is the one place that reads those globals.
 */

/** The libraries, as markdown.js's createMarkdown() takes them. */
export function vendoredLibs() {
  return {
    markdownit: globalThis.markdownit,
    taskLists: globalThis.markdownItTaskLists,
    texmath: globalThis.texmath,
    katex: globalThis.katex,
    hljs: globalThis.hljs,
    DOMPurify: globalThis.DOMPurify,
  };
}
