/*
 * What the page's pure modules (handlers.js, outbox.js, requests.js, connection.js) ask the
 * page to do, one word each. They change the state and push effects, `{type, …}` objects,
 * onto a list; page.js carries them out in order, on the DOM and the socket. Tests read the
 * list instead of a page.
 */
export const Effect = Object.freeze({
  /** `frame`: send it on the socket. */
  SEND: "send",
  /** `clientId`: POST a draft's first message, which makes the conversation (draft.js). */
  POST: "post",
  /** `entry`: draw its bubble afresh. */
  RENDER: "render",
  /** `entry`: its text grew while it streams; draw the text only. */
  TEXT: "text",
  /** `entry`: it left the conversation; take its bubble away. */
  REMOVE: "remove",
  /** A message's usage changed: total the conversation's tokens again. */
  USAGE: "usage",
  /** `title`: the stored title, to show (an empty one: the page's "New conversation"). */
  TITLE: "title",
  /** `prompt`: the stored system prompt, to show. */
  SYSTEM_PROMPT: "system_prompt",
  /** `choice`: the stored model choice, to show in the picker. */
  MODEL: "model",
  /** `setting` ("prompt", "title" or "model") and `frame`: the server refused a change. */
  REFUSED: "refused",
  /** `connection` (open, reconnecting, draft…), `text`, `kind`: how the connection stands. */
  STATUS: "status",
  /** `text`, `signIn`: nothing more can be done on this page; say why (and how to sign in). */
  CLOSED: "closed",
  /** `delay`: connect again in that many milliseconds. */
  RECONNECT: "reconnect",
  /** `text`: say it above the composer ("" clears it). */
  ALERT: "alert",
  /** `text`, `attachments`, `editOf` (an entry, or null), `notice`: text and files not sent
   * go back to the person. */
  GIVE_BACK: "give_back",
  /** `missedFrames`: load the list of conversations again (false: only if it lacks this one). */
  LIST_REFRESH: "list_refresh",
  /** `conversation`: another conversation of the user changed. */
  LIST_CHANGED: "list_changed",
  /** `id`: another conversation of the user was deleted. */
  LIST_REMOVED: "list_removed",
  /** `answering`, `updatedAt`: this conversation's own entry in the list. */
  LIST_OWN: "list_own",
  /** `entry`, `frame`: the server waits before it asks the provider again. */
  RETRYING: "retrying",
  /** `entry`, `frame`: an answer this page saw underway ended. */
  ANSWER_ENDED: "answer_ended",
  /** `text`: a console warning, for what should never happen (tests watch for them). */
  WARN: "warn",
  /** A snapshot settled everything: what is still awaited is awaited afresh from now. */
  AWAIT_AFRESH: "await_afresh",
  /** The person sent a message: bring them down to it. */
  SCROLL_DOWN: "scroll_down",
  /** The page holds the end the reader asked for (Jump to latest): bring them down to it;
   * `send`: then send what the composer holds. */
  JUMPED: "jumped",
});
