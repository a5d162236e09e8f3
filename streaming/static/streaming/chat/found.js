/*
 * The message a page was opened at (`?message=`, a search hit: docs/protocol.md, "Opening at
 * a message"): brought to the middle of the view, marked for a few seconds, and given the
 * keyboard focus, so that a screen reader reads it and Tab goes on to its actions; a polite
 * live region says why the view is there.
 */

// How long the mark stays: long enough to find it, short enough not to stay in the way.
export const FOUND_MS = 6000;

/** Show `bubble` (a message's element) as the one the reader came for. */
export function reveal(bubble, announcer) {
  bubble.scrollIntoView({ block: "center" });
  bubble.classList.add("is-found");
  bubble.tabIndex = -1; // focusable by script, not a stop for Tab
  bubble.focus({ preventScroll: true });
  if (announcer) {
    announcer.textContent = "Showing the message you searched for.";
  }
  setTimeout(() => bubble.classList.remove("is-found"), FOUND_MS);
}
