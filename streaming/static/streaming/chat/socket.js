/*
 * The conversation's WebSocket: opened, closed, opened again after the backoff, and closed
 * while the page is hidden (pagehide) and opened again if it comes back from the back/forward
 * cache (pageshow). It knows nothing of frames: their text goes to `onMessage` (the page's
 * dispatch), joined first when a frame came in parts (parts.js), and what a close means is
 * connection.js's.
 */
import { connecting, leave, opened } from "./connection.js";
import { createJoiner } from "./parts.js";

/**
 * The socket of the page whose state is `state`. `path()`: the conversation's socket path
 * (a draft gets one when it is saved); `onMessage(text)`, `onClose(code)`: what came;
 * `onLeave()`: the page is being hidden. Returns {connect, send, reconnectIn}.
 */
export function createSocket({ state, path, onMessage, onClose, onLeave }) {
  let socket = null;
  let retryTimer = null;

  function url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}${path()}`;
  }

  function connect() {
    retryTimer = null;
    const ws = new WebSocket(url());
    socket = ws;
    connecting(state);
    ws.addEventListener("open", () => opened(state));
    const joiner = createJoiner(); // a frame's parts never span two sockets
    ws.addEventListener("message", (event) => {
      const whole = joiner.join(event.data);
      if (whole !== null) {
        onMessage(whole);
      }
    });
    ws.addEventListener("close", (event) => {
      if (socket === ws) {
        socket = null;
        onClose(event.code);
      } // else one this page let go of (pagehide): its close says nothing
    });
  }

  /** Send `frame` (the state said the socket can take it: store.js's `send`). */
  function send(frame) {
    if (socket !== null && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(frame));
    }
  }

  function reconnectIn(delay) {
    retryTimer = setTimeout(connect, delay);
  }

  // Leaving the page closes the socket; that is not a reason to reconnect.
  window.addEventListener("pagehide", () => {
    leave(state, true);
    onLeave();
    if (retryTimer) {
      clearTimeout(retryTimer);
      retryTimer = null;
    }
    if (socket) {
      const ws = socket;
      socket = null;
      ws.close();
    }
  });

  // Back/forward cache: the page comes back without its socket.
  window.addEventListener("pageshow", (event) => {
    if (event.persisted && !state.closedForGood && !state.draft) {
      leave(state, false);
      connect();
    }
  });

  return { connect, send, reconnectIn };
}
