/*
 * The list page (streaming/templates/streaming/conversation_list.html): its list of
 * conversations loads more as it scrolls (sidebar.js), and its undo bar goes in time. It
 * has no socket: the list is current when loaded.
 */
import { attach, hideUndoWhenLate } from "./sidebar.js";
import { showTimes } from "./times.js";

// Each conversation's last activity as the chat page says a message's time, in the
// reader's time zone ("just now", "3 min ago", "yesterday").
const TIMES = ".conversation-time time";

const list = document.getElementById("conversation-list");
if (list) {
  attach(document, list, () => null);
  showTimes(list, TIMES);
  // Pages of the list loaded as it scrolls come with the server's words: drawn again.
  new MutationObserver(() => showTimes(list, TIMES)).observe(list, { childList: true });
}
hideUndoWhenLate(document);
