/*
 * One handler for each frame the server sends (docs/protocol.md, "Server → client"): a
 * function of (state, frame) that brings the state in line with what the frame says and
 * returns what the page must do about it, as effects (effects.js). No DOM, no socket, no
 * dispatch here (dispatch.js routes frames to them), so every frame sequence, lost,
 * repeated or out of order, is tested in Node (tests/js/).
 *
 * Any frame can be lost (group sends are dropped under load), so nothing here waits for one
 * for ever: a gap in an answer asks for a `sync` (stream.js); a frame about a message this
 * page does not know, or a `pong` that disagrees with it, asks for a `resync`, whose fresh
 * `snapshot` settles everything. Error frames are refusals.js's.
 */
import { closeForGood, DELETED_TEXT, served } from "./connection.js";
import { Effect } from "./effects.js";
import { transmit } from "./outbox.js";
import { ClientFrame, ServerFrame, Status } from "./protocol.js";
import { refused } from "./refusals.js";
import { earlyStopStarted, settleEarlyStop } from "./requests.js";
import {
  assistantEntry,
  endStream,
  forget,
  heldState,
  isUnderway,
  requestResync,
  savedCount,
  send,
  showStreamText,
  streamFor,
  treeOf,
  upsertStored,
} from "./store.js";
import { pongDisagreement } from "./sync.js";
import { holdNewer, holdWindow, resumeAnswer, settleJump, settleWindow } from "./windowing.js";

/** The conversation's title: a frame without one (a resend's echo) says nothing about it. */
function showTitle(state, title, fx) {
  if (typeof title !== "string") {
    return;
  }
  state.storedTitle = title;
  // Still unnamed, the page already says "New conversation".
  if (title) {
    fx.push({ type: Effect.TITLE, title });
  }
}

/** The conversation's model: anything but a model choice is no news. */
function showModel(state, choice, fx) {
  if (choice && typeof choice.model === "string") {
    state.modelChoice = choice;
    fx.push({ type: Effect.MODEL, choice });
  }
}

// The page was rendered (or last updated) at some moment; the snapshot is the truth now: a
// window of the conversation, at its end or around where the reader is. What the page held
// besides goes (deleted meanwhile by staff, or older and newer messages it asked for, which
// it can ask for again), so a page holds a window however long it stays open.
function reconcile(state, frame, fx) {
  const held = holdWindow(state, frame, fx);
  for (const entry of Array.from(state.messages.values())) {
    // One not saved yet stays, and is sent again.
    if (!held.has(entry.key) && entry.id !== null) {
      forget(state, entry, fx);
    }
  }
  // Every stored message the page does not hold, as the pong will count them.
  state.unheld = Math.max(0, (frame.count ?? savedCount(state)) - savedCount(state));
  state.historyRequested = null;
  state.newerRequested = null;
  state.newsBelow = false;
  // A message of this page's still on its way is the end of the branch shown, as it was.
  const leaf = state.leafId;
  const sending = leaf !== null && leaf.startsWith("local:") && state.messages.has(leaf);
  if (!sending) {
    state.leafId = frame.leaf_id || null;
    state.windowEnd = frame.window_end || null;
  }
  const activeId = frame.active ? frame.active.message_id : null;
  for (const id of Array.from(state.streams.keys())) {
    if (id !== activeId) {
      endStream(state, id); // it ended while this page was not listening
    }
  }
}

// The snapshot shows what became of the requests this page waited on.
function settleRequests(state, active, fx) {
  // Frames on one socket are handled in order: the retry was handled before this snapshot
  // was read, so its answer is in it (and streams, or ended), or it was refused.
  state.retryRequested = null;
  if (state.stopRequested === null) {
    return;
  }
  // Still streaming: the stop (or its way to the answer) was lost. Ask again; stopping an
  // answer twice is harmless.
  const stillStreaming = active && active.message_id === state.stopRequested;
  if (!stillStreaming || !send(state, { type: ClientFrame.STOP }, fx)) {
    state.stopRequested = null;
  }
}

function snapshot(state, frame) {
  const fx = [];
  state.snapshots += 1;
  // Frames about the list may have been missed before any snapshot after the first.
  fx.push({ type: Effect.LIST_REFRESH, missedFrames: state.snapshots > 1 });
  showTitle(state, frame.title, fx);
  fx.push({ type: Effect.SYSTEM_PROMPT, prompt: frame.system_prompt || "" });
  showModel(state, frame.model_choice, fx);
  served(state);
  state.resyncRequested = false;
  state.switchesOut = 0; // the snapshot's branch is the one shown now
  state.sessionEndedText = null; // if the last socket's session ended, this one's holds
  fx.push({ type: Effect.STATUS, connection: "open", text: "", kind: "" });
  reconcile(state, frame, fx);
  const active = frame.active;
  if (active) {
    resumeAnswer(state, active, fx);
  }
  settleRequests(state, active, fx);
  fx.push({ type: Effect.LIST_OWN, answering: Boolean(active), updatedAt: null });
  settleEarlyStop(state, active, fx); // ahead of a message sent again: see requests.js
  // Everything still in the outbox now is not saved (the snapshot would show it): again,
  // with the same client_id.
  for (const clientId of state.outbox.keys()) {
    transmit(state, clientId, fx);
  }
  fx.push({ type: Effect.AWAIT_AFRESH });
  settleJump(state, fx);
  return fx;
}

// A message or an answer the page had not heard of ends the branch shown: while the page
// does not hold the end, it goes past the gap (unless it joins the part shown: an edit of a
// message shown), and the reader is told that something new is below.
function newEnd(state) {
  if (!settleWindow(state)) {
    state.newsBelow = true;
  }
}

function message(state, frame) {
  const fx = [];
  showTitle(state, frame.title, fx);
  const known = state.messages.has(frame.message.id);
  const entry = upsertStored(state, frame.message, fx);
  if (!known) {
    // A new message (ours confirmed, or another tab's) ends the branch shown, with whatever
    // already follows it.
    state.leafId = treeOf(state).descend(entry).key;
    newEnd(state);
  }
  return fx;
}

function start(state, frame) {
  const fx = [];
  earlyStopStarted(state, frame);
  state.retryRequested = null;
  const known = state.messages.get(frame.message_id);
  // An answer with text to go on from is continued (Continue): it streams again.
  const continued = frame.seq > 0;
  if (known && !isUnderway(known) && !continued) {
    return fx; // late: this answer has ended already
  }
  const entry = assistantEntry(state, frame.message_id, fx, frame.parent_id, frame.created_at);
  if (!known || continued) {
    state.leafId = entry.key; // a new or continued answer is the end of the branch shown
    newEnd(state);
  }
  if (!entry.model && frame.model) {
    // Who answers, shown under it while it streams.
    entry.model = frame.model;
    entry.providerName = frame.provider_name || "";
    fx.push({ type: Effect.RENDER, entry });
  }
  fx.push({ type: Effect.LIST_OWN, answering: true, updatedAt: frame.created_at });
  // A new answer counts from seq 0, a continued one from its stored text and seq; one known
  // from the snapshot keeps its text and seq.
  const stream = streamFor(state, frame.message_id);
  stream.startAt(frame.text || "", frame.seq || 0);
  if (entry.status !== Status.STREAMING) {
    entry.status = Status.STREAMING;
    // A continued answer's notice of where it stopped no longer holds.
    entry.error = "";
    entry.continuable = false;
    entry.content = stream.text;
    fx.push({ type: Effect.RENDER, entry });
  }
  return fx;
}

function retrying(state, frame) {
  // Only a notice (the wait before the server asks the provider again): a lost one costs
  // nothing, so one for an unknown message asks for nothing either.
  const entry = state.messages.get(frame.message_id);
  return entry ? [{ type: Effect.RETRYING, entry, frame }] : [];
}

function delta(state, frame) {
  const fx = [];
  const entry = state.messages.get(frame.message_id);
  if (!entry) {
    requestResync(state, fx); // its `start` was lost: the snapshot has the answer so far
  } else if (entry.status === Status.STREAMING) {
    // Otherwise late or repeated: `done` already gave the final text.
    const stream = streamFor(state, frame.message_id);
    if (stream.delta(frame.seq, frame.text)) {
      showStreamText(entry, stream, fx);
    }
  }
  return fx;
}

function sync(state, frame) {
  const fx = [];
  const stream = state.streams.get(frame.message_id);
  if (!stream) {
    // The answer has ended (its `done` carries the text), or the page never knew it.
    if (!state.messages.has(frame.message_id)) {
      requestResync(state, fx);
    }
  } else if (stream.sync(frame.after_seq, frame.seq, frame.text)) {
    showStreamText(state.messages.get(frame.message_id), stream, fx);
  }
  return fx;
}

function done(state, frame) {
  const fx = [];
  const entry = state.messages.get(frame.message_id);
  if (!entry) {
    // Its `start` (or its user message) was lost: the snapshot has the whole exchange.
    requestResync(state, fx);
    return fx;
  }
  if (isUnderway(entry)) {
    fx.push({ type: Effect.ANSWER_ENDED, entry, frame });
  }
  const stream = state.streams.get(frame.message_id);
  if (stream) {
    // The saved text wins. More than the page assembled (up to `seq`) is a lost tail, healed
    // here; less is an answer swept from its checkpoint. Any other difference means frames
    // were doubled or misapplied somewhere.
    const { text, last } = stream;
    const content = frame.message.content;
    if (stream.finish(frame.seq, content) === "mismatch") {
      fx.push({
        type: Effect.WARN,
        text:
          `chat: answer ${frame.message_id} (${frame.status}) assembled ${text.length} ` +
          `characters up to delta ${last}, saved ${content.length} up to delta ${frame.seq}; ` +
          "showing the saved text",
      });
    }
  }
  endStream(state, frame.message_id);
  fx.push({ type: Effect.LIST_OWN, answering: false, updatedAt: null });
  if (state.stopRequested === frame.message_id) {
    state.stopRequested = null;
  }
  upsertStored(state, frame.message, fx);
  return fx;
}

function branch(state, frame) {
  const fx = [];
  if (state.switchesOut > 0) {
    state.switchesOut -= 1;
    if (state.switchesOut > 0) {
      return fx; // an earlier switch of this page's: the reader has moved on since
    }
  }
  const leaf = state.messages.get(frame.leaf_id);
  if (leaf && !leaf.stub) {
    state.leafId = frame.leaf_id;
  }
  // A message this page missed, or a version it holds without its text (or what follows
  // it), or, away from the end, a branch that may no longer pass the part shown: the
  // snapshot has that branch (around the reader, if it still passes there).
  if (!leaf || leaf.stub || !settleWindow(state)) {
    requestResync(state, fx);
  }
  return fx;
}

/** Older (`before`) or newer (`after`) messages of the branch shown, asked for with
 * `history`: held, the reader's place kept. */
function history(state, frame) {
  const fx = [];
  if (frame.after !== undefined) {
    holdNewer(state, frame, fx);
    return fx;
  }
  if (state.historyRequested === frame.before) {
    state.historyRequested = null;
  }
  const before = savedCount(state);
  holdWindow(state, frame, fx);
  state.unheld = Math.max(0, state.unheld - (savedCount(state) - before));
  return fx;
}

function pong(state, frame) {
  const fx = [];
  if (pongDisagreement(frame, heldState(state)) !== null) {
    requestResync(state, fx);
  }
  return fx;
}

/** The handler of each frame type the page acts on. */
export const handlers = Object.freeze({
  [ServerFrame.SNAPSHOT]: snapshot,
  [ServerFrame.MESSAGE]: message,
  [ServerFrame.START]: start,
  [ServerFrame.RETRYING]: retrying,
  [ServerFrame.DELTA]: delta,
  [ServerFrame.SYNC]: sync,
  [ServerFrame.DONE]: done,
  [ServerFrame.SYSTEM_PROMPT]: (state, frame) => [
    { type: Effect.SYSTEM_PROMPT, prompt: frame.system_prompt },
  ],
  [ServerFrame.TITLE]: (state, frame) => {
    const fx = [];
    showTitle(state, frame.title, fx);
    return fx;
  },
  [ServerFrame.MODEL]: (state, frame) => {
    const fx = [];
    showModel(state, frame.model_choice, fx);
    return fx;
  },
  [ServerFrame.BRANCH]: branch,
  [ServerFrame.HISTORY]: history,
  [ServerFrame.CONVERSATION_CHANGED]: (state, frame) => [
    { type: Effect.LIST_CHANGED, conversation: frame.conversation },
  ],
  [ServerFrame.CONVERSATION_REMOVED]: (state, frame) => [
    { type: Effect.LIST_REMOVED, id: frame.conversation_id },
  ],
  [ServerFrame.PONG]: pong,
  [ServerFrame.DELETED]: (state, frame) => {
    // The server closes the socket next, with 4404.
    const fx = [];
    closeForGood(state, frame.message || DELETED_TEXT, fx);
    return fx;
  },
  [ServerFrame.ERROR]: refused,
});
