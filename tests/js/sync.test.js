/*
 * The chat page's checks on lost frames it cannot name (streaming/static/streaming/chat/sync.js):
 * the watchdog over confirmations, the idle check, and the pong comparison.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  IDLE_MS,
  IdleCheck,
  pongDisagreement,
  WAIT_MS,
  Watchdog,
} from "../../streaming/static/streaming/chat/sync.js";
import { fakeClock } from "./fake-clock.js";

function newWatchdog() {
  const clock = fakeClock();
  const overdue = { count: 0 };
  const watchdog = new Watchdog(() => {
    overdue.count += 1;
  }, clock);
  return { watchdog, overdue, clock };
}

describe("Watchdog", () => {
  it("sets no timer while nothing is awaited", () => {
    const { watchdog, overdue, clock } = newWatchdog();
    watchdog.update([]);
    assert.equal(clock.pending, 0);
    clock.advance(WAIT_MS * 3);
    assert.equal(overdue.count, 0);
  });

  it("is overdue after WAIT_MS without progress, then every WAIT_MS", () => {
    const { watchdog, overdue, clock } = newWatchdog();
    watchdog.update(["echo:a"]);
    clock.advance(WAIT_MS - 1);
    assert.equal(overdue.count, 0);
    clock.advance(1);
    assert.equal(overdue.count, 1);
    watchdog.update(["echo:a"]); // nothing changed: the clock runs on
    clock.advance(WAIT_MS);
    assert.equal(overdue.count, 2);
  });

  it("stops when everything awaited is resolved", () => {
    const { watchdog, overdue, clock } = newWatchdog();
    watchdog.update(["echo:a", "done:m"]);
    clock.advance(WAIT_MS - 1);
    watchdog.update([]);
    assert.equal(clock.pending, 0);
    clock.advance(WAIT_MS * 2);
    assert.equal(overdue.count, 0);
  });

  it("starts the clock again when one thing is resolved and another still awaited", () => {
    const { watchdog, overdue, clock } = newWatchdog();
    watchdog.update(["echo:a", "echo:b"]);
    clock.advance(WAIT_MS - 1);
    watchdog.update(["echo:b"]);
    clock.advance(WAIT_MS - 1);
    assert.equal(overdue.count, 0);
    clock.advance(1);
    assert.equal(overdue.count, 1);
  });

  it("does not put off an old expectation for a new one", () => {
    const { watchdog, overdue, clock } = newWatchdog();
    watchdog.update(["echo:a"]);
    clock.advance(WAIT_MS - 1);
    watchdog.update(["echo:a", "snapshot"]);
    clock.advance(1);
    assert.equal(overdue.count, 1);
  });

  it("can be told from its own callback what is awaited now", () => {
    const clock = fakeClock();
    let watchdog = null;
    let asked = 0;
    watchdog = new Watchdog(() => {
      asked += 1;
      watchdog.update(["echo:a", "snapshot"]); // as the page may, once it sent `resync`
    }, clock);
    watchdog.update(["echo:a"]);
    clock.advance(WAIT_MS * 3);
    assert.equal(asked, 3);
    assert.equal(clock.pending, 1);
  });

  it("forgets everything on stop", () => {
    const { watchdog, overdue, clock } = newWatchdog();
    watchdog.update(["start:m"]);
    watchdog.stop();
    assert.equal(clock.pending, 0);
    clock.advance(WAIT_MS * 2);
    assert.equal(overdue.count, 0);
    watchdog.update(["start:m"]); // awaited afresh: a full WAIT_MS again
    clock.advance(WAIT_MS - 1);
    assert.equal(overdue.count, 0);
    clock.advance(1);
    assert.equal(overdue.count, 1);
  });
});

describe("IdleCheck", () => {
  it("calls after IDLE_MS without a frame, and every IDLE_MS after", () => {
    const clock = fakeClock();
    let pings = 0;
    const idle = new IdleCheck(() => {
      pings += 1;
    }, clock);
    idle.heard();
    clock.advance(IDLE_MS - 1);
    assert.equal(pings, 0);
    clock.advance(1);
    assert.equal(pings, 1);
    clock.advance(IDLE_MS);
    assert.equal(pings, 2);
  });

  it("waits afresh after every frame, and not at all once stopped", () => {
    const clock = fakeClock();
    let pings = 0;
    const idle = new IdleCheck(() => {
      pings += 1;
    }, clock);
    idle.heard();
    for (let i = 0; i < 5; i += 1) {
      clock.advance(IDLE_MS - 1);
      idle.heard();
    }
    assert.equal(pings, 0);
    idle.stop();
    clock.advance(IDLE_MS * 3);
    assert.equal(pings, 0);
    assert.equal(clock.pending, 0);
  });
});

describe("pongDisagreement", () => {
  const held = { count: 2, lastId: "b", lastStatus: "complete", title: "Rivers" };
  const pong = { type: "pong", title: "Rivers", count: 2, last_id: "b", last_status: "complete" };

  it("finds none when the pong describes what the page holds", () => {
    assert.equal(pongDisagreement(pong, held), null);
  });

  it("finds none for an empty conversation on an empty page", () => {
    const empty = { type: "pong", title: "", count: 0, last_id: null, last_status: null };
    const nothing = { count: 0, lastId: null, lastStatus: null, title: "" };
    assert.equal(pongDisagreement(empty, nothing), null);
  });

  it("finds a message the page does not have", () => {
    assert.notEqual(pongDisagreement({ ...pong, count: 3, last_id: "c" }, held), null);
  });

  it("finds a different newest message", () => {
    assert.notEqual(pongDisagreement({ ...pong, last_id: "c" }, held), null);
  });

  it("finds an answer that ended while the page thinks it streams", () => {
    const streaming = { ...held, lastStatus: "streaming" };
    assert.notEqual(pongDisagreement(pong, streaming), null);
  });

  it("finds a changed title, unless the page does not know the stored one yet", () => {
    assert.notEqual(pongDisagreement({ ...pong, title: "Lakes" }, held), null);
    assert.equal(pongDisagreement({ ...pong, title: "Lakes" }, { ...held, title: null }), null);
  });

  it("finds a changed model, unless the page does not know the stored one yet", () => {
    const chosen = { provider_id: 3, model: "sim-large", available: true };
    const withModel = { ...held, modelChoice: chosen };
    assert.equal(pongDisagreement({ ...pong, model_choice: { ...chosen } }, withModel), null);
    for (const change of [{ provider_id: null }, { model: "sim-small" }, { available: false }]) {
      const stored = { ...pong, model_choice: { ...chosen, ...change } };
      assert.notEqual(pongDisagreement(stored, withModel), null, JSON.stringify(change));
    }
    const stored = { ...pong, model_choice: { ...chosen, model: "x" } };
    assert.equal(pongDisagreement(stored, { ...held, modelChoice: null }), null);
  });
});
