/*
 * A chat page's state without a page, for the tests of the modules that decide
 * (chat/store.js, handlers.js, outbox.js, requests.js, connection.js): frames go in as the
 * socket would hand them over, and what the page must do comes back as effects.
 */
import { dispatch } from "../../streaming/static/streaming/chat/dispatch.js";
import { Effect } from "../../streaming/static/streaming/chat/effects.js";
import { createState } from "../../streaming/static/streaming/chat/store.js";
import { fakeClock } from "./fake-clock.js";

/** A fresh state on a fake clock; `syncs` gets every [message_id, after_seq] asked for. */
export function newPage({ draft = false, maxChars = 1000 } = {}) {
  const clock = fakeClock();
  const syncs = [];
  const askForSync = (id, afterSeq) => syncs.push([id, afterSeq]);
  const state = createState({ draft, maxChars, askForSync, timers: clock });
  return { state, clock, syncs };
}

/** Hand `frame` to the page as its socket would (as JSON text): the effects. */
export function feed(state, frame) {
  const result = dispatch(state, JSON.stringify(frame));
  return result === null ? null : result.effects;
}

/** Hand every frame over in order: all their effects. */
export function feedAll(state, frames) {
  return frames.flatMap((frame) => feed(state, frame));
}

/** The effects of `type` among `fx`. */
export function only(fx, type) {
  return fx.filter((effect) => effect.type === type);
}

/** The frames `fx` sends, in order. */
export function sent(fx) {
  return only(fx, Effect.SEND).map((effect) => effect.frame);
}

/** The types of the frames `fx` sends, in order. */
export function sentTypes(fx) {
  return sent(fx).map((frame) => frame.type);
}

/** A moment `seconds` after 10:00 on a fixed day, as the server writes it. */
export function at(seconds) {
  return `2025-03-14T10:00:${String(seconds).padStart(2, "0")}+00:00`;
}

/** A stored message as the server sends it. */
export function stored(id, fields = {}) {
  return {
    id,
    parent_id: null,
    role: "user",
    content: "",
    status: "complete",
    model: "",
    provider_name: "",
    finish_reason: "",
    usage: null,
    error: "",
    client_id: null,
    created_at: at(0),
    ...fields,
  };
}

/** A `snapshot` frame: `messages`, and the rest as given (no answer streaming by default). */
export function snapshot(messages = [], fields = {}) {
  return {
    type: "snapshot",
    title: "",
    system_prompt: "",
    model_choice: { provider_id: null, model: "simulated", available: true },
    messages,
    leaf_id: messages.length ? messages[messages.length - 1].id : null,
    active: null,
    ...fields,
  };
}

/** A conversation of one finished turn, u1 then a1, as a served page holds it. */
export function servedTurn() {
  const page = newPage();
  const turn = [
    stored("u1", { content: "Hi", created_at: at(0) }),
    stored("a1", { role: "assistant", parent_id: "u1", content: "Hello", created_at: at(1) }),
  ];
  feed(page.state, snapshot(turn, { title: "Greeting" }));
  return { ...page, turn };
}

/** A served page whose answer a1 to u1 is streaming, started by a `start` frame. */
export function streamingAnswer() {
  const page = newPage();
  feed(page.state, snapshot([stored("u1", { content: "Hi" })]));
  feed(page.state, start("a1", "u1", at(1)));
  return page;
}

export function start(id, parentId, createdAt) {
  return { type: "start", message_id: id, parent_id: parentId, created_at: createdAt, model: "m" };
}

export function delta(id, seq, text) {
  return { type: "delta", message_id: id, seq, text };
}

export function done(id, seq, content, fields = {}) {
  const message = stored(id, { role: "assistant", parent_id: "u1", content, created_at: at(1) });
  return {
    type: "done",
    message_id: id,
    status: "complete",
    finish_reason: "stop",
    usage: null,
    error: "",
    seq,
    message: { ...message, ...fields },
  };
}

/** A moment `seconds` after 10:00 on a fixed day, as the server writes it, for any count. */
export function later(seconds) {
  const minutes = String(Math.floor(seconds / 60)).padStart(2, "0");
  return `2025-03-14T10:${minutes}:${String(seconds % 60).padStart(2, "0")}+00:00`;
}

/** Messages m<from>…m<to - 1> of one branch, each following the one before (m0 first). */
export function chain(from, to) {
  const messages = [];
  for (let i = from; i < to; i += 1) {
    messages.push(
      stored(`m${i}`, {
        role: i % 2 === 0 ? "user" : "assistant",
        parent_id: i === 0 ? null : `m${i - 1}`,
        content: `text ${i}`,
        created_at: later(i),
      }),
    );
  }
  return messages;
}
