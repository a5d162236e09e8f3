/*
 * The `error` frame: the server refused a frame, or tells the page its socket is about to
 * close (docs/protocol.md, "Error codes"). Each code undoes what the refused frame began
 * (a message taken back and its text given back, a retry no longer awaited, a setting shown
 * as stored) and says why where a person can act on it. Pure, like handlers.js.
 */
import { CHECKING_SIGN_IN_TEXT, SIGNED_OUT_TEXT, UNAVAILABLE_TEXT } from "./connection.js";
import { Effect } from "./effects.js";
import { rejectOldestSend } from "./outbox.js";
import { ClientFrame, ErrorCode } from "./protocol.js";
import { forgetRetry } from "./requests.js";
import { requestResync } from "./store.js";

// Over a limit: the frame `frame.frame` was refused, with how long to wait.
const LIMIT_CODES = new Set([ErrorCode.RATE_LIMITED, ErrorCode.QUOTA_EXCEEDED]);
// Refusals of a user_message frame: the message was not saved.
const SEND_ERROR_CODES = new Set([
  ErrorCode.BUSY,
  ErrorCode.EMPTY_CONTENT,
  ErrorCode.CONTENT_TOO_LONG,
  ErrorCode.BAD_TEXT,
  ErrorCode.FRAME_TOO_LONG,
  ErrorCode.BAD_CLIENT_ID,
  ErrorCode.BAD_PARENT,
  ErrorCode.MODEL_UNAVAILABLE,
  ErrorCode.PROVIDER_KEY_UNREADABLE,
  ErrorCode.STORAGE_FULL,
  // Its files: one no longer there, too many, or images to a model that does not see them.
  ErrorCode.BAD_ATTACHMENT,
  ErrorCode.TOO_MANY_ATTACHMENTS,
  ErrorCode.NO_VISION,
]);
// Refusals a `retry` (or `continue_answer`) gets as well as a user_message: a retry's when
// no message is out.
const RETRY_REFUSALS = new Set([
  ErrorCode.BUSY,
  ErrorCode.MODEL_UNAVAILABLE,
  ErrorCode.PROVIDER_KEY_UNREADABLE,
  ErrorCode.STORAGE_FULL,
  ErrorCode.NO_VISION,
]);
// Nothing a person can act on (an unknown_type: this page is newer than its server); the
// next snapshot or `done` sets things right.
const UPKEEP_CODES = new Set([ErrorCode.BAD_SYNC, ErrorCode.UNKNOWN_TYPE]);
// Refused changes to the conversation's settings, answered where they were made.
const SETTING_OF_CODE = new Map([
  [ErrorCode.SYSTEM_PROMPT_TOO_LONG, "prompt"],
  [ErrorCode.BAD_SYSTEM_PROMPT, "prompt"],
  [ErrorCode.BAD_TITLE, "title"],
  [ErrorCode.TITLE_TOO_LONG, "title"],
  [ErrorCode.BAD_MODEL, "model"],
  [ErrorCode.UNKNOWN_MODEL, "model"],
]);
const SETTING_OF_FRAME = new Map([
  [ClientFrame.SET_SYSTEM_PROMPT, "prompt"],
  [ClientFrame.RENAME, "title"],
  [ClientFrame.SET_MODEL, "model"],
]);

/** The handler of `error` frames: (state, frame) → effects, as in handlers.js. */
export function refused(state, frame) {
  const fx = [];
  const code = frame.code;
  if (code === ErrorCode.SESSION_ENDED) {
    // The socket closes with 4401 next; the reconnect shows whether the browser still
    // holds a session (a password changed in this browser gives it a new one).
    state.sessionEndedText = frame.message || SIGNED_OUT_TEXT;
    fx.push(reconnecting(CHECKING_SIGN_IN_TEXT));
  } else if (code === ErrorCode.UNAVAILABLE) {
    // The socket closes with 4503 next and is reconnected like after any other close.
    fx.push(reconnecting(UNAVAILABLE_TEXT));
  } else if (LIMIT_CODES.has(code)) {
    limited(state, frame, fx);
  } else if (SETTING_OF_CODE.has(code)) {
    fx.push({ type: Effect.REFUSED, setting: SETTING_OF_CODE.get(code), frame });
  } else if (code === ErrorCode.BAD_SWITCH) {
    requestResync(state, fx); // the version asked for is not what the page thought
  } else if (code === ErrorCode.BAD_HISTORY) {
    // The branch shown is not what the page thought (another tab moved it): a snapshot
    // around the reader has it; what was asked for can be asked for again.
    historyRefused(state);
    requestResync(state, fx);
  } else if (!UPKEEP_CODES.has(code)) {
    fx.push({ type: Effect.ALERT, text: frame.message || "Something went wrong." });
    // A refused retry (no user message out) ends the wait for its answer.
    const retryRefused = RETRY_REFUSALS.has(code) && state.inFlight.length === 0;
    if (code === ErrorCode.BAD_RETRY || code === ErrorCode.BAD_CONTINUE || retryRefused) {
      forgetRetry(state);
    } else if (SEND_ERROR_CODES.has(code)) {
      rejectOldestSend(state, fx);
    }
  }
  return fx;
}

// A `history` request refused: no longer awaited, so the reader can ask again.
function historyRefused(state) {
  state.historyRequested = null;
  state.newerRequested = null;
}

function reconnecting(text) {
  return { type: Effect.STATUS, connection: "reconnecting", text, kind: "warning" };
}

// Over a limit: the refused frame's request undone, and the wait said in words. A limit on
// the page's own upkeep (sync, ping) needs no word: the next one heals what it missed.
function limited(state, frame, fx) {
  if (SETTING_OF_FRAME.has(frame.frame)) {
    fx.push({ type: Effect.REFUSED, setting: SETTING_OF_FRAME.get(frame.frame), frame });
    return;
  }
  if (frame.frame === ClientFrame.USER_MESSAGE) {
    rejectOldestSend(state, fx);
  } else if (frame.frame === ClientFrame.RETRY || frame.frame === ClientFrame.CONTINUE_ANSWER) {
    forgetRetry(state);
  } else if (frame.frame === ClientFrame.HISTORY) {
    historyRefused(state); // asked again as the reader scrolls on
    return;
  } else if (frame.frame !== ClientFrame.STOP && frame.frame !== undefined) {
    return;
  }
  state.limitText = frame.message || "Too many requests.";
  fx.push({ type: Effect.ALERT, text: state.limitText });
}
