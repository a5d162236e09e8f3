/*
 * A window of a long conversation (docs/protocol.md, "Older messages"): the page holds the
 * newest messages of the branch shown and stubs of the other versions, asks for older ones
 * with `history`, counts what it does not hold when it checks a `pong`, and asks for a branch
 * it holds only as stubs with a `resync`.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { switchVersion } from "../../streaming/static/streaming/chat/requests.js";
import { heldState } from "../../streaming/static/streaming/chat/store.js";
import { olderThanShown, requestHistory } from "../../streaming/static/streaming/chat/windowing.js";
import { chain, feed, later, newPage, sent, sentTypes, snapshot, stored } from "./page-state.js";

function stub(id, parentId, role, seconds) {
  return { id, parent_id: parentId, role, status: "complete", created_at: later(seconds) };
}

function history(before, messages, fields = {}) {
  return { type: "history", before, messages, versions: [], complete: false, ...fields };
}

/** A page holding m90…m99 of a 100-message conversation, with another version of the answer m97 as a stub. */
function windowed() {
  const page = newPage();
  const frame = snapshot(chain(90, 100), {
    versions: [stub("e97", "m96", "assistant", 200)],
    count: 103, // the version, a message after it, and the 90 older messages
  });
  feed(page.state, frame);
  return page;
}

describe("a window of a long conversation", () => {
  it("holds the window and stubs, and counts the rest for the pong", () => {
    const { state } = windowed();
    assert.equal(state.messages.size, 11);
    assert.equal(state.messages.get("e97").stub, true);
    assert.equal(state.unheld, 92);
    assert.equal(heldState(state).count, 103);
    const pong = {
      type: "pong",
      title: "",
      model_choice: state.modelChoice,
      count: 103,
      last_id: "m99",
      last_status: "complete",
    };
    assert.deepEqual(sentTypes(feed(state, pong)), []);
    assert.deepEqual(sentTypes(feed(state, { ...pong, count: 104 })), ["resync"]);
  });

  it("asks once for the messages above the first shown, and holds them when they come", () => {
    const { state } = windowed();
    assert.equal(olderThanShown(state).id, "m90");
    const fx = [];
    requestHistory(state, fx);
    requestHistory(state, fx);
    assert.deepEqual(sent(fx), [{ type: "history", before: "m90" }]);

    feed(
      state,
      history("m90", chain(80, 90), { versions: [stub("r85", "m84", "assistant", 300)] }),
    );
    assert.equal(state.historyRequested, null);
    assert.equal(olderThanShown(state).id, "m80");
    assert.equal(state.unheld, 92 - 11);
    assert.equal(heldState(state).count, 103);

    feed(state, history("m80", chain(0, 80), { complete: true }));
    assert.equal(olderThanShown(state), null);
    assert.equal(state.unheld, 1); // the message after the version, below a stub
    const fewer = [];
    requestHistory(state, fewer);
    assert.deepEqual(sent(fewer), []);
  });

  it("a history repeated adds nothing and counts nothing twice", () => {
    const { state } = windowed();
    feed(state, history("m90", chain(80, 90)));
    feed(state, history("m90", chain(80, 90)));
    assert.equal(state.unheld, 82);
  });

  it("a snapshot holds its window again: older messages asked for go", () => {
    const { state } = windowed();
    feed(state, history("m90", chain(80, 90)));
    feed(
      state,
      snapshot(chain(90, 100), { versions: [stub("e97", "m96", "assistant", 200)], count: 103 }),
    );
    assert.equal(state.messages.has("m85"), false);
    assert.equal(state.unheld, 92);
    assert.equal(olderThanShown(state).id, "m90");
  });

  it("a switch to a version held as a stub waits for the server's branch", () => {
    const { state } = windowed();
    const fx = [];
    switchVersion(state, state.messages.get("m97"), 1, fx);
    assert.deepEqual(sent(fx), [{ type: "switch", message_id: "e97" }]);
    assert.equal(state.leafId, "m99"); // not shown before its text has come
    // The branch ends below that version, where this page holds nothing: a snapshot.
    assert.deepEqual(sentTypes(feed(state, { type: "branch", leaf_id: "u98" })), ["resync"]);
  });

  it("a branch naming a stub asks for it", () => {
    const { state } = windowed();
    assert.deepEqual(sentTypes(feed(state, { type: "branch", leaf_id: "e97" })), ["resync"]);
    assert.equal(state.leafId, "m99");
  });

  it("a new message below a stub asks for that branch", () => {
    const { state } = windowed();
    const reply = stored("u98", { parent_id: "e97", created_at: later(201) });
    const fx = feed(state, { type: "message", message: reply, title: "" });
    assert.deepEqual(sentTypes(fx), ["resync"]);
  });

  it("a stub whose text comes is a message like any other", () => {
    const { state } = windowed();
    const edit = stored("e97", {
      role: "assistant",
      parent_id: "m96",
      content: "edited",
      created_at: later(200),
    });
    feed(state, snapshot([...chain(90, 97), edit], { count: 103 }));
    assert.equal(state.messages.get("e97").stub, false);
    assert.equal(state.messages.get("e97").content, "edited");
    assert.equal(state.leafId, "e97");
  });
});
