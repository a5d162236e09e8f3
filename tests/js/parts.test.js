/*
 * Frames in parts (chat/parts.js): pieces of one frame's JSON text joined back, and what a
 * broken sequence costs (the frame, never the next one). The server's own cutting is tested
 * against this module in tests/stream/test_parts.py.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { createJoiner } from "../../streaming/static/streaming/chat/parts.js";

/** `text` in parts of `size` characters, written as the server writes them. */
function parts(text, size) {
  const out = [];
  for (let start = 0; start < text.length; start += size) {
    const last = start + size >= text.length;
    out.push(
      `{"type": "part", "data": ${JSON.stringify(text.slice(start, start + size))}, "last": ${last}}`,
    );
  }
  return out;
}

const FRAME = JSON.stringify({ type: "done", message: { content: 'a "quoted" \\ 😀 文字' } });

describe("joining a frame's parts", () => {
  it("passes a whole frame through untouched", () => {
    const { join } = createJoiner();
    assert.equal(join(FRAME), FRAME);
  });

  it("gives the frame back, exactly, with its last part", () => {
    for (const size of [1, 2, 3, 7, FRAME.length - 1]) {
      const { join } = createJoiner();
      const pieces = parts(FRAME, size);
      const results = pieces.map(join);
      assert.deepEqual(results.slice(0, -1), Array(pieces.length - 1).fill(null));
      assert.equal(results.at(-1), FRAME);
    }
  });

  it("joins the next frame afresh after one is whole", () => {
    const { join } = createJoiner();
    for (const piece of parts(FRAME, 5)) {
      join(piece);
    }
    const results = parts(FRAME, 9).map(join);
    assert.equal(results.at(-1), FRAME);
  });

  it("drops a frame whose parts were broken by a whole frame, and only that one", () => {
    const { join } = createJoiner();
    const pieces = parts(FRAME, 6);
    join(pieces[0]);
    const ping = '{"type": "pong"}';
    assert.equal(join(ping), ping);
    // The rest of the broken frame ends in a text that is not the frame: not JSON.
    const tail = pieces.slice(1).map(join).at(-1);
    assert.throws(() => JSON.parse(tail));
    assert.equal(parts(FRAME, 4).map(join).at(-1), FRAME);
  });

  it("drops the pieces so far on a part it cannot read", () => {
    const { join } = createJoiner();
    join(parts(FRAME, 6)[0]);
    assert.equal(join('{"type": "part", "data": 5, "last": true}'), null);
    assert.equal(join('{"type": "part", broken'), null);
    assert.equal(parts(FRAME, 6).map(join).at(-1), FRAME);
  });
});
