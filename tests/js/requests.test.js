/*
 * What else a person asks (chat/requests.js), and how the page stops waiting for it: the
 * confirmation, or a snapshot after it was lost.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Effect } from "../../streaming/static/streaming/chat/effects.js";
import {
  ping,
  requestContinue,
  requestRetry,
  requestStop,
  switchVersion,
} from "../../streaming/static/streaming/chat/requests.js";
import { expectations } from "../../streaming/static/streaming/chat/store.js";
import {
  at,
  done,
  feed,
  newPage,
  only,
  sent,
  sentTypes,
  servedTurn,
  snapshot,
  start,
  stored,
  streamingAnswer,
} from "./page-state.js";

function effectsOf(request, state, ...args) {
  const fx = [];
  request(state, ...args, fx);
  return fx;
}

describe("stop", () => {
  it("is sent once, until the answer's `done`", () => {
    const { state } = streamingAnswer();
    assert.deepEqual(sentTypes(effectsOf(requestStop, state)), ["stop"]);
    assert.deepEqual(sentTypes(effectsOf(requestStop, state)), []);
    assert.deepEqual(expectations(state), ["done:a1"]);
    feed(state, done("a1", 0, "", { status: "cancelled" }));
    assert.equal(state.stopRequested, null);
    assert.deepEqual(expectations(state), []);
  });

  it("asks for nothing when nothing streams", () => {
    const { state } = servedTurn();
    assert.deepEqual(effectsOf(requestStop, state), []);
  });

  it("is sent again when a snapshot shows the answer still streaming", () => {
    const { state } = streamingAnswer();
    effectsOf(requestStop, state);
    const active = { message_id: "a1", seq: 0, text: "" };
    const answer = stored("a1", { role: "assistant", parent_id: "u1", status: "streaming" });
    const fx = feed(state, snapshot([stored("u1"), answer], { active }));
    assert.deepEqual(sentTypes(fx), ["stop"]);
    assert.equal(state.stopRequested, "a1");
  });

  it("is forgotten when a snapshot shows the answer ended", () => {
    const { state } = streamingAnswer();
    effectsOf(requestStop, state);
    const answer = stored("a1", { role: "assistant", parent_id: "u1", status: "cancelled" });
    const fx = feed(state, snapshot([stored("u1"), answer]));
    assert.deepEqual(sentTypes(fx), []);
    assert.equal(state.stopRequested, null);
  });
});

describe("continue", () => {
  // A served turn whose answer a1 the model's length limit cut off, at delta 3.
  function cutTurn() {
    const page = newPage();
    const cut = { finish_reason: "length", continuable: true, error: "Cut off.", model: "m" };
    const turn = [
      stored("u1", { content: "Hi" }),
      stored("a1", { role: "assistant", parent_id: "u1", content: "Hel", ...cut }),
    ];
    feed(page.state, snapshot(turn));
    return page;
  }

  it("waits for the answer's `start`, then streams on into the same answer", () => {
    const { state } = cutTurn();
    assert.equal(state.messages.get("a1").continuable, true);
    const fx = effectsOf(requestContinue, state, "a1");
    assert.deepEqual(sent(fx), [{ type: "continue_answer", message_id: "a1" }]);
    assert.deepEqual(expectations(state), ["start:a1"]);

    const started = feed(state, { ...start("a1", "u1", at(1)), seq: 3, text: "Hel" });
    const answer = state.messages.get("a1");
    assert.equal(state.retryRequested, null);
    assert.equal(state.leafId, "a1");
    assert.deepEqual([answer.status, answer.error, answer.continuable], ["streaming", "", false]);
    assert.equal(only(started, Effect.RENDER).length, 1);
    // Its deltas are numbered on from the stored text's seq.
    feed(state, { type: "delta", message_id: "a1", seq: 4, text: "lo" });
    assert.equal(answer.content, "Hello");
    const ended = feed(state, done("a1", 4, "Hello"));
    assert.equal(answer.status, "complete");
    assert.deepEqual(only(ended, Effect.WARN), []);
    assert.equal(only(ended, Effect.ANSWER_ENDED).length, 1);
  });

  it("is not asked while an answer streams or a message is edited", () => {
    const { state } = streamingAnswer();
    assert.deepEqual(effectsOf(requestContinue, state, "a1"), []);
    const cut = cutTurn();
    cut.state.editing = cut.state.messages.get("u1");
    assert.deepEqual(effectsOf(requestContinue, cut.state, "a1"), []);
  });

  it("is forgotten when refused", () => {
    for (const frame of [
      { type: "error", code: "bad_continue", message: "no" },
      { type: "error", code: "busy", message: "no" },
      { type: "error", code: "rate_limited", frame: "continue_answer", message: "slow down" },
    ]) {
      const { state } = cutTurn();
      effectsOf(requestContinue, state, "a1");
      feed(state, frame);
      assert.equal(state.retryRequested, null, JSON.stringify(frame));
      assert.equal(state.messages.get("a1").content, "Hel");
    }
  });

  it("shows the branch of an answer continued in another tab", () => {
    const { state } = cutTurn();
    state.leafId = "u1"; // another branch shown here, as after a switch
    feed(state, { ...start("a1", "u1", at(1)), seq: 3, text: "Hel" });
    assert.equal(state.leafId, "a1");
  });

  it("ignores a late `start` of an answer that has ended, unless it goes on from text", () => {
    const { state } = cutTurn();
    assert.deepEqual(feed(state, start("a1", "u1", at(1))), []);
    assert.equal(state.messages.get("a1").status, "complete");
  });
});

describe("retry", () => {
  it("waits for the new answer's `start`", () => {
    const { state } = servedTurn();
    const fx = effectsOf(requestRetry, state, "a1");
    assert.deepEqual(sent(fx), [{ type: "retry", message_id: "a1" }]);
    assert.deepEqual(only(fx, Effect.ALERT), [{ type: Effect.ALERT, text: "" }]);
    assert.deepEqual(expectations(state), ["start:a1"]);
    feed(state, start("a2", "u1", at(5)));
    assert.equal(state.retryRequested, null);
    assert.equal(state.leafId, "a2");
  });

  it("is not asked while an answer streams or a message is edited", () => {
    const { state } = streamingAnswer();
    assert.deepEqual(effectsOf(requestRetry, state, "a1"), []);
    const served = servedTurn();
    served.state.editing = served.state.messages.get("u1");
    assert.deepEqual(effectsOf(requestRetry, served.state, "a1"), []);
  });

  it("is forgotten when refused, or by a snapshot (it was handled before it)", () => {
    for (const frame of [
      { type: "error", code: "bad_retry", message: "no" },
      { type: "error", code: "model_unavailable", message: "no" },
      { type: "error", code: "rate_limited", frame: "retry", message: "slow down" },
      snapshot([stored("u1"), stored("a1", { role: "assistant", parent_id: "u1" })]),
    ]) {
      const { state } = servedTurn();
      effectsOf(requestRetry, state, "a1");
      feed(state, frame);
      assert.equal(state.retryRequested, null, JSON.stringify(frame));
    }
  });
});

describe("switch and ping", () => {
  it("no switch to a version that does not exist, or while an answer streams", () => {
    const { state } = servedTurn();
    assert.equal(switchVersion(state, state.messages.get("a1"), 1, []), null);
    const streaming = streamingAnswer();
    const u1 = streaming.state.messages.get("u1");
    assert.equal(switchVersion(streaming.state, u1, -1, []), null);
  });

  it("nothing is sent before the socket has its snapshot", () => {
    const { state } = newPage();
    assert.deepEqual(effectsOf(ping, state), []);
    feed(state, snapshot());
    assert.deepEqual(sentTypes(effectsOf(ping, state)), ["ping"]);
  });
});
