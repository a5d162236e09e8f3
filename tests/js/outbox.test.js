/*
 * The messages a person sends (chat/outbox.js) until the server has them: drawn at once,
 * confirmed by their echo, sent again after a reconnect, and given back when refused.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { closed } from "../../streaming/static/streaming/chat/connection.js";
import { Effect } from "../../streaming/static/streaming/chat/effects.js";
import { sendMessage } from "../../streaming/static/streaming/chat/outbox.js";
import { expectations, isAnswering } from "../../streaming/static/streaming/chat/store.js";
import {
  feed,
  newPage,
  only,
  sent,
  sentTypes,
  servedTurn,
  snapshot,
  stored,
} from "./page-state.js";

/** Send `content` after a1 with client_id `clientId`: the effects. */
function send(state, content, clientId = "c1", fields = {}) {
  const fx = [];
  sendMessage(state, { content, parentId: "a1", clientId, ...fields }, fx);
  return fx;
}

function echo(clientId, id = "u2") {
  const message = stored(id, { parent_id: "a1", content: "More", client_id: clientId });
  return { type: "message", title: "Greeting", message };
}

const refusal = (code) => ({ type: "error", code, message: `refused: ${code}` });

describe("sending a message", () => {
  it("draws it at once, ends the branch with it, and sends it", () => {
    const { state } = servedTurn();
    const fx = send(state, "More");
    const entry = state.messages.get("local:c1");
    assert.equal(entry.status, "sending");
    assert.equal(state.leafId, "local:c1");
    assert.deepEqual(sent(fx), [
      { type: "user_message", content: "More", client_id: "c1", parent_id: "a1" },
    ]);
    assert.deepEqual(only(fx, Effect.RENDER), [{ type: Effect.RENDER, entry }]);
    assert.deepEqual(state.inFlight, ["c1"]);
    assert.deepEqual(expectations(state), ["echo:c1"]);
  });

  it("is confirmed by its echo, which gives it its server id", () => {
    const { state } = servedTurn();
    send(state, "More");
    const entry = state.messages.get("local:c1");
    feed(state, echo("c1"));
    assert.equal(state.messages.get("u2"), entry);
    assert.equal(state.messages.has("local:c1"), false);
    assert.equal(state.leafId, "u2");
    assert.equal(state.outbox.size, 0);
    assert.deepEqual(state.inFlight, []);
  });

  it("counts characters as the server does, and says so when there are too many", () => {
    const { state } = newPage({ maxChars: 3 });
    feed(state, snapshot());
    assert.deepEqual(sentTypes(send(state, "😀😀😀")), ["user_message"]); // six UTF-16 units
    const { state: other } = newPage({ maxChars: 3 });
    feed(other, snapshot());
    const fx = send(other, "abcd");
    assert.deepEqual(fx, [
      { type: Effect.ALERT, text: "The message is 4 characters long; the limit is 3." },
    ]);
    assert.equal(other.outbox.size, 0);
  });

  it("waits in the outbox without a socket, and goes once the snapshot says it is not saved", () => {
    const { state } = servedTurn();
    closed(state, 1006, []);
    assert.deepEqual(sent(send(state, "More")), []);
    assert.equal(isAnswering(state), true);
    const fx = feed(state, snapshot([stored("u1"), stored("a1", { parent_id: "u1" })]));
    assert.deepEqual(sentTypes(fx), ["user_message"]);
    assert.equal(state.leafId, "local:c1"); // still the end of the branch shown
  });

  it("is not sent twice when the snapshot shows it saved", () => {
    const { state } = servedTurn();
    send(state, "More");
    closed(state, 1006, []);
    const u2 = stored("u2", { parent_id: "a1", content: "More", client_id: "c1" });
    const fx = feed(state, snapshot([stored("u1"), stored("a1", { parent_id: "u1" }), u2]));
    assert.deepEqual(sentTypes(fx), []);
    assert.equal(state.outbox.size, 0);
    assert.equal(state.messages.get("u2").content, "More");
  });

  it("goes as the first message's POST on a new chat's page", () => {
    const { state } = newPage({ draft: true });
    const fx = [];
    sendMessage(state, { content: "Hello", parentId: null, clientId: "c1" }, fx);
    assert.deepEqual(only(fx, Effect.POST), [{ type: Effect.POST, clientId: "c1" }]);
    assert.deepEqual(sent(fx), []);
  });
});

describe("a refused message", () => {
  it("is taken back and its text given back, the branch as it was", () => {
    const { state } = servedTurn();
    send(state, "More");
    const fx = feed(state, refusal("busy"));
    assert.equal(state.messages.has("local:c1"), false);
    assert.equal(state.leafId, "a1");
    assert.equal(state.outbox.size, 0);
    assert.deepEqual(only(fx, Effect.ALERT), [{ type: Effect.ALERT, text: "refused: busy" }]);
    assert.deepEqual(only(fx, Effect.GIVE_BACK), [
      { type: Effect.GIVE_BACK, text: "More", attachments: [], editOf: null, notice: "" },
    ]);
    assert.equal(only(fx, Effect.REMOVE).length, 1);
  });

  it("over a limit: given back, and the limit said after it", () => {
    const { state } = servedTurn();
    send(state, "More");
    const fx = feed(state, { ...refusal("rate_limited"), frame: "user_message", retry_after: 9 });
    assert.deepEqual(
      fx.filter((e) => e.type === Effect.GIVE_BACK || e.type === Effect.ALERT).map((e) => e.type),
      [Effect.GIVE_BACK, Effect.ALERT],
    );
    assert.equal(state.limitText, "refused: rate_limited");
  });

  it("an edit's goes back to the editor of the message it was to replace", () => {
    const { state } = servedTurn();
    const fx = [];
    sendMessage(state, { content: "Hi!", parentId: null, clientId: "c1", editOf: "u1" }, fx);
    const back = only(feed(state, refusal("bad_parent")), Effect.GIVE_BACK);
    assert.deepEqual(back, [
      {
        type: Effect.GIVE_BACK,
        text: "Hi!",
        attachments: [],
        editOf: state.messages.get("u1"),
        notice: "",
      },
    ]);
  });

  it("of several out, the oldest is the one refused", () => {
    const { state } = servedTurn();
    send(state, "One", "c1");
    state.outbox.set("c2", { type: "user_message", content: "Two", client_id: "c2" });
    state.inFlight.push("c2");
    const fx = feed(state, refusal("content_too_long"));
    assert.deepEqual(only(fx, Effect.GIVE_BACK)[0].text, "One");
    assert.deepEqual([...state.outbox.keys()], ["c2"]);
  });

  it("a refusal that answers a retry does not take a message back", () => {
    const { state } = servedTurn();
    state.retryRequested = "a1";
    const fx = feed(state, refusal("busy"));
    assert.equal(state.retryRequested, null);
    assert.deepEqual(only(fx, Effect.GIVE_BACK), []);
  });
});
