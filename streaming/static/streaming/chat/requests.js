/*
 * What else a person asks of the conversation: stop the answer, regenerate or continue one,
 * show another version. Each is a frame whose result the server confirms (`done`, `start`, `branch`); the
 * page remembers what it asked (store.js), so the watchdog can ask again if the confirmation
 * is lost. Pure, like store.js: the page carries out the effects pushed onto `fx`.
 */
import { Effect } from "./effects.js";
import { ClientFrame } from "./protocol.js";
import { isAnswering, olderThanShown, send, streamingEntry, treeOf } from "./store.js";

/** Stop the answer streaming, once until its `done`. */
export function requestStop(state, fx) {
  const streaming = streamingEntry(state);
  if (state.stopRequested !== null || !streaming) {
    return;
  }
  if (send(state, { type: ClientFrame.STOP }, fx)) {
    state.stopRequested = streaming.id;
  }
}

/** Regenerate the answer `messageId`: a new version of it answers the same message. */
export function requestRetry(state, messageId, fx) {
  if (isAnswering(state) || state.editing !== null) {
    return;
  }
  if (send(state, { type: ClientFrame.RETRY, message_id: messageId }, fx)) {
    state.retryRequested = messageId;
    fx.push({ type: Effect.ALERT, text: "" });
  }
}

/**
 * Continue the answer `messageId`, cut off at its length limit: more of it streams into the
 * same answer. Awaited as a retry is, until its `start`.
 */
export function requestContinue(state, messageId, fx) {
  if (isAnswering(state) || state.editing !== null) {
    return;
  }
  if (send(state, { type: ClientFrame.CONTINUE_ANSWER, message_id: messageId }, fx)) {
    state.retryRequested = messageId;
    fx.push({ type: Effect.ALERT, text: "" });
  }
}

/**
 * Show another version of `entry` (`step` -1: the one before, 1: the one after) at once, by
 * the server's rule (the newest branch below it); its `branch` frame confirms it. The
 * version shown now, or null when none was asked for.
 */
export function switchVersion(state, entry, step, fx) {
  const tree = treeOf(state);
  const versions = tree.versions(entry);
  const target = versions[versions.indexOf(entry) + step];
  if (!target || target.id === null || isAnswering(state) || state.editing !== null) {
    return null;
  }
  if (!send(state, { type: ClientFrame.SWITCH, message_id: target.id }, fx)) {
    return null;
  }
  state.switchesOut += 1;
  const leaf = tree.descend(target);
  if (!leaf.stub) {
    state.leafId = leaf.key;
  } // else held without its text: the `branch` that comes back asks for that branch
  return target;
}

/** Ask for the messages above the first one shown, once until they come. */
export function requestHistory(state, fx) {
  const first = olderThanShown(state);
  if (!first || state.historyRequested !== null) {
    return;
  }
  if (send(state, { type: ClientFrame.HISTORY, before: first.id }, fx)) {
    state.historyRequested = first.id;
  }
}

/** Ask the server how the conversation stands (a `pong` comes back): the socket went quiet. */
export function ping(state, fx) {
  send(state, { type: ClientFrame.PING }, fx);
}
