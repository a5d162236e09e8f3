/*
 * The conversation's token total (streaming/static/streaming/chat/usage.js).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { label, sum } from "../../streaming/static/streaming/chat/usage.js";

describe("sum", () => {
  it("adds every answer's usage and skips messages without one", () => {
    const entries = [
      { usage: null },
      { usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } },
      {},
      { usage: { prompt_tokens: 7, completion_tokens: 0, total_tokens: 7 } },
    ];
    assert.deepEqual(sum(entries), { prompt_tokens: 17, completion_tokens: 5 });
  });

  it("reads a Map's values as well as an array", () => {
    const entries = new Map([["a", { usage: { prompt_tokens: 1, completion_tokens: 2 } }]]);
    assert.deepEqual(sum(entries.values()), { prompt_tokens: 1, completion_tokens: 2 });
  });

  it("is zero for none", () => {
    assert.equal(label(sum([])), "0 tokens in · 0 out");
  });
});
