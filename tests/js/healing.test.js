/*
 * The page heals from frames lost, repeated and reordered (docs/protocol.md, "Resuming" and
 * "Versions"), proven on its state alone: frame sequences go through chat/dispatch.js to the
 * handlers, and the test reads the state and what the page is told to do.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Effect } from "../../streaming/static/streaming/chat/effects.js";
import { switchVersion } from "../../streaming/static/streaming/chat/requests.js";
import { expectations } from "../../streaming/static/streaming/chat/store.js";
import { QUIET_MS } from "../../streaming/static/streaming/chat/stream.js";
import {
  at,
  delta,
  done,
  feed,
  feedAll,
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

describe("an answer's text", () => {
  it("is assembled from deltas in order", () => {
    const { state, syncs } = streamingAnswer();
    const fx = feedAll(state, [delta("a1", 1, "Hel"), delta("a1", 2, "lo")]);
    assert.equal(state.messages.get("a1").content, "Hello");
    assert.equal(only(fx, Effect.TEXT).length, 2);
    assert.deepEqual(syncs, []);
  });

  it("ignores a repeated delta", () => {
    const { state, syncs } = streamingAnswer();
    feedAll(state, [delta("a1", 1, "Hel"), delta("a1", 2, "lo")]);
    const fx = feed(state, delta("a1", 2, "lo"));
    assert.equal(state.messages.get("a1").content, "Hello");
    assert.deepEqual(fx, []);
    assert.deepEqual(syncs, []);
  });

  it("asks for a sync at a gap, applies the reply, and ignores the late delta", () => {
    const { state, syncs } = streamingAnswer();
    feedAll(state, [delta("a1", 1, "a"), delta("a1", 3, "c")]);
    assert.equal(state.messages.get("a1").content, "a"); // 3 waits for the reply
    assert.deepEqual(syncs, [["a1", 1]]);
    feed(state, { type: "sync", message_id: "a1", after_seq: 1, seq: 3, text: "bc" });
    const late = feed(state, delta("a1", 2, "b"));
    assert.equal(state.messages.get("a1").content, "abc");
    assert.deepEqual(late, []);
    feed(state, delta("a1", 4, "d"));
    assert.equal(state.messages.get("a1").content, "abcd");
    assert.deepEqual(syncs, [["a1", 1]]);
  });

  it("applies deltas that swapped places, and asks again when a reply comes too late", () => {
    const { state, syncs } = streamingAnswer();
    feedAll(state, [delta("a1", 1, "a"), delta("a1", 3, "c"), delta("a1", 2, "b")]);
    assert.equal(state.messages.get("a1").content, "ab");
    // The reply to the sync asked at the gap starts before the text ends now: stale.
    feed(state, { type: "sync", message_id: "a1", after_seq: 1, seq: 3, text: "bc" });
    assert.equal(state.messages.get("a1").content, "ab");
    // Delta 3 was passed over: the next delta opens a gap again, and its reply closes it.
    feed(state, delta("a1", 4, "d"));
    assert.deepEqual(syncs, [
      ["a1", 1],
      ["a1", 2],
    ]);
    feed(state, { type: "sync", message_id: "a1", after_seq: 2, seq: 4, text: "cd" });
    assert.equal(state.messages.get("a1").content, "abcd");
  });

  it("ignores a stale sync reply", () => {
    const { state } = streamingAnswer();
    feedAll(state, [delta("a1", 1, "a"), delta("a1", 2, "b")]);
    const fx = feed(state, { type: "sync", message_id: "a1", after_seq: 0, seq: 2, text: "ab" });
    assert.equal(state.messages.get("a1").content, "ab");
    assert.deepEqual(fx, []);
  });

  it("takes the saved text from `done`, healing a lost tail without a warning", () => {
    const { state } = streamingAnswer();
    feedAll(state, [delta("a1", 1, "a"), delta("a1", 2, "b")]); // 3 and 4 lost
    const fx = feed(state, done("a1", 4, "abcd"));
    assert.equal(state.messages.get("a1").content, "abcd");
    assert.equal(state.messages.get("a1").status, "complete");
    assert.deepEqual(only(fx, Effect.WARN), []);
    assert.equal(state.streams.size, 0);
  });

  it("warns when the saved text disagrees with what it assembled, and shows the saved", () => {
    const { state } = streamingAnswer();
    feedAll(state, [delta("a1", 1, "a"), delta("a1", 2, "b")]);
    const fx = feed(state, done("a1", 2, "aB"));
    assert.equal(state.messages.get("a1").content, "aB");
    const [warning] = only(fx, Effect.WARN);
    assert.match(warning.text, /^chat: answer a1 \(complete\) assembled 2 characters/);
  });

  it("ignores deltas and a repeated `done` after the answer ended, announcing it once", () => {
    const { state } = streamingAnswer();
    const first = feedAll(state, [delta("a1", 1, "a"), done("a1", 1, "a")]);
    assert.equal(only(first, Effect.ANSWER_ENDED).length, 1);
    const after = feedAll(state, [delta("a1", 2, "b"), done("a1", 1, "a")]);
    assert.equal(state.messages.get("a1").content, "a");
    assert.deepEqual(only(after, Effect.ANSWER_ENDED), []);
    assert.deepEqual(sent(after), []);
  });

  it("asks about a quiet answer, so a lost `done` heals by the sync's reply", () => {
    const { state, syncs, clock } = streamingAnswer();
    feed(state, delta("a1", 1, "a")); // then nothing: the `done` was lost
    clock.advance(QUIET_MS);
    assert.deepEqual(syncs, [["a1", 1]]);
    // The server answers a sync for an ended answer with its `done`.
    feed(state, done("a1", 2, "ab"));
    assert.equal(state.messages.get("a1").status, "complete");
    assert.equal(state.messages.get("a1").content, "ab");
  });
});

describe("frames about messages the page does not know", () => {
  it("a lost `start`: the next delta asks for a resync, once until the snapshot", () => {
    const page = newPage();
    feed(page.state, snapshot([stored("u1", { content: "Hi" })]));
    const fx = feedAll(page.state, [delta("a1", 1, "He"), delta("a1", 2, "llo")]);
    assert.deepEqual(sentTypes(fx), ["resync"]);
    assert.equal(page.state.messages.has("a1"), false);
    assert.deepEqual(expectations(page.state), ["snapshot"]);
    // The snapshot has the answer so far; the server syncs the rest on the page's behalf.
    const active = { message_id: "a1", seq: 2, text: "Hello" };
    const answer = stored("a1", { role: "assistant", parent_id: "u1", status: "streaming" });
    feed(page.state, snapshot([stored("u1", { content: "Hi" }), answer], { active }));
    assert.equal(page.state.messages.get("a1").content, "Hello");
    assert.equal(page.state.resyncRequested, false);
    feed(page.state, delta("a1", 3, "!"));
    assert.equal(page.state.messages.get("a1").content, "Hello!");
  });

  it("a `done` or a `sync` for an unknown message asks for a resync", () => {
    for (const frame of [
      done("a9", 1, "x"),
      { type: "sync", message_id: "a9", after_seq: 0, seq: 1, text: "x" },
    ]) {
      const { state } = servedTurn();
      assert.deepEqual(sentTypes(feed(state, frame)), ["resync"], frame.type);
    }
  });

  it("a sync for an answer that ended asks for nothing", () => {
    const { state } = servedTurn();
    const fx = feed(state, { type: "sync", message_id: "a1", after_seq: 0, seq: 1, text: "x" });
    assert.deepEqual(fx, []);
  });

  it("a `retrying` for an unknown message asks for nothing", () => {
    const { state } = servedTurn();
    assert.deepEqual(
      feed(state, { type: "retrying", message_id: "a9", delay: 3, reason: "x" }),
      [],
    );
  });

  it("a `branch` naming an unknown message asks for a resync", () => {
    const { state } = servedTurn();
    const fx = feed(state, { type: "branch", leaf_id: "u9" });
    assert.deepEqual(sentTypes(fx), ["resync"]);
    assert.equal(state.leafId, "a1");
  });

  it("a `pong` that disagrees asks for a resync; one that agrees does not", () => {
    const { state } = servedTurn();
    const agreeing = {
      type: "pong",
      title: "Greeting",
      model_choice: { provider_id: null, model: "simulated", available: true },
      count: 2,
      last_id: "a1",
      last_status: "complete",
    };
    assert.deepEqual(feed(state, agreeing), []);
    assert.deepEqual(sentTypes(feed(state, { ...agreeing, count: 4, last_id: "a2" })), ["resync"]);
    // Asked once until the snapshot comes, however many frames show it.
    assert.deepEqual(feed(state, { ...agreeing, title: "Other" }), []);
  });

  it("a lost `done` is caught by the pong, and the snapshot settles the answer", () => {
    const { state } = streamingAnswer();
    feed(state, delta("a1", 1, "He"));
    const pong = { type: "pong", title: "", count: 2, last_id: "a1", last_status: "complete" };
    assert.deepEqual(sentTypes(feed(state, pong)), ["resync"]);
    const answer = stored("a1", { role: "assistant", parent_id: "u1", content: "Hello" });
    feed(state, snapshot([stored("u1", { content: "Hi" }), answer]));
    assert.equal(state.messages.get("a1").status, "complete");
    assert.equal(state.messages.get("a1").content, "Hello");
    assert.equal(state.streams.size, 0);
  });

  it("a message another tab sent ends the branch shown", () => {
    const { state } = servedTurn();
    feed(state, { type: "message", title: "Greeting", message: stored("u2", { parent_id: "a1" }) });
    assert.equal(state.leafId, "u2");
  });

  it("a late `start` of an ended answer changes nothing", () => {
    const { state } = servedTurn();
    const fx = feed(state, start("a1", "u1", at(1)));
    assert.deepEqual(fx, []);
    assert.equal(state.messages.get("a1").status, "complete");
  });
});

describe("versions", () => {
  /** A served page with two versions of the answer to u1: a1, then a2, shown. */
  function twoVersions() {
    const page = servedTurn();
    const a2 = stored("a2", {
      role: "assistant",
      parent_id: "u1",
      content: "Hey",
      created_at: at(2),
    });
    feed(page.state, snapshot([...page.turn, a2]));
    return page;
  }

  it("a switch shows the version at once, and its `branch` confirms it", () => {
    const { state } = twoVersions();
    const fx = [];
    switchVersion(state, state.messages.get("a2"), -1, fx);
    assert.deepEqual(sent(fx), [{ type: "switch", message_id: "a1" }]);
    assert.equal(state.leafId, "a1");
    assert.deepEqual(feed(state, { type: "branch", leaf_id: "a1" }), []);
    assert.equal(state.leafId, "a1");
  });

  it("of several switches in flight, only the last one's `branch` counts", () => {
    const { state } = twoVersions();
    const fx = [];
    switchVersion(state, state.messages.get("a2"), -1, fx); // to a1
    switchVersion(state, state.messages.get("a1"), 1, fx); // and back to a2
    assert.equal(state.leafId, "a2");
    feed(state, { type: "branch", leaf_id: "a1" }); // the first switch's: the reader moved on
    assert.equal(state.leafId, "a2");
    feed(state, { type: "branch", leaf_id: "a2" });
    assert.equal(state.leafId, "a2");
    feed(state, { type: "branch", leaf_id: "a1" }); // another tab's switch
    assert.equal(state.leafId, "a1");
  });

  it("a snapshot forgets switches in flight: its branch is the one shown", () => {
    const page = twoVersions();
    const fx = [];
    switchVersion(page.state, page.state.messages.get("a2"), -1, fx);
    feed(page.state, snapshot([...page.turn], { leaf_id: "a1" }));
    assert.equal(page.state.switchesOut, 0);
    assert.equal(page.state.messages.has("a2"), false); // gone meanwhile: forgotten
  });
});
