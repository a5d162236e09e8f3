/*
 * Frames from the server to their handlers: parse the socket's text, route the frame by its
 * type (handlers.js, refusals.js), and hand back what the page must do. Apart from the
 * modules that hold state, as in Zulip's web/src: the socket knows nothing of frames, the
 * handlers nothing of sockets. A frame that is not JSON, or of a type this page does not
 * know (a server newer than the page), is passed over.
 */
import { handlers } from "./handlers.js";
import { ServerFrame } from "./protocol.js";
import { requestResync } from "./store.js";
import { branchHasStub, settleWindow } from "./windowing.js";

// Frames that change only an answer's text: nothing moves, so the branch is not drawn again.
const TEXT_ONLY = new Set([ServerFrame.DELTA, ServerFrame.SYNC]);
/**
 * Handle the text of one socket message: {effects, textOnly, history, snapshot}
 * (`textOnly`: only an answer's text changed; `history`: older or newer messages came,
 * above or below the reader, whose place is kept; `snapshot`: the window was replaced,
 * around the reader when they were away from the end), or null when it is no frame the
 * page acts on.
 *
 * Whatever frame moved it, a branch shown that passes a version held without its text (a stub:
 * docs/protocol.md, "Older messages") is asked for whole, with a `resync`.
 */
export function dispatch(state, data) {
  let frame;
  try {
    frame = JSON.parse(data);
  } catch {
    return null;
  }
  const type = frame !== null && typeof frame === "object" ? frame.type : undefined;
  if (!Object.hasOwn(handlers, type)) {
    return null;
  }
  const effects = handlers[type](state, frame);
  const textOnly = TEXT_ONLY.has(type);
  // A frame that changes only an answer's text leaves the branch as it was.
  if (!textOnly) {
    settleWindow(state);
    if (branchHasStub(state)) {
      requestResync(state, effects);
    }
  }
  return {
    effects,
    textOnly,
    history: type === ServerFrame.HISTORY,
    snapshot: type === ServerFrame.SNAPSHOT,
  };
}
