/*
 * AnswerStream (streaming/static/streaming/chat/stream.js): one answer assembled from
 * snapshot, delta, sync and done frames, with its sync requests and their timers.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  AnswerStream,
  QUIET_MS,
  SYNC_RETRY_MS,
} from "../../streaming/static/streaming/chat/stream.js";
import { fakeClock } from "./fake-clock.js";

/** A stream on a fake clock, with every sync request it makes in `asked`. */
function newStream() {
  const clock = fakeClock();
  const asked = [];
  const stream = new AnswerStream("m1", (id, afterSeq) => asked.push([id, afterSeq]), clock);
  return { stream, asked, clock };
}

describe("AnswerStream deltas", () => {
  it("applies deltas in order", () => {
    const { stream, asked } = newStream();
    assert.equal(stream.delta(1, "Hel"), true);
    assert.equal(stream.delta(2, "lo"), true);
    assert.equal(stream.text, "Hello");
    assert.equal(stream.last, 2);
    assert.deepEqual(asked, []);
  });

  it("ignores duplicate and old deltas", () => {
    const { stream, asked } = newStream();
    stream.delta(1, "a");
    stream.delta(2, "b");
    assert.equal(stream.delta(2, "b"), false);
    assert.equal(stream.delta(1, "a"), false);
    assert.equal(stream.text, "ab");
    assert.equal(stream.last, 2);
    assert.deepEqual(asked, []);
  });

  it("asks for a sync once on a gap and does not apply the delta after it", () => {
    const { stream, asked } = newStream();
    stream.delta(1, "a");
    assert.equal(stream.delta(3, "c"), false);
    assert.equal(stream.delta(4, "d"), false);
    assert.equal(stream.text, "a");
    assert.deepEqual(asked, [["m1", 1]]);
  });

  it("does not ask again for a second gap while a sync is outstanding", () => {
    const { stream, asked } = newStream();
    stream.delta(1, "a");
    stream.delta(3, "c");
    stream.delta(5, "e");
    assert.deepEqual(asked, [["m1", 1]]);
    assert.equal(stream.syncingAfter, 1);
  });
});

describe("AnswerStream sync replies", () => {
  it("appends a reply that starts where the text ends", () => {
    const { stream, asked } = newStream();
    stream.delta(1, "a");
    stream.delta(4, "d");
    assert.equal(stream.sync(1, 4, "bcd"), true);
    assert.equal(stream.text, "abcd");
    assert.equal(stream.last, 4);
    assert.equal(stream.syncingAfter, null);
    stream.delta(5, "e");
    assert.equal(stream.text, "abcde");
    assert.deepEqual(asked, [["m1", 1]]);
  });

  it("ignores a stale reply and asks again at the next gap", () => {
    const { stream, asked } = newStream();
    stream.delta(1, "a");
    stream.delta(3, "c");
    stream.delta(2, "b"); // the delayed delta arrives after all: the text moves on
    assert.equal(stream.sync(1, 3, "bc"), false); // covers what is already here
    assert.equal(stream.text, "ab");
    assert.equal(stream.syncingAfter, null);
    stream.delta(4, "d");
    assert.deepEqual(asked, [
      ["m1", 1],
      ["m1", 2],
    ]);
  });

  it("asks again when a sync goes unanswered for SYNC_RETRY_MS", () => {
    const { stream, asked, clock } = newStream();
    stream.delta(1, "a");
    stream.delta(3, "c");
    clock.advance(SYNC_RETRY_MS - 1);
    assert.deepEqual(asked, [["m1", 1]]);
    clock.advance(1);
    assert.deepEqual(asked, [
      ["m1", 1],
      ["m1", 1],
    ]);
    clock.advance(SYNC_RETRY_MS);
    assert.equal(asked.length, 3);
    stream.sync(1, 3, "bc");
    clock.advance(SYNC_RETRY_MS);
    assert.equal(asked.length, 3);
  });
});

describe("AnswerStream quiet answers", () => {
  it("asks about an answer nothing was heard about for QUIET_MS, and again after", () => {
    const { stream, asked, clock } = newStream();
    stream.delta(1, "a");
    clock.advance(QUIET_MS - 1);
    assert.deepEqual(asked, []);
    clock.advance(1);
    assert.deepEqual(asked, [["m1", 1]]);
    stream.sync(1, 1, ""); // the answer is still streaming, nothing new yet
    clock.advance(QUIET_MS);
    assert.deepEqual(asked, [
      ["m1", 1],
      ["m1", 1],
    ]);
  });

  it("does not ask while deltas keep coming", () => {
    const { stream, asked, clock } = newStream();
    for (let seq = 1; seq <= 10; seq += 1) {
      clock.advance(QUIET_MS - 1);
      stream.delta(seq, "x");
    }
    assert.deepEqual(asked, []);
    assert.equal(stream.text, "x".repeat(10));
  });
});

describe("AnswerStream resume from a snapshot", () => {
  it("takes the snapshot's text and counts the server's sync as outstanding", () => {
    const { stream, asked, clock } = newStream();
    stream.resume("Hello", 4);
    assert.equal(stream.text, "Hello");
    assert.equal(stream.last, 4);
    assert.equal(stream.syncingAfter, 4);
    stream.delta(6, "!"); // a gap before the server's sync reply: no second request
    assert.deepEqual(asked, []);
    assert.equal(stream.sync(4, 6, " there!"), true);
    assert.equal(stream.text, "Hello there!");
    clock.advance(SYNC_RETRY_MS);
    assert.deepEqual(asked, []);
  });

  it("asks itself when the server's sync does not come", () => {
    const { stream, asked, clock } = newStream();
    stream.resume("Hello", 4);
    clock.advance(SYNC_RETRY_MS);
    assert.deepEqual(asked, [["m1", 4]]);
  });

  it("keeps its own text when the snapshot's checkpoint is behind it", () => {
    const { stream, asked } = newStream();
    for (const [seq, text] of [
      [1, "a"],
      [2, "b"],
      [3, "c"],
    ]) {
      stream.delta(seq, text);
    }
    stream.resume("a", 1); // a resync mid-answer: the checkpoint is older
    assert.equal(stream.text, "abc");
    assert.equal(stream.last, 3);
    assert.equal(stream.sync(1, 4, "bcd"), false); // the server's sync after 1 is stale
    stream.delta(4, "d");
    assert.equal(stream.text, "abcd");
    assert.deepEqual(asked, []);
  });
});

describe("AnswerStream done", () => {
  it("is exact when the saved text is the assembled one", () => {
    const { stream } = newStream();
    stream.delta(1, "a");
    stream.delta(2, "b");
    assert.equal(stream.finish(2, "ab"), "exact");
    assert.equal(stream.text, "ab");
  });

  it("heals a missing tail: a larger seq brings the saved text", () => {
    const { stream, asked } = newStream();
    stream.delta(1, "a");
    stream.delta(2, "b"); // deltas 3 and 4 were lost, and nothing came after them
    assert.equal(stream.finish(4, "abcd"), "healed");
    assert.equal(stream.text, "abcd");
    assert.equal(stream.last, 4);
    assert.deepEqual(asked, []);
  });

  it("shows the checkpoint of an answer swept with less than was streamed", () => {
    const { stream } = newStream();
    stream.delta(1, "a");
    stream.delta(2, "b");
    stream.delta(3, "c");
    assert.equal(stream.finish(1, "a"), "truncated");
    assert.equal(stream.text, "a");
  });

  it("calls any other difference a mismatch, and still shows the saved text", () => {
    const { stream } = newStream();
    stream.delta(1, "a");
    stream.delta(2, "b");
    assert.equal(stream.finish(2, "aB"), "mismatch");
    assert.equal(stream.text, "aB");
  });

  it("ignores deltas and sync replies after it, and asks for nothing more", () => {
    const { stream, asked, clock } = newStream();
    stream.delta(1, "a");
    stream.delta(3, "c"); // a gap: a sync is outstanding
    stream.finish(3, "abc");
    assert.equal(stream.delta(4, "d"), false);
    assert.equal(stream.delta(6, "f"), false);
    assert.equal(stream.sync(1, 3, "bc"), false);
    stream.resume("a", 1);
    assert.equal(stream.text, "abc");
    clock.advance(QUIET_MS * 3);
    assert.deepEqual(asked, [["m1", 1]]);
    assert.equal(clock.pending, 0);
  });
});

describe("AnswerStream end", () => {
  it("clears its timers", () => {
    const { stream, asked, clock } = newStream();
    stream.delta(2, "b"); // a gap: the retry timer and the quiet timer are both set
    assert.equal(clock.pending, 2);
    stream.end();
    assert.equal(clock.pending, 0);
    clock.advance(QUIET_MS * 3);
    assert.deepEqual(asked, [["m1", 0]]);
  });
});
