/*
 * What else a person asks of the conversation: stop the answer, regenerate or continue one,
 * show another version. Each is a frame whose result the server confirms (`done`, `start`, `branch`); the
 * page remembers what it asked (store.js), so the watchdog can ask again if the confirmation
 * is lost. Pure, like store.js: the page carries out the effects pushed onto `fx`.
 *
 * Stop works from the moment of Send: before the page knows the answer (its `start`), the
 * stop names what the page sent, by its client_id, and the server stops the answer to it,
 * saved yet or not (docs/protocol.md, "Stop from the moment of Send").
 */
import { Effect } from "./effects.js";
import { ClientFrame, Role } from "./protocol.js";
import { holdsEnd, isAnswering, isUnderway, send, streamingEntry, treeOf } from "./store.js";

/** A new client_id, for a message or a retry: randomUUID only exists in secure contexts
 * (https, localhost). */
export function newClientId() {
  if (typeof crypto.randomUUID === "function") {
    return crypto.randomUUID();
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
  bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return [
    hex.slice(0, 8),
    hex.slice(8, 12),
    hex.slice(12, 16),
    hex.slice(16, 20),
    hex.slice(20),
  ].join("-");
}

/**
 * The client_id of what this page sent whose answer has not started yet: a message (in the
 * outbox, or saved and still the end of the branch shown), or a retry; null when none.
 */
export function awaitedClientId(state) {
  const unsent = Array.from(state.outbox.keys());
  if (unsent.length > 0) {
    return unsent[unsent.length - 1];
  }
  if (state.retryRequested !== null) {
    return state.retryClientId;
  }
  const leaf = state.messages.get(state.leafId);
  // `leafBefore`: a message this page sent (outbox.js), saved, whose `start` has not come.
  const sentHere = leaf && leaf.role === Role.USER && leaf.leafBefore !== undefined;
  return sentHere && leaf.id !== null ? leaf.clientId : null;
}

/** Whether Stop means something now: an answer streams, or one is awaited. */
export function canStop(state) {
  return streamingEntry(state) !== null || awaitedClientId(state) !== null;
}

/** Whether a stop is out, until the answer's `done` (or what shows it was not needed). */
export function isStopping(state) {
  return state.stopRequested !== null || state.earlyStop !== null;
}

/**
 * Stop the answer streaming, or the one awaited, once until its `done`. Asked without a
 * socket (a new chat's first message being posted, a reconnect), the stop is kept and
 * goes with the next snapshot (handlers.js), which shows whether it is still needed.
 */
export function requestStop(state, fx) {
  if (isStopping(state)) {
    return;
  }
  const streaming = streamingEntry(state);
  if (streaming) {
    send(state, { type: ClientFrame.STOP }, fx);
    state.stopRequested = streaming.id;
    return;
  }
  const clientId = awaitedClientId(state);
  if (clientId !== null) {
    send(state, { type: ClientFrame.STOP, client_id: clientId }, fx);
    state.earlyStop = clientId;
  }
}

/** A `start` came: a stop asked for before the page knew the answer is that answer's now. */
export function earlyStopStarted(state, frame) {
  const clientId = state.earlyStop;
  if (clientId === null) {
    return;
  }
  const question = state.messages.get(frame.parent_id);
  const retried = state.retryRequested !== null && state.retryClientId === clientId;
  if (retried || (question && question.clientId === clientId)) {
    state.earlyStop = null;
    const known = state.messages.get(frame.message_id);
    if (!known || isUnderway(known)) {
      state.stopRequested = frame.message_id; // its `done` ends the wait
    }
  }
}

/**
 * A snapshot shows what became of a stop asked for before the page knew the answer: the
 * answer streams (the stop is that answer's, sent again: a second stop is harmless), it
 * ended, or what it answers was not saved: a retry refused, or a message about to be sent
 * again, whose stop goes ahead of it, so that the server keeps the stop for it and saves
 * its answer stopped without asking the model (called before the outbox goes out again).
 */
export function settleEarlyStop(state, active, fx) {
  const clientId = state.earlyStop;
  if (clientId === null) {
    return;
  }
  if (state.outbox.has(clientId)) {
    send(state, { type: ClientFrame.STOP, client_id: clientId }, fx);
    return;
  }
  state.earlyStop = null;
  const sent = Array.from(state.messages.values()).find(
    (entry) => entry.clientId === clientId && entry.id !== null,
  );
  const answer = active && state.messages.get(active.message_id);
  if (sent && answer && (answer === sent || answer.parentId === sent.id)) {
    send(state, { type: ClientFrame.STOP }, fx);
    state.stopRequested = answer.id;
  }
}

/** What this page sent was refused: a stop asked for its answer is moot. */
export function forgetEarlyStop(state, clientId) {
  if (state.earlyStop === clientId) {
    state.earlyStop = null;
  }
}

/** Regenerate the answer `messageId`: a new version of it answers the same message. */
export function requestRetry(state, messageId, fx) {
  if (isAnswering(state) || state.editing !== null) {
    return;
  }
  // Its own client_id, so that a stop can name it before its answer is known.
  const clientId = newClientId();
  if (send(state, { type: ClientFrame.RETRY, message_id: messageId, client_id: clientId }, fx)) {
    state.retryRequested = messageId;
    state.retryClientId = clientId;
    fx.push({ type: Effect.ALERT, text: "" });
  }
}

/** The retry was refused, or no longer awaited: so is a stop asked for its answer. */
export function forgetRetry(state) {
  if (state.retryRequested !== null) {
    forgetEarlyStop(state, state.retryClientId);
  }
  state.retryRequested = null;
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
  // The reader is at this message: a snapshot of the branch through it is a window around it.
  state.readingAt = target.id;
  const leaf = tree.descend(target);
  if (leaf.stub) {
    // Held without its text: the `branch` that comes back asks for that branch.
  } else if (holdsEnd(state)) {
    state.leafId = leaf.key;
  } else {
    state.windowEnd = leaf.key; // shown down to there; its `branch` says where it ends
  }
  return target;
}

/** Ask the server how the conversation stands (a `pong` comes back): the socket went quiet. */
export function ping(state, fx) {
  send(state, { type: ClientFrame.PING }, fx);
}
