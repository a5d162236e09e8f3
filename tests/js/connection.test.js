/*
 * What each way of losing the socket means (chat/connection.js, docs/protocol.md
 * "Connecting"): the close codes, the backoff, and the ends after which the page does not
 * reconnect.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  closed,
  leave,
  RECONNECT_FIRST_MS,
  RECONNECT_MAX_MS,
} from "../../streaming/static/streaming/chat/connection.js";
import { Effect } from "../../streaming/static/streaming/chat/effects.js";
import { Close } from "../../streaming/static/streaming/chat/protocol.js";
import { requestStop } from "../../streaming/static/streaming/chat/requests.js";
import { isOpen } from "../../streaming/static/streaming/chat/store.js";
import { feed, newPage, only, servedTurn, snapshot, streamingAnswer } from "./page-state.js";

function close(state, code) {
  const fx = [];
  closed(state, code, fx);
  return fx;
}

const delays = (fx) => only(fx, Effect.RECONNECT).map((effect) => effect.delay);

describe("a closed socket", () => {
  it("reconnects after 0.5 s, doubling to 8 s, and from 0.5 s again once served", () => {
    const { state } = servedTurn();
    const waits = [];
    for (let i = 0; i < 6; i += 1) {
      waits.push(...delays(close(state, 1006)));
    }
    assert.deepEqual(waits, [500, 1000, 2000, 4000, 8000, 8000]);
    assert.equal(RECONNECT_FIRST_MS, 500);
    assert.equal(RECONNECT_MAX_MS, 8000);
    feed(state, snapshot());
    assert.deepEqual(delays(close(state, 1006)), [500]);
  });

  it("does not reset the backoff for a socket that opened and closed before its snapshot", () => {
    const { state } = newPage();
    close(state, Close.UNAVAILABLE);
    assert.deepEqual(delays(close(state, Close.UNAVAILABLE)), [1000]);
  });

  it("says why it reconnects", () => {
    const texts = [
      [1006, "Reconnecting…"],
      [Close.UNAVAILABLE, "Live updates are unavailable — retrying…"],
      [Close.UNAUTHENTICATED, "Checking that you are still signed in…"], // after a snapshot
    ];
    for (const [code, text] of texts) {
      const { state } = servedTurn();
      const [status] = only(close(state, code), Effect.STATUS);
      assert.deepEqual(status, {
        type: Effect.STATUS,
        connection: "reconnecting",
        text,
        kind: "warning",
      });
    }
  });

  it("forgets what was asked on it but a stop: the next snapshot says what became of them", () => {
    const { state } = streamingAnswer();
    requestStop(state, []);
    state.resyncRequested = true;
    state.switchesOut = 2;
    close(state, 1006);
    assert.equal(state.stopRequested, "a1"); // sent again if the snapshot shows it streaming
    assert.equal(state.resyncRequested, false);
    assert.equal(state.switchesOut, 0);
    assert.equal(isOpen(state), false);
  });

  it("refused at connect with 4401: signed out, with the way to sign in, and no reconnect", () => {
    const { state } = newPage();
    const fx = close(state, Close.UNAUTHENTICATED);
    assert.deepEqual(fx, [
      {
        type: Effect.CLOSED,
        text: "You were signed out. Sign in again to continue.",
        signIn: true,
      },
    ]);
    assert.equal(state.closedForGood, true);
  });

  it("a session that ended says why, and the page signs out if the reconnect is refused", () => {
    const { state } = servedTurn();
    const message = "Your password was changed.";
    feed(state, { type: "error", code: "session_ended", reason: "password_changed", message });
    assert.deepEqual(delays(close(state, Close.UNAUTHENTICATED)), [500]);
    const [end] = close(state, Close.UNAUTHENTICATED); // the reconnect, refused
    assert.deepEqual(end, { type: Effect.CLOSED, text: message, signIn: true });
  });

  it("4403, 4404 and 4429 close the page for good", () => {
    const ends = [
      [Close.FORBIDDEN, "This conversation does not exist or is not yours."],
      [Close.DELETED, "This conversation was deleted."],
      [Close.TOO_MANY, "Too many chat tabs are open. Close one, then reload this page."],
    ];
    for (const [code, text] of ends) {
      const { state } = streamingAnswer();
      assert.deepEqual(close(state, code), [{ type: Effect.CLOSED, text, signIn: false }]);
      assert.equal(state.closedForGood, true);
      assert.equal(state.streams.size, 0);
    }
  });

  it("4429 after the limit's error frame says the server's words", () => {
    const { state } = newPage();
    const limit = { type: "error", code: "rate_limited", message: "You have 5 chat tabs open." };
    feed(state, limit);
    assert.equal(close(state, Close.TOO_MANY)[0].text, "You have 5 chat tabs open.");
  });

  it("after a `deleted` frame, or while the page is hidden, is no reason to reconnect", () => {
    const { state } = servedTurn();
    const fx = feed(state, { type: "deleted", message: "This conversation was deleted." });
    assert.deepEqual(only(fx, Effect.CLOSED).length, 1);
    assert.deepEqual(close(state, Close.DELETED), []);
    const hidden = servedTurn();
    leave(hidden.state, true);
    assert.deepEqual(close(hidden.state, 1001), []);
  });
});
