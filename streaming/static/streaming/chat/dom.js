/*
 * An element in one call, for the modules that draw (view.js, files.js, attachments.js).
 * Text is only ever set as text, never parsed as HTML.
 */

/** A new `tag` element with `className` (if any) and `text` (if given) as its text. */
export function node(tag, className, text) {
  const element = document.createElement(tag);
  if (className) {
    element.className = className;
  }
  if (text !== undefined) {
    element.textContent = text;
  }
  return element;
}
