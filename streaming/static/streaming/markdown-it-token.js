/*
 * The task-list plugin's browser build (vendor/markdown-it-task-lists) takes markdown-it's
 * Token class from a global named Token when it loads; markdown-it's own build does not
 * publish one, so this file does, between the two.
 */
(function (global) {
  "use strict";

  const md = global.markdownit();
  global.Token = new md.core.State("", md, {}).Token;
})(window);
