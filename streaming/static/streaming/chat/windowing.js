/*
 * The part of a long conversation the page holds (docs/protocol.md, "Older messages" and
 * "Opening at a message"): a window of the branch shown, at its end or around a message
 * (a search hit), and the stubs of other versions. Older messages come with `history`
 * `before` as the reader scrolls up, newer ones with `history` `after` as they scroll down,
 * and "Jump to latest" asks for a snapshot of the end.
 *
 * While the page does not hold the end (`state.windowEnd`), frames about messages past the
 * gap (another tab's message, its answer streaming) are held and followed but not shown: the
 * page says there is something new below, and shows them once the gap is filled, complete.
 * Pure, like store.js: the page carries out the effects pushed onto `fx`.
 */
import { Effect } from "./effects.js";
import { ClientFrame, Status } from "./protocol.js";
import {
  assistantEntry,
  holdsEnd,
  savedCount,
  send,
  sendResync,
  shownPath,
  showStreamText,
  streamFor,
  treeOf,
  upsertStored,
  upsertStub,
} from "./store.js";

/** The first message shown when older ones are stored above it, else null. */
export function olderThanShown(state) {
  const first = shownPath(state)[0];
  return first && first.id !== null && first.parentId !== null ? first : null;
}

/** The last message shown when newer ones of the branch are stored below it, else null. */
export function newerThanShown(state) {
  return holdsEnd(state) ? null : state.messages.get(state.windowEnd) || null;
}

/** Whether the branch shown passes a message held without its text: the server's window
 * of that branch must be asked for. */
export function branchHasStub(state) {
  return shownPath(state).some((entry) => entry.stub);
}

/**
 * Hold the end again once the gap is filled: when the end of the branch shown is held and
 * its way up reaches the top of the part shown, the page shows the branch whole (a message
 * past the gap, or an edit of one it holds, may have joined it). Whether it holds the end.
 */
export function settleWindow(state) {
  if (holdsEnd(state)) {
    return true;
  }
  const end = state.messages.get(state.windowEnd);
  const leaf = state.messages.get(state.leafId);
  if (end && leaf && !leaf.stub) {
    const tree = treeOf(state);
    if (tree.path(leaf)[0] === tree.path(end)[0]) {
      state.windowEnd = null;
      state.newsBelow = false;
    }
  }
  return holdsEnd(state);
}

/** Hold the messages of a window (a snapshot's or a history's) and stubs of their other
 * versions; the keys of them all. */
export function holdWindow(state, frame, fx) {
  const keys = new Set(frame.messages.map((each) => upsertStored(state, each, fx).key));
  for (const stub of frame.versions || []) {
    upsertStub(state, stub);
    keys.add(stub.id);
  }
  return keys;
}

/** The streaming answer's text up to a seq, as a snapshot or a history gives it: followed on
 * from there, unless the page already holds more of it. */
export function resumeAnswer(state, active, fx) {
  const entry = assistantEntry(state, active.message_id, fx);
  if (entry.status !== Status.STREAMING) {
    entry.status = Status.STREAMING;
    fx.push({ type: Effect.RENDER, entry });
  }
  const stream = streamFor(state, active.message_id);
  stream.resume(active.text, active.seq);
  showStreamText(entry, stream, fx);
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

/** Ask for the messages below the last one shown, once until they come. */
export function requestNewer(state, fx) {
  const last = newerThanShown(state);
  if (!last || state.newerRequested !== null) {
    return;
  }
  if (send(state, { type: ClientFrame.HISTORY, after: last.id }, fx)) {
    state.newerRequested = last.id;
  }
}

/**
 * Go to the end of the conversation. Held already, the page only scrolls there; else it asks
 * for a snapshot of the end, which replaces the window (its `Effect.JUMPED` brings the reader
 * down). `send`: the composer's text is sent once there (a message follows the end).
 */
export function requestJump(state, fx, { send: andSend = false } = {}) {
  if (holdsEnd(state)) {
    fx.push({ type: Effect.JUMPED, send: andSend });
    return;
  }
  state.jumpRequested = true;
  state.sendAfterJump = state.sendAfterJump || andSend;
  state.readingAt = null;
  // No socket now: the next one's snapshot is of the end (anchorOf in store.js).
  sendResync(state, fx);
}

/** A snapshot came: the reader who asked for the end is brought there once it holds it. */
export function settleJump(state, fx) {
  if (state.jumpRequested && holdsEnd(state)) {
    fx.push({ type: Effect.JUMPED, send: state.sendAfterJump });
    state.jumpRequested = false;
    state.sendAfterJump = false;
  }
}

/**
 * A `history` frame answering `after`: the messages below the last one shown, held and shown
 * in its place; `complete`: they reach the end of the branch shown, which the page holds
 * again. One for a window the page has left (a snapshot came since) is passed over.
 */
export function holdNewer(state, frame, fx) {
  if (state.newerRequested === frame.after) {
    state.newerRequested = null;
  }
  if (frame.after !== state.windowEnd) {
    return;
  }
  const before = savedCount(state);
  holdWindow(state, frame, fx);
  state.unheld = Math.max(0, state.unheld - (savedCount(state) - before));
  if (frame.active) {
    resumeAnswer(state, frame.active, fx);
  }
  const last = frame.messages.length ? frame.messages[frame.messages.length - 1].id : null;
  if (last !== null) {
    state.windowEnd = last;
  }
  if (frame.complete) {
    // The end as the server read it; frames after that came after this reply, and may
    // have added below it what the page holds already.
    const end = last ?? frame.after;
    const leaf = state.messages.get(state.leafId);
    if (
      !leaf ||
      !treeOf(state)
        .path(leaf)
        .some((entry) => entry.key === end)
    ) {
      state.leafId = end;
    }
    state.windowEnd = null;
    state.newsBelow = false;
  }
}
