/*
 * A page opened at a message (docs/protocol.md, "Opening at a message"): it holds a window
 * around it that does not reach the end of the branch shown, asks for newer messages with
 * `history` `after`, follows what happens past the gap without showing it in the gap, keeps
 * the reader's window across snapshots, and goes to the end when asked (Jump to latest, or a
 * message to send).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Effect } from "../../streaming/static/streaming/chat/effects.js";
import {
  anchorOf,
  heldState,
  holdsEnd,
  savedCount,
  sendResync,
  shownPath,
} from "../../streaming/static/streaming/chat/store.js";
import {
  newerThanShown,
  olderThanShown,
  requestJump,
  requestNewer,
} from "../../streaming/static/streaming/chat/windowing.js";
import {
  chain,
  delta,
  feed,
  later,
  newPage,
  only,
  sent,
  sentTypes,
  snapshot,
  start,
  stored,
} from "./page-state.js";

const COUNT = 100; // m0…m99, the end of the branch shown m99

/** A page holding m40…m59 of a 100-message conversation: the window around m50. */
function openedAt() {
  const page = newPage();
  feed(page.state, aroundWindow());
  return page;
}

function aroundWindow(fields = {}) {
  return snapshot(chain(40, 60), { leaf_id: "m99", window_end: "m59", count: COUNT, ...fields });
}

function newer(after, messages, fields = {}) {
  return { type: "history", after, messages, versions: [], complete: false, ...fields };
}

const QUESTION = stored("u100", { parent_id: "m99", content: "More?", created_at: later(100) });

/** The last `history` reply down to the end: m60…m99, another tab's question u100 and its
 * answer a101, read streaming at its checkpoint: "Hel" up to delta `seq`. */
function toTheEnd(seq) {
  const answer = stored("a101", {
    role: "assistant",
    parent_id: "u100",
    content: "Hel",
    status: "streaming",
    created_at: later(101),
  });
  return newer("m59", [...chain(60, 100), QUESTION, answer], {
    complete: true,
    active: { message_id: "a101", seq, text: "Hel" },
  });
}

function ids(entries) {
  return entries.map((entry) => entry.id);
}

describe("a page opened at a message", () => {
  it("shows the window it holds, and knows the end is below it", () => {
    const { state } = openedAt();
    assert.equal(holdsEnd(state), false);
    assert.deepEqual(ids(shownPath(state)), ids(chain(40, 60)));
    assert.equal(olderThanShown(state).id, "m40");
    assert.equal(newerThanShown(state).id, "m59");
    assert.deepEqual(heldState(state), {
      count: COUNT,
      lastId: "m99",
      lastStatus: undefined, // not held: its status is not compared
      title: "",
      modelChoice: state.modelChoice,
    });
    const pong = {
      type: "pong",
      title: "",
      model_choice: state.modelChoice,
      count: COUNT,
      last_id: "m99",
      last_status: "streaming",
    };
    assert.deepEqual(sentTypes(feed(state, pong)), []);
    assert.deepEqual(sentTypes(feed(state, { ...pong, last_id: "m98" })), ["resync"]);
  });

  it("asks once for the messages below, and holds them in their place", () => {
    const { state } = openedAt();
    const fx = [];
    requestNewer(state, fx);
    requestNewer(state, fx);
    assert.deepEqual(sent(fx), [{ type: "history", after: "m59" }]);

    feed(state, newer("m59", chain(60, 80)));
    assert.equal(state.newerRequested, null);
    assert.equal(newerThanShown(state).id, "m79");
    assert.equal(holdsEnd(state), false);
    assert.equal(savedCount(state) + state.unheld, COUNT);

    feed(state, newer("m79", chain(80, 100), { complete: true }));
    assert.equal(holdsEnd(state), true);
    assert.equal(newerThanShown(state), null);
    assert.deepEqual(ids(shownPath(state)), ids(chain(40, 100)));
    assert.equal(heldState(state).lastStatus, "complete");
    assert.equal(savedCount(state) + state.unheld, COUNT);
    const none = [];
    requestNewer(state, none);
    assert.deepEqual(sent(none), []);
  });

  it("passes over a reply for a window it has left, and one repeated", () => {
    const { state } = openedAt();
    requestNewer(state, []);
    feed(state, aroundWindow({ window_end: "m59" })); // a snapshot meanwhile
    feed(state, newer("m59", chain(60, 80)));
    assert.equal(newerThanShown(state).id, "m79");
    const held = savedCount(state);
    feed(state, newer("m59", chain(60, 80)));
    assert.equal(savedCount(state), held);
    assert.equal(newerThanShown(state).id, "m79");
  });

  it("follows another tab's message and answer past the gap, and shows them complete once there", () => {
    const { state } = openedAt();
    const fx = [
      ...feed(state, { type: "message", message: QUESTION, title: "" }),
      ...feed(state, start("a101", "u100", later(101))),
      ...feed(state, delta("a101", 1, "Hel")),
      ...feed(state, delta("a101", 2, "lo")),
    ];
    assert.deepEqual(sentTypes(fx), []); // nothing is missing: no resync
    assert.equal(state.newsBelow, true);
    assert.deepEqual(ids(shownPath(state)), ids(chain(40, 60))); // nothing in the gap
    assert.equal(state.leafId, "a101");
    assert.equal(heldState(state).count, COUNT + 2);

    // The gap filled: the reply read the answer at its checkpoint, delta 1.
    feed(state, toTheEnd(1));
    assert.equal(holdsEnd(state), true);
    assert.equal(state.newsBelow, false);
    assert.deepEqual(ids(shownPath(state)).slice(-3), ["m99", "u100", "a101"]);
    assert.equal(state.messages.get("a101").content, "Hello"); // not taken back to delta 1
    feed(state, delta("a101", 3, "!"));
    assert.equal(state.messages.get("a101").content, "Hello!");
    assert.equal(savedCount(state) + state.unheld, COUNT + 2);
  });

  it("takes up an answer it heard nothing of from the reply's text", () => {
    const { syncs, state } = openedAt();
    feed(state, toTheEnd(4));
    assert.equal(state.messages.get("a101").content, "Hel");
    assert.equal(state.streams.get("a101").last, 4);
    // The server asks the answer for the rest on this page's behalf (as after a snapshot).
    feed(state, delta("a101", 6, "?"));
    assert.deepEqual(syncs, []);
    feed(state, { type: "sync", message_id: "a101", after_seq: 4, seq: 6, text: "lo?" });
    assert.equal(state.messages.get("a101").content, "Hello?");
  });

  it("asks for a window around the reader when it lost track of something past the gap", () => {
    const { state } = openedAt();
    const fx = feed(state, delta("a200", 3, "x")); // its start was lost
    assert.deepEqual(sent(fx), [{ type: "resync", around: "m59" }]);
  });

  it("keeps the reader's window in the snapshots it asks for", () => {
    const { state } = openedAt();
    state.readingAt = "m45";
    assert.equal(anchorOf(state), "m45");
    state.readingAt = "m12"; // not held: the end of the window instead
    assert.equal(anchorOf(state), "m59");
    state.readingAt = null;
    const fx = [];
    sendResync(state, fx);
    assert.deepEqual(sent(fx), [{ type: "resync", around: "m59" }]);

    const attached = newPage().state;
    feed(attached, snapshot(chain(0, 20)));
    assert.equal(anchorOf(attached), null); // at the bottom: the end
    attached.readingAt = "m3";
    assert.equal(anchorOf(attached), "m3");
    attached.outbox.set("c1", { type: "user_message" }); // a message on its way is at the end
    assert.equal(anchorOf(attached), null);
  });

  it("a snapshot around the reader holds that window, and one of the end holds the end", () => {
    const { state } = openedAt();
    feed(state, newer("m59", chain(60, 80)));
    feed(state, snapshot(chain(50, 70), { leaf_id: "m99", window_end: "m69", count: COUNT }));
    assert.deepEqual(ids(shownPath(state)), ids(chain(50, 70)));
    assert.equal(savedCount(state) + state.unheld, COUNT);
    feed(state, snapshot(chain(80, 100), { count: COUNT }));
    assert.equal(holdsEnd(state), true);
    assert.deepEqual(ids(shownPath(state)), ids(chain(80, 100)));
  });

  it("jumps to the end with a snapshot of it, not one around the reader", () => {
    const { state } = openedAt();
    state.readingAt = "m45";
    const fx = [];
    requestJump(state, fx);
    assert.deepEqual(sent(fx), [{ type: "resync" }]);
    assert.equal(anchorOf(state), null);
    // A snapshot around the reader asked for before is not the end: still on the way.
    assert.deepEqual(only(feed(state, aroundWindow()), Effect.JUMPED), []);
    const there = feed(state, snapshot(chain(80, 100), { count: COUNT }));
    assert.deepEqual(only(there, Effect.JUMPED), [{ type: Effect.JUMPED, send: false }]);
    assert.equal(holdsEnd(state), true);
    assert.equal(state.jumpRequested, false);

    const atEnd = [];
    requestJump(state, atEnd); // held already: only down there
    assert.deepEqual(atEnd, [{ type: Effect.JUMPED, send: false }]);
  });

  it("a message to send goes to the end first, and is sent from there", () => {
    const { state } = openedAt();
    const fx = [];
    requestJump(state, fx, { send: true });
    const there = feed(state, snapshot(chain(80, 100), { count: COUNT }));
    assert.deepEqual(only(there, Effect.JUMPED), [{ type: Effect.JUMPED, send: true }]);
    assert.equal(state.sendAfterJump, false);
  });

  it("an edit from another tab of a message shown makes the branch whole again", () => {
    const { state } = openedAt();
    const edit = stored("e52", { parent_id: "m51", content: "edited", created_at: later(200) });
    const fx = feed(state, { type: "message", message: edit, title: "" });
    assert.deepEqual(sentTypes(fx), []);
    assert.equal(holdsEnd(state), true);
    assert.equal(state.newsBelow, false);
    assert.deepEqual(ids(shownPath(state)), [...ids(chain(40, 52)), "e52"]);
  });

  it("a branch it cannot place asks for a window around the reader", () => {
    const { state } = openedAt();
    state.readingAt = "m45";
    const fx = feed(state, { type: "branch", leaf_id: "m99" });
    assert.deepEqual(sent(fx), [{ type: "resync", around: "m45" }]);
  });

  it("a refused request for newer messages is asked for no more, and the page resyncs", () => {
    const { state } = openedAt();
    requestNewer(state, []);
    const refusal = { type: "error", code: "bad_history", message: "No such message." };
    const fx = feed(state, refusal);
    assert.equal(state.newerRequested, null);
    assert.deepEqual(sent(fx), [{ type: "resync", around: "m59" }]);
    assert.deepEqual(only(fx, Effect.ALERT), []);

    const limited = newPage().state;
    feed(limited, aroundWindow());
    requestNewer(limited, []);
    const slow = feed(limited, {
      type: "error",
      code: "rate_limited",
      message: "Too many frames.",
      retry_after: 1,
      frame: "history",
    });
    assert.equal(limited.newerRequested, null);
    assert.deepEqual(slow, []);
  });
});
