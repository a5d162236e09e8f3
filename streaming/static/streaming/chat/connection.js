/*
 * How the page's link to the server stands, and what each way of losing it means
 * (docs/protocol.md, "Connecting"): the close codes, the backoff between reconnects, and
 * the ends after which there is nothing to reconnect to. socket.js holds the WebSocket and
 * tells these functions what happened; they change the state and push effects, as store.js
 * does, so every close code's meaning is tested in Node.
 */
import { Effect } from "./effects.js";
import { Close } from "./protocol.js";
import { endStream } from "./store.js";

// Reconnects wait this long at first, doubling up to the most (network trouble, restarts).
export const RECONNECT_FIRST_MS = 500;
export const RECONNECT_MAX_MS = 8000;

export const UNAVAILABLE_TEXT = "Live updates are unavailable — retrying…";
export const DELETED_TEXT = "This conversation was deleted.";
export const SIGNED_OUT_TEXT = "You were signed out. Sign in again to continue.";
export const CHECKING_SIGN_IN_TEXT = "Checking that you are still signed in…";
const FORBIDDEN_TEXT = "This conversation does not exist or is not yours.";
const TOO_MANY_TEXT = "Too many chat tabs are open. Close one, then reload this page.";
const RECONNECTING_TEXT = "Reconnecting…";

/** A socket is being opened: until its snapshot, nothing can be sent. */
export function connecting(state) {
  state.ready = false;
}

/** The socket opened: nothing is out on it yet. */
export function opened(state) {
  state.inFlight = [];
}

/**
 * The socket delivered its snapshot: the page can send, and the next loss starts the
 * backoff afresh. Not on "open": a server without its channel layer accepts and then closes
 * (4503), and resetting the backoff there would reconnect every half second for ever.
 */
export function served(state) {
  state.ready = true;
  state.retryDelay = RECONNECT_FIRST_MS;
}

/** The page is being hidden or unloaded (or shown again, `leaving` false). */
export function leave(state, leaving) {
  state.leaving = leaving;
  state.ready = false;
}

/** The conversation is gone or never was ours, or the page is signed out: stop, say so. */
export function closeForGood(state, text, fx, signIn = false) {
  state.closedForGood = true;
  for (const id of Array.from(state.streams.keys())) {
    endStream(state, id);
  }
  fx.push({ type: Effect.CLOSED, text, signIn });
}

/** Signed out: no reconnecting (it would be refused again), but a way back to this page. */
export function signedOut(state, fx) {
  closeForGood(state, state.sessionEndedText || SIGNED_OUT_TEXT, fx, true);
}

/** The socket closed with `code`: say why, and reconnect unless there is no point. */
export function closed(state, code, fx) {
  const wasServed = state.ready; // it had delivered its snapshot
  state.ready = false;
  state.inFlight = [];
  // Requests on a closed socket may or may not have arrived; the next snapshot tells (and
  // sends a stop again if its answer still streams: a stop is kept until the answer ends).
  state.retryRequested = null;
  state.resyncRequested = false;
  state.switchesOut = 0;
  if (state.closedForGood || state.leaving) {
    return;
  }
  if (code === Close.UNAUTHENTICATED && !wasServed) {
    signedOut(state, fx); // refused at connect: the browser holds no session that logs it in
    return;
  }
  if (code === Close.TOO_MANY) {
    closeForGood(state, state.limitText || TOO_MANY_TEXT, fx);
    return;
  }
  if (code === Close.FORBIDDEN || code === Close.DELETED) {
    closeForGood(state, code === Close.DELETED ? DELETED_TEXT : FORBIDDEN_TEXT, fx);
    return;
  }
  // A socket that worked and was closed with 4401 (its session ended) reconnects like after
  // any close: the browser may hold a newer session. Refused, the page is signed out.
  let text = RECONNECTING_TEXT;
  if (code === Close.UNAVAILABLE) {
    text = UNAVAILABLE_TEXT;
  } else if (code === Close.UNAUTHENTICATED) {
    text = CHECKING_SIGN_IN_TEXT;
  }
  fx.push({ type: Effect.STATUS, connection: "reconnecting", text, kind: "warning" });
  const delay = state.retryDelay ?? RECONNECT_FIRST_MS;
  fx.push({ type: Effect.RECONNECT, delay });
  state.retryDelay = Math.min(delay * 2, RECONNECT_MAX_MS);
}
