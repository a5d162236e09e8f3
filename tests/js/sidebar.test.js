/*
 * The order of a list of conversations (streaming/static/streaming/chat/sidebar.js): the
 * server's, newest activity first to the microsecond, then by id.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { listsBefore } from "../../streaming/static/streaming/chat/sidebar.js";

describe("listsBefore", () => {
  it("puts the newer activity first", () => {
    const older = { id: "b", updatedAt: "2026-11-25T08:00:00+00:00" };
    const newer = { id: "a", updatedAt: "2026-11-25T08:00:01+00:00" };
    assert.equal(listsBefore(newer, older), true);
    assert.equal(listsBefore(older, newer), false);
  });

  it("tells apart times within one millisecond", () => {
    const first = { id: "a", updatedAt: "2026-11-25T08:00:00.123457+00:00" };
    const second = { id: "b", updatedAt: "2026-11-25T08:00:00.123456+00:00" };
    assert.equal(listsBefore(first, second), true);
    assert.equal(listsBefore(second, first), false);
  });

  it("reads a time the server wrote without a fraction as .000000", () => {
    const whole = { id: "a", updatedAt: "2026-11-25T08:00:00+00:00" };
    const later = { id: "b", updatedAt: "2026-11-25T08:00:00.000001+00:00" };
    assert.equal(listsBefore(later, whole), true);
  });

  it("orders the same time by id, the larger first", () => {
    const time = "2026-11-25T08:00:00.5+00:00";
    assert.equal(listsBefore({ id: "f0", updatedAt: time }, { id: "0f", updatedAt: time }), true);
  });
});
