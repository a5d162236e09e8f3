/*
 * The page's state (chat/store.js) and the routing of frames to it (chat/dispatch.js): what
 * a snapshot settles, what the page tells a `pong`, and what it waits for.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { dispatch } from "../../streaming/static/streaming/chat/dispatch.js";
import { Effect } from "../../streaming/static/streaming/chat/effects.js";
import { sendMessage } from "../../streaming/static/streaming/chat/outbox.js";
import { expectations, heldState } from "../../streaming/static/streaming/chat/store.js";
import {
  at,
  delta,
  feed,
  newPage,
  only,
  servedTurn,
  snapshot,
  stored,
  streamingAnswer,
} from "./page-state.js";

describe("dispatch", () => {
  it("passes over what is not a frame the page acts on", () => {
    const { state } = newPage();
    for (const data of ["not json", "null", "3", "[]", '{"type": "toString"}', '{"type": 1}']) {
      assert.equal(dispatch(state, data), null, data);
    }
    assert.equal(dispatch(state, '{"type": "from_a_newer_server"}'), null);
  });

  it("says when only an answer's text changed", () => {
    const { state } = streamingAnswer();
    assert.equal(dispatch(state, JSON.stringify(delta("a1", 1, "a"))).textOnly, true);
    assert.equal(dispatch(state, JSON.stringify({ type: "title", title: "T" })).textOnly, false);
  });
});

describe("a snapshot", () => {
  it("is the truth: messages deleted meanwhile are forgotten, changed ones drawn again", () => {
    const { state, turn } = servedTurn();
    const edited = { ...turn[1], content: "Hello there" };
    const fx = feed(state, snapshot([turn[0], edited]));
    assert.equal(state.messages.get("a1").content, "Hello there");
    assert.deepEqual(
      only(fx, Effect.RENDER).map((effect) => effect.entry.key),
      ["a1"],
    );
    feed(state, snapshot([turn[0]]));
    assert.deepEqual([...state.messages.keys()], ["u1"]);
    assert.equal(state.leafId, "u1");
  });

  it("keeps a message still being sent at the end of the branch shown", () => {
    const { state } = servedTurn();
    sendMessage(state, { content: "More", parentId: "a1", clientId: "c1" }, []);
    feed(state, snapshot([stored("u1"), stored("a1", { parent_id: "u1", role: "assistant" })]));
    assert.equal(state.leafId, "local:c1");
  });

  it("keeps an answer's own text when its checkpoint is older", () => {
    const { state } = streamingAnswer();
    feed(state, delta("a1", 1, "a"));
    feed(state, delta("a1", 2, "b"));
    const active = { message_id: "a1", seq: 1, text: "a" };
    const answer = stored("a1", { role: "assistant", parent_id: "u1", status: "streaming" });
    feed(state, snapshot([stored("u1"), answer], { active }));
    assert.equal(state.messages.get("a1").content, "ab");
  });

  it("stops following an answer that ended while the page was not listening", () => {
    const { state } = streamingAnswer();
    const answer = stored("a1", { role: "assistant", parent_id: "u1", content: "Done." });
    feed(state, snapshot([stored("u1"), answer]));
    assert.equal(state.streams.size, 0);
    assert.equal(state.messages.get("a1").status, "complete");
  });

  it("loads the list again after the first, and tells the page its title and settings", () => {
    const { state } = newPage();
    const first = feed(state, snapshot([], { title: "Rivers", system_prompt: "Be brief." }));
    assert.deepEqual(only(first, Effect.LIST_REFRESH), [
      { type: Effect.LIST_REFRESH, missedFrames: false },
    ]);
    assert.deepEqual(only(first, Effect.TITLE), [{ type: Effect.TITLE, title: "Rivers" }]);
    assert.deepEqual(only(first, Effect.SYSTEM_PROMPT)[0].prompt, "Be brief.");
    assert.equal(only(first, Effect.MODEL)[0].choice.model, "simulated");
    const second = feed(state, snapshot([], { title: "" }));
    assert.equal(only(second, Effect.LIST_REFRESH)[0].missedFrames, true);
    assert.deepEqual(only(second, Effect.TITLE), []); // unnamed: the page says so itself
    assert.equal(state.storedTitle, "");
  });
});

describe("what the page holds", () => {
  it("is told to a `pong` in its terms: saved messages, the newest of the branch shown", () => {
    const { state } = servedTurn();
    sendMessage(state, { content: "More", parentId: "a1", clientId: "c1" }, []);
    assert.deepEqual(heldState(state), {
      count: 2,
      lastId: "a1",
      lastStatus: "complete",
      title: "Greeting",
      modelChoice: { provider_id: null, model: "simulated", available: true },
    });
  });

  it("includes the model choice only once the server told one", () => {
    const { state } = servedTurn();
    feed(state, {
      type: "model",
      model_choice: { provider_id: 3, model: "big", available: false },
    });
    assert.deepEqual(heldState(state).modelChoice, {
      provider_id: 3,
      model: "big",
      available: false,
    });
    const fx = feed(state, { type: "model", model_choice: null });
    assert.deepEqual(fx, []);
    assert.equal(heldState(state).modelChoice.model, "big");
  });

  it("waits for every echo, a retry's start, a stop's done and a resync's snapshot", () => {
    const { state } = streamingAnswer();
    state.outbox.set("c1", {});
    state.retryRequested = "a0";
    state.stopRequested = "a1";
    state.resyncRequested = true;
    assert.deepEqual(expectations(state), ["echo:c1", "start:a0", "done:a1", "snapshot"]);
  });

  it("draws a message being edited only once its editor closes", () => {
    const { state, turn } = servedTurn();
    state.editing = state.messages.get("u1");
    const fx = feed(state, snapshot([{ ...turn[0], content: "Hi!" }, turn[1]]));
    assert.deepEqual(only(fx, Effect.RENDER), []);
    assert.equal(state.messages.get("u1").content, "Hi!");
  });

  it("totals the tokens again when a message's usage changes", () => {
    const { state, turn } = servedTurn();
    const usage = { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 };
    const fx = feed(state, snapshot([turn[0], { ...turn[1], usage }]));
    assert.equal(only(fx, Effect.USAGE).length, 1);
    assert.deepEqual(
      only(feed(state, snapshot([turn[0], { ...turn[1], usage }])), Effect.USAGE),
      [],
    );
  });

  it("an answer's `start` says who answers, and moves the conversation up the list", () => {
    const { state } = servedTurn();
    const fx = feed(state, {
      type: "start",
      message_id: "a2",
      parent_id: "u1",
      created_at: at(9),
      model: "big",
      provider_name: "Lab",
    });
    const entry = state.messages.get("a2");
    assert.equal(entry.model, "big");
    assert.equal(entry.providerName, "Lab");
    assert.deepEqual(only(fx, Effect.LIST_OWN), [
      { type: Effect.LIST_OWN, answering: true, updatedAt: at(9) },
    ]);
  });
});
