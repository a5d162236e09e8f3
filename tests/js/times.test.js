/*
 * Times as the chat pages show them (streaming/static/streaming/chat/times.js), on a fixed
 * clock.
 *
 * Dates are made from local parts (new Date(year, month, day, …)), so "today" and
 * "yesterday" hold in whatever time zone the tests run; none is near a clock change.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { exactTime, relativeTime } from "../../streaming/static/streaming/chat/times.js";

const NOW = new Date(2025, 2, 14, 15, 30, 0); // 14 March 2025, 15:30:00 local time

function before(ms) {
  return new Date(NOW.getTime() - ms);
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

describe("relativeTime", () => {
  it("says just now for the last minute", () => {
    assert.equal(relativeTime(NOW, NOW), "just now");
    assert.equal(relativeTime(before(59 * SECOND), NOW), "just now");
  });

  it("says just now for a time a little in the future (clocks differ)", () => {
    assert.equal(relativeTime(new Date(NOW.getTime() + 30 * SECOND), NOW), "just now");
  });

  it("counts whole minutes within the hour", () => {
    assert.equal(relativeTime(before(MINUTE), NOW), "1 min ago");
    assert.equal(relativeTime(before(3 * MINUTE + 59 * SECOND), NOW), "3 min ago");
    assert.equal(relativeTime(before(59 * MINUTE), NOW), "59 min ago");
  });

  it("counts whole hours earlier today", () => {
    assert.equal(relativeTime(before(HOUR), NOW), "1 h ago");
    assert.equal(relativeTime(new Date(2025, 2, 14, 0, 0, 0), NOW), "15 h ago");
  });

  it("says yesterday for any time of the day before", () => {
    assert.equal(relativeTime(new Date(2025, 2, 13, 23, 59, 59), NOW), "yesterday");
    assert.equal(relativeTime(new Date(2025, 2, 13, 0, 0, 0), NOW), "yesterday");
  });

  it("counts minutes, not days, just after midnight", () => {
    const justAfterMidnight = new Date(2025, 2, 14, 0, 10, 0);
    assert.equal(relativeTime(new Date(2025, 2, 13, 23, 50, 0), justAfterMidnight), "20 min ago");
    assert.equal(relativeTime(new Date(2025, 2, 13, 22, 0, 0), justAfterMidnight), "yesterday");
  });

  it("gives the date for older times, with the year only when it is another", () => {
    assert.equal(relativeTime(new Date(2025, 2, 12, 23, 59, 0), NOW, "en-GB"), "12 Mar");
    assert.equal(relativeTime(new Date(2025, 0, 1, 9, 0, 0), NOW, "en-GB"), "1 Jan");
    assert.equal(relativeTime(new Date(2024, 11, 31, 9, 0, 0), NOW, "en-GB"), "31 Dec 2024");
    assert.equal(relativeTime(new Date(2024, 11, 31, 9, 0, 0), NOW, "en-US"), "Dec 31, 2024");
  });

  it("takes yesterday across a month's end", () => {
    const firstOfApril = new Date(2025, 3, 1, 8, 0, 0);
    assert.equal(relativeTime(new Date(2025, 2, 31, 9, 0, 0), firstOfApril), "yesterday");
    assert.equal(relativeTime(new Date(2025, 2, 30, 9, 0, 0), firstOfApril, "en-GB"), "30 Mar");
  });
});

describe("exactTime", () => {
  it("names the day, the date and the time to the second", () => {
    // ICU versions differ in the punctuation between the parts, not in the parts.
    const exact = exactTime(new Date(2025, 2, 14, 15, 4, 5), "en-GB");
    assert.match(exact, /^Friday,? 14 March 2025,? (at )?15:04:05$/);
  });
});
