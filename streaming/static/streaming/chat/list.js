/*
 * The list page (streaming/templates/streaming/conversation_list.html): its list of
 * conversations loads more as it scrolls (sidebar.js), and its undo bar goes in time. It
 * has no socket: the list is current when loaded.
 */
import { attach, hideUndoWhenLate } from "./sidebar.js";

const list = document.getElementById("conversation-list");
if (list) {
  attach(document, list, () => null);
}
hideUndoWhenLate(document);
