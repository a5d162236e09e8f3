/*
 * Where the reader is in the list of messages, kept across changes: a reader at the bottom
 * follows new text down; a reader above is left where they are, and older messages put above
 * them do not move what they read.
 */

// Closer to the bottom than this counts as "at the bottom" (sub-pixel zoom, rounding).
const STICK_THRESHOLD_PX = 48;

/** The scrolling of `els.scroller`, which holds the list `els.list`. */
export function createScrolling(els) {
  function isAtBottom() {
    const s = els.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight <= STICK_THRESHOLD_PX;
  }

  function scrollToBottom() {
    els.scroller.scrollTop = els.scroller.scrollHeight;
  }

  // Run a change to the list; follow it down only if the reader was already at the bottom.
  function keepingScroll(change) {
    const stick = isAtBottom();
    change();
    if (stick) {
      scrollToBottom();
    }
  }

  // The first bubble the reader sees (some of), at the top of the view.
  function firstInView() {
    const top = els.scroller.getBoundingClientRect().top;
    return Array.from(els.list.children).find(
      (element) => element.getBoundingClientRect().bottom > top,
    );
  }

  /** The id of the saved message at the top of the view, or null. */
  function topMessageId() {
    return firstInView()?.dataset.messageId || null;
  }

  // Run a change that adds messages above the reader (older ones) or below, or replaces
  // those around: the message at the top of the view stays where it was on the screen.
  function keepingPlace(change) {
    const anchor = firstInView();
    const before = anchor ? anchor.getBoundingClientRect().top : 0;
    change();
    if (anchor && anchor.isConnected) {
      els.scroller.scrollTop += anchor.getBoundingClientRect().top - before;
    }
  }

  return { isAtBottom, scrollToBottom, keepingScroll, keepingPlace, topMessageId };
}
