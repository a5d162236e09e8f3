/*
 * What else a person asks (chat/requests.js), and how the page stops waiting for it: the
 * confirmation, or a snapshot after it was lost.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { closed } from "../../streaming/static/streaming/chat/connection.js";
import { Effect } from "../../streaming/static/streaming/chat/effects.js";
import { sendMessage } from "../../streaming/static/streaming/chat/outbox.js";
import {
  canStop,
  isStopping,
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
    const [frame] = sent(fx);
    assert.deepEqual(frame, { type: "retry", message_id: "a1", client_id: frame.client_id });
    assert.match(frame.client_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-/);
    assert.equal(state.retryClientId, frame.client_id);
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

describe("stop from the moment of Send", () => {
  /** A served turn and a message "More" sent after it as c1: the state. */
  function sentMore({ draft = false } = {}) {
    const page = draft ? newPage({ draft: true }) : servedTurn();
    sendMessage(page.state, { content: "More", parentId: draft ? null : "a1", clientId: "c1" }, []);
    return page.state;
  }

  const echo = (fields = {}) => ({
    type: "message",
    title: "Greeting",
    message: stored("u2", { parent_id: "a1", content: "More", client_id: "c1", ...fields }),
  });

  it("names the message by its client_id before its answer is known, once", () => {
    const state = sentMore();
    assert.equal(canStop(state), true);
    assert.deepEqual(sent(effectsOf(requestStop, state)), [{ type: "stop", client_id: "c1" }]);
    assert.equal(isStopping(state), true);
    assert.deepEqual(sent(effectsOf(requestStop, state)), []);
    assert.deepEqual(expectations(state), ["echo:c1", "stop:c1"]);
  });

  it("works between the message's echo and its answer's `start`", () => {
    const state = sentMore();
    feed(state, echo());
    assert.equal(canStop(state), true);
    assert.deepEqual(sent(effectsOf(requestStop, state)), [{ type: "stop", client_id: "c1" }]);
  });

  it("becomes the stop of the answer when its `start` comes, and ends with its `done`", () => {
    const state = sentMore();
    effectsOf(requestStop, state);
    feed(state, echo());
    const fx = feed(state, start("a2", "u2", at(2)));
    assert.deepEqual(sent(fx), []); // the server has the stop already
    assert.equal(state.stopRequested, "a2");
    assert.equal(state.earlyStop, null);
    assert.deepEqual(expectations(state), ["done:a2"]);
    feed(state, done("a2", 0, "", { status: "cancelled", parent_id: "u2" }));
    assert.equal(isStopping(state), false);
    assert.equal(canStop(state), false);
    assert.deepEqual(expectations(state), []);
  });

  it("leaves another answer's `start` alone", () => {
    const state = sentMore();
    effectsOf(requestStop, state);
    feed(state, echo());
    feed(state, start("x9", "someone-else", at(2)));
    assert.equal(state.stopRequested, null);
    assert.equal(state.earlyStop, "c1");
  });

  it("of a retry, names the retry by its own client_id", () => {
    const { state } = servedTurn();
    const retry = sent(effectsOf(requestRetry, state, "a1"))[0];
    assert.equal(canStop(state), true);
    const fx = effectsOf(requestStop, state);
    assert.deepEqual(sent(fx), [{ type: "stop", client_id: retry.client_id }]);
    feed(state, start("a2", "u1", at(2)));
    assert.equal(state.stopRequested, "a2");
    assert.equal(state.retryRequested, null);
  });

  it("is forgotten with the message or retry the server refused", () => {
    const state = sentMore();
    effectsOf(requestStop, state);
    feed(state, { type: "error", code: "busy", message: "busy" });
    assert.equal(isStopping(state), false);
    assert.equal(canStop(state), false);

    const { state: retried } = servedTurn();
    effectsOf(requestRetry, retried, "a1");
    effectsOf(requestStop, retried);
    feed(retried, { type: "error", code: "rate_limited", frame: "retry", message: "slow" });
    assert.equal(isStopping(retried), false);
  });

  it("on a new chat, waits for the conversation's socket, then stops its answer", () => {
    const state = sentMore({ draft: true });
    assert.deepEqual(sent(effectsOf(requestStop, state)), []); // no socket: the POST is out
    assert.equal(isStopping(state), true);
    state.draft = false; // the POST made the conversation; its socket opens
    const u1 = stored("u1", { content: "More", client_id: "c1" });
    const a1 = stored("a1", { role: "assistant", parent_id: "u1", status: "streaming" });
    const active = { message_id: "a1", seq: 0, text: "" };
    const fx = feed(state, snapshot([u1, a1], { active }));
    assert.deepEqual(sent(fx), [{ type: "stop" }]);
    assert.equal(state.stopRequested, "a1");
    assert.equal(state.earlyStop, null);
  });

  it("after a reconnect, goes ahead of the message sent again when it was not saved", () => {
    const state = sentMore();
    closed(state, 1006, []);
    effectsOf(requestStop, state); // no socket now: kept
    const turn = [stored("u1"), stored("a1", { role: "assistant", parent_id: "u1" })];
    const fx = feed(state, snapshot(turn));
    assert.deepEqual(
      sent(fx).map((frame) => [frame.type, frame.client_id]),
      [
        ["stop", "c1"],
        ["user_message", "c1"],
      ],
    );
    assert.equal(state.earlyStop, "c1");
  });

  it("is settled by a snapshot that shows the answer ended, or the retry not made", () => {
    const state = sentMore();
    effectsOf(requestStop, state);
    const u2 = stored("u2", { parent_id: "a1", client_id: "c1" });
    const a2 = stored("a2", { role: "assistant", parent_id: "u2", status: "cancelled" });
    const turn = [stored("u1"), stored("a1", { role: "assistant", parent_id: "u1" })];
    assert.deepEqual(sent(feed(state, snapshot([...turn, u2, a2]))), []);
    assert.equal(isStopping(state), false);

    const { state: retried } = servedTurn();
    effectsOf(requestRetry, retried, "a1");
    effectsOf(requestStop, retried);
    assert.deepEqual(sent(feed(retried, snapshot(turn))), []);
    assert.equal(isStopping(retried), false);
  });

  it("is not offered for a conversation that only ends with a question", () => {
    const { state } = newPage();
    feed(state, snapshot([stored("u1", { client_id: "c0" })]));
    assert.equal(canStop(state), false);
    assert.deepEqual(effectsOf(requestStop, state), []);
  });
});
