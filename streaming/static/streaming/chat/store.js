/*
 * The chat page's state: the messages it holds (a window of a long conversation, and stubs
 * of the other versions: docs/protocol.md, "Older messages"), the branch it shows, the
 * answers streaming, what it sent and still waits for, and how its socket stands.
 *
 * Plain data, and the functions that keep it whole. No DOM and no socket: a function that
 * changes something the page must act on pushes an effect (effects.js) onto the list `fx`
 * it is given; page.js carries the effects out. So all of it runs in Node (tests/js/).
 */
import { Effect } from "./effects.js";
import { ClientFrame, Role, Status } from "./protocol.js";
import { AnswerStream } from "./stream.js";
import { Tree } from "./tree.js";

/**
 * A fresh state. `draft`: a new chat not saved yet (no socket until its first message);
 * `maxChars`: the longest message the server takes; `askForSync(messageId, afterSeq)`:
 * how a streaming answer asks for its missing text (its own timers ask too, so it cannot wait
 * for a frame's effects); `timers`: for tests.
 */
export function createState({ draft = false, maxChars = Infinity, askForSync, timers } = {}) {
  return {
    draft,
    maxChars,
    askForSync: askForSync || (() => {}),
    timers,
    /**
     * Every message held, by key: its server id, or "local:<client_id>" until the server
     * confirms it. An entry: {key, id, parentId, role, content, status, error, usage,
     * clientId, createdAt (ISO, null until saved), model, providerName (an answer's, as it
     * recorded them), continuable (an answer cut off at its length limit, which Continue
     * may go on with), attachments (its files, as frames show them), stub (a version known
     * without its text)}; one this page sent also has
     * leafBefore (the branch shown before it) and, for an edit, editOf (the key of the
     * message it is a version of).
     */
    messages: new Map(),
    /** Stored messages this page does not hold (older than its window): the pong counts them. */
    unheld: 0,
    /** The message a `history` request went out for (its older messages), until they come. */
    historyRequested: null,
    /** The message a `history` request went out for its newer messages, until they come. */
    newerRequested: null,
    /** The key of the last message of the branch shown (null: the newest branch). */
    leafId: null,
    /**
     * null while the page holds the branch shown down to its end; else the key of the last
     * message it holds of it, below which newer ones are stored (a page opened at a message:
     * docs/protocol.md, "Opening at a message"). Messages past the gap may be held (a new
     * answer streaming) but are not shown until the gap is filled (windowing.js).
     */
    windowEnd: null,
    /** Frames told of messages past the gap: there is something new below. */
    newsBelow: false,
    /** The reader asked for the end (Jump to latest); `send`: and then to send the composer's. */
    jumpRequested: false,
    sendAfterJump: false,
    /** The message at the top of the reader's view while they are away from the bottom
     * (page.js keeps it), else null: a snapshot asked for keeps it in the window. */
    readingAt: null,
    /** The user message being edited in place, or null. */
    editing: null,
    /** `switch` frames sent whose `branch` has not come back: only the last one's counts. */
    switchesOut: 0,
    /** The answers streaming, by message id: an AnswerStream each (stream.js). */
    streams: new Map(),
    /** User messages sent but not yet echoed, by client_id: their frames, resent if need be. */
    outbox: new Map(),
    /** The client_ids sent on the current socket, oldest first, awaiting echo or error. */
    inFlight: [],
    /** The current socket has delivered its snapshot: the page and the server agree again. */
    ready: false,
    /** Nothing to reconnect to (deleted, not ours, signed out, too many tabs). */
    closedForGood: false,
    /** The page is being hidden or unloaded: a closed socket is not a reason to reconnect. */
    leaving: false,
    /** How long the next reconnect waits (connection.js; null: the first wait). */
    retryDelay: null,
    /** Snapshots this page has had: every one after the first may follow frames it missed. */
    snapshots: 0,
    /** The answer a `stop` went out for, until its `done`. */
    stopRequested: null,
    /** A stop asked for before the page knew the answer: the client_id of what it answers
     * (a message or a retry), until its `start` (then `stopRequested`) or a snapshot. */
    earlyStop: null,
    /** The message id a `retry` or `continue_answer` went out for, until its `start`. */
    retryRequested: null,
    /** That retry's client_id, by which a stop can name it before its `start`. */
    retryClientId: null,
    /** A `resync` went out; its `snapshot` is on its way. */
    resyncRequested: false,
    /** The last limit the server named, for a close for too many tabs that follows it. */
    limitText: "",
    /** Why the server said this page's session ended, until a reconnect shows if it holds. */
    sessionEndedText: null,
    /** The stored title as the server last told it (null until it has). */
    storedTitle: null,
    /** The stored model choice as the server last told it (null until it has). */
    modelChoice: null,
  };
}

// --- one message --------------------------------------------------------------------------

/** A new entry: `fields` over the defaults. */
export function newEntry(fields) {
  return {
    key: fields.id,
    id: fields.id,
    parentId: null,
    role: fields.role,
    content: "",
    status: fields.status,
    error: "",
    usage: null,
    clientId: null,
    createdAt: null,
    model: "",
    providerName: "",
    continuable: false,
    attachments: [],
    stub: false,
    ...fields,
  };
}

/** Copy a stored message (the server's JSON) into its entry; true if what it shows changed. */
export function applyStored(entry, message) {
  const stored = {
    role: message.role,
    content: message.content || "",
    status: message.status,
    error: message.error || "",
    createdAt: message.created_at || null,
    model: message.model || "",
    providerName: message.provider_name || "",
    continuable: Boolean(message.continuable),
  };
  let changed = false;
  for (const [name, value] of Object.entries(stored)) {
    if (entry[name] !== value) {
      entry[name] = value;
      changed = true;
    }
  }
  // Compared by what they hold: every frame carries them afresh.
  const held = { usage: message.usage || null, attachments: message.attachments || [] };
  for (const [name, value] of Object.entries(held)) {
    if (JSON.stringify(value) !== JSON.stringify(entry[name])) {
      entry[name] = value;
      changed = true;
    }
  }
  entry.clientId = message.client_id || entry.clientId;
  entry.parentId = message.parent_id || null;
  if (entry.stub) {
    entry.stub = false; // its text has come
    changed = true;
  }
  return changed;
}

/**
 * Another version of a held message, known without its text (a snapshot's or a history's
 * `versions`): held as a stub unless the page holds it already. Whether it was new.
 */
export function upsertStub(state, stub) {
  if (state.messages.has(stub.id)) {
    return false;
  }
  const entry = newEntry({
    id: stub.id,
    role: stub.role,
    status: stub.status,
    parentId: stub.parent_id || null,
    createdAt: stub.created_at || null,
    stub: true,
  });
  state.messages.set(entry.key, entry);
  return true;
}

/** How many stored messages the page holds, stubs included. */
export function savedCount(state) {
  let count = 0;
  for (const entry of state.messages.values()) {
    count += entry.id === null ? 0 : 1;
  }
  return count;
}

/** Whether a message's answer is still coming. */
export function isUnderway(entry) {
  return entry.status === Status.STREAMING || entry.status === Status.PENDING;
}

// --- the messages -------------------------------------------------------------------------

/** The conversation's messages as a tree (tree.js), as they stand now. */
export function treeOf(state) {
  return new Tree(state.messages.values());
}

function rekey(state, entry, id) {
  if (state.leafId === entry.key) {
    state.leafId = id;
  }
  state.messages.delete(entry.key);
  entry.key = id;
  entry.id = id;
  state.messages.set(id, entry);
}

/** A stored message from the server: one this page sent, an update, or someone else's. */
export function upsertStored(state, message, fx) {
  let entry = state.messages.get(message.id);
  if (!entry && message.client_id) {
    // This page's own message, drawn before it was sent: the echo confirms it.
    entry = state.messages.get(`local:${message.client_id}`);
    if (entry) {
      rekey(state, entry, message.id);
    }
  }
  if (message.client_id) {
    state.outbox.delete(message.client_id);
    state.inFlight = state.inFlight.filter((id) => id !== message.client_id);
  }
  const isNew = !entry;
  if (isNew) {
    entry = newEntry({ id: message.id, role: message.role, status: message.status });
    state.messages.set(entry.key, entry);
  }
  const usageBefore = entry.usage;
  const changed = applyStored(entry, message);
  if (entry.usage !== usageBefore) {
    fx.push({ type: Effect.USAGE }); // the page's first total is the server's
  }
  // One being edited keeps its editor; it is drawn afresh when the editor closes.
  if ((changed || isNew) && state.editing !== entry) {
    fx.push({ type: Effect.RENDER, entry });
  }
  return entry;
}

/** `entry` left the conversation (deleted meanwhile, or refused before it was saved). */
export function forget(state, entry, fx) {
  state.messages.delete(entry.key);
  endStream(state, entry.id);
  fx.push({ type: Effect.REMOVE, entry });
  if (state.leafId === entry.key) {
    state.leafId = entry.leafBefore === undefined ? null : entry.leafBefore;
  }
}

/** The answer `id`, made (streaming) if the page does not have it yet. */
export function assistantEntry(state, id, fx, parentId = null, createdAt = null) {
  let entry = state.messages.get(id);
  if (!entry) {
    entry = newEntry({
      id,
      role: Role.ASSISTANT,
      status: Status.STREAMING,
      parentId: parentId || null,
      createdAt: createdAt || null,
    });
    state.messages.set(id, entry);
    fx.push({ type: Effect.RENDER, entry });
  }
  return entry;
}

/** The answer streaming now, or null. */
export function streamingEntry(state) {
  for (const entry of state.messages.values()) {
    if (entry.role === Role.ASSISTANT && isUnderway(entry)) {
      return entry;
    }
  }
  return null;
}

/** Whether the page waits for an answer: a message sent, a retry asked, an answer coming. */
export function isAnswering(state) {
  return state.outbox.size > 0 || state.retryRequested !== null || streamingEntry(state) !== null;
}

// --- answers being streamed ---------------------------------------------------------------

/** The AnswerStream of the answer `id`, started (from seq 0) if there is none. */
export function streamFor(state, id) {
  let stream = state.streams.get(id);
  if (!stream) {
    stream = new AnswerStream(id, state.askForSync, state.timers);
    state.streams.set(id, stream);
  }
  return stream;
}

/** Stop following the answer `id` (it ended, or the page stopped listening). */
export function endStream(state, id) {
  const stream = state.streams.get(id);
  if (stream) {
    stream.end();
    state.streams.delete(id);
  }
}

/** The answer's text is what its stream assembled. */
export function showStreamText(entry, stream, fx) {
  entry.content = stream.text;
  fx.push({ type: Effect.TEXT, entry });
}

// --- frames to the server -----------------------------------------------------------------

/** The socket has delivered its snapshot, and the page is not closed for good. */
export function isOpen(state) {
  return !state.closedForGood && state.ready;
}

/**
 * Send `frame` if the socket can take it; whether it went. Frames that can wait for the next
 * socket (stop, sync, retry) are simply not sent when there is none: the next snapshot shows
 * what became of them.
 */
export function send(state, frame, fx) {
  if (!isOpen(state)) {
    return false;
  }
  fx.push({ type: Effect.SEND, frame });
  return true;
}

/**
 * The message a snapshot is asked to be a window around (`around`), or null for the end of
 * the branch: where the reader is, when they are away from the bottom, or the last message
 * held when the page does not hold the end. Never while the reader asked for the end, nor
 * while a message of theirs is on its way (it is at the end).
 */
export function anchorOf(state) {
  if (state.jumpRequested || state.outbox.size > 0) {
    return null;
  }
  const path = shownPath(state);
  const reading = state.readingAt && path.find((entry) => entry.id === state.readingAt);
  if (reading) {
    return reading.id;
  }
  return state.windowEnd;
}

/** Ask for a fresh snapshot: the watchdog does so every time it is overdue. */
export function sendResync(state, fx) {
  const around = anchorOf(state);
  const frame = around ? { type: ClientFrame.RESYNC, around } : { type: ClientFrame.RESYNC };
  if (send(state, frame, fx)) {
    state.resyncRequested = true;
  }
}

/** Ask for a fresh snapshot because of something seen: once until it comes, not per frame. */
export function requestResync(state, fx) {
  if (!state.resyncRequested) {
    sendResync(state, fx);
  }
}

// --- what the page knows, in the server's terms -------------------------------------------

/**
 * What the page holds of the stored conversation, in the terms of a `pong` (sync.js). Away
 * from the end of the branch, its last message is the one the page was last told of, whose
 * status it may not know (undefined).
 */
export function heldState(state) {
  const count = savedCount(state) + state.unheld;
  let newest;
  if (!holdsEnd(state)) {
    newest = state.messages.get(state.leafId) || { id: state.leafId, status: undefined };
  } else {
    const saved = shownPath(state).filter((entry) => entry.id !== null);
    newest = saved.length ? saved[saved.length - 1] : null;
  }
  return {
    count,
    lastId: newest ? newest.id : null,
    lastStatus: newest ? newest.status : null,
    title: state.storedTitle,
    modelChoice: state.modelChoice,
  };
}

/** Everything the page waits for the server to confirm, one string each (sync.js Watchdog). */
export function expectations(state) {
  const things = Array.from(state.outbox.keys(), (clientId) => `echo:${clientId}`);
  if (state.retryRequested !== null) {
    things.push(`start:${state.retryRequested}`);
  }
  if (state.stopRequested !== null) {
    things.push(`done:${state.stopRequested}`);
  }
  if (state.earlyStop !== null) {
    things.push(`stop:${state.earlyStop}`);
  }
  if (state.resyncRequested) {
    things.push("snapshot");
  }
  return things;
}

// --- the branch shown ---------------------------------------------------------------------

/** Whether the page holds the branch shown down to its end. */
export function holdsEnd(state) {
  return state.windowEnd === null;
}

/**
 * The messages the page shows, first first: the branch shown, or, while the page does not
 * hold its end, the part of it the page holds, down to the last message before the gap.
 */
export function shownPath(state, tree = treeOf(state)) {
  const end = holdsEnd(state) ? undefined : state.messages.get(state.windowEnd);
  return end ? tree.path(end) : tree.branch(state.leafId);
}
