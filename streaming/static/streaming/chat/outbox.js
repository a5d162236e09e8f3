/*
 * The messages a person sends, from the composer or an edit, until the server has them.
 *
 * A message is drawn at once (under "local:<client_id>") and kept in the outbox until its
 * echo (a `message` frame with its client_id) confirms it. It goes out on the socket, or, on
 * a new chat's page, as the first message's POST (draft.js). A socket that closes loses
 * nothing: the next snapshot shows whether it was saved, and what was not is sent again with
 * the same client_id (the server recognises a resend). A refused one is taken back and its
 * text given back: nothing a person wrote is dropped. Pure, like store.js.
 */
import { Effect } from "./effects.js";
import { ClientFrame, Role } from "./protocol.js";
import { forgetEarlyStop } from "./requests.js";
import { forget, isAnswering, newEntry, send } from "./store.js";
import { settleWindow } from "./windowing.js";

/**
 * Send `content` as a user message following the message `parentId` (null: the first turn),
 * carrying `attachments` (uploaded files, as the server showed them; then `content` may be
 * empty): the composer's follows the branch shown, an edit's what the edited one followed
 * (`editOf`: the edited message's key). Its new entry; null, with the reason said, when it
 * cannot go.
 */
export function sendMessage(
  state,
  { content, parentId, clientId, editOf = null, attachments = [] },
  fx,
) {
  const empty = content.trim() === "" && attachments.length === 0;
  if (state.closedForGood || empty || isAnswering(state)) {
    return null;
  }
  // Count code points, as the server does, not UTF-16 units.
  const length = Array.from(content).length;
  if (length > state.maxChars) {
    const text = `The message is ${length} characters long; the limit is ${state.maxChars}.`;
    fx.push({ type: Effect.ALERT, text });
    return null;
  }
  fx.push({ type: Effect.ALERT, text: "" });
  const entry = newEntry({
    id: null,
    role: Role.USER,
    status: "sending",
    content,
    clientId,
    parentId,
    attachments,
  });
  entry.key = `local:${clientId}`;
  entry.leafBefore = state.leafId; // shown again if the server refuses it
  if (editOf !== null) {
    entry.editOf = editOf;
  }
  state.messages.set(entry.key, entry);
  state.leafId = entry.key;
  settleWindow(state); // an edit of a message shown, on a page away from the end, is its end
  fx.push({ type: Effect.RENDER, entry });
  const frame = {
    type: ClientFrame.USER_MESSAGE,
    content,
    client_id: clientId,
    parent_id: parentId,
  };
  if (attachments.length > 0) {
    frame.attachments = attachments.map((attachment) => attachment.id); // never their bytes
  }
  state.outbox.set(clientId, frame);
  transmit(state, clientId, fx);
  fx.push({ type: Effect.SCROLL_DOWN }); // your own message always brings you down
  return entry;
}

/** Send the outbox's message `clientId` (again: the server answers a resend with its echo). */
export function transmit(state, clientId, fx) {
  if (state.draft) {
    fx.push({ type: Effect.POST, clientId });
    return;
  }
  const frame = state.outbox.get(clientId);
  // Before the snapshot it stays in the outbox: the snapshot says whether it was saved.
  if (frame && send(state, frame, fx) && !state.inFlight.includes(clientId)) {
    state.inFlight.push(clientId);
  }
}

/** The server refused the oldest message out on this socket (an `error` frame answers it). */
export function rejectOldestSend(state, fx) {
  rejectSend(state, state.inFlight.shift(), fx);
}

/**
 * The server refused the message `clientId`: take its bubble back, and give its text and
 * files back to the composer or, for an edit, to the editor of the message it was to replace.
 */
export function rejectSend(state, clientId, fx) {
  if (!clientId || !state.outbox.has(clientId)) {
    return;
  }
  const frame = state.outbox.get(clientId);
  state.outbox.delete(clientId);
  forgetEarlyStop(state, clientId);
  const entry = state.messages.get(`local:${clientId}`);
  if (entry) {
    forget(state, entry, fx);
  }
  const edited = entry && entry.editOf ? state.messages.get(entry.editOf) : undefined;
  fx.push({
    type: Effect.GIVE_BACK,
    text: frame.content,
    attachments: entry ? entry.attachments : [],
    editOf: edited || null,
    notice: "",
  });
}
