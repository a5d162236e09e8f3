/*
 * The chat page's reading comfort (streaming/static/streaming/chat/comfort.js): relative
 * times on a fixed clock, the wait before a retry in words, and what a screen reader is read.
 *
 * Dates are made from local parts (new Date(year, month, day, …)), so "today" and
 * "yesterday" hold in whatever time zone the tests run; none is near a clock change.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  ANNOUNCE_MAX_CHARS,
  ANNOUNCE_SOURCE_CHARS,
  announcedSource,
  announcementText,
  exactTime,
  relativeTime,
  secondsLeft,
  waitNotice,
} from "../../streaming/static/streaming/chat/comfort.js";

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

describe("the wait before a retry", () => {
  it("counts whole seconds up, never below zero", () => {
    assert.equal(secondsLeft(12_000, 0), 12);
    assert.equal(secondsLeft(12_000, 1), 12);
    assert.equal(secondsLeft(12_000, 1_000), 11);
    assert.equal(secondsLeft(12_000, 11_999), 1);
    assert.equal(secondsLeft(12_000, 12_000), 0);
    assert.equal(secondsLeft(12_000, 20_000), 0);
  });

  it("says why and how long, then that it is retrying", () => {
    assert.equal(
      waitNotice("Rate limited by the provider", 12),
      "Rate limited by the provider, retrying in 12 s",
    );
    assert.equal(
      waitNotice("The provider is unavailable (503)", 4),
      "The provider is unavailable (503), retrying in 4 s",
    );
    assert.equal(
      waitNotice("Could not reach the provider", 0),
      "Could not reach the provider, retrying now…",
    );
  });
});

describe("announcementText", () => {
  it("makes whitespace single spaces", () => {
    assert.equal(announcementText("  A title \n\n A  line\tand more  "), "A title A line and more");
  });

  it("keeps a text within the limit as it is", () => {
    const text = "word ".repeat(200).trim(); // 999 characters
    assert.equal(announcementText(text), text);
  });

  it("cuts a long text at a word, within the limit, with an ellipsis", () => {
    const text = "word ".repeat(1000);
    const said = announcementText(text);
    assert.ok(said.length <= ANNOUNCE_MAX_CHARS, said.length);
    assert.ok(said.endsWith("word…"), said.slice(-10));
    assert.ok(said.length > ANNOUNCE_MAX_CHARS * 0.8);
  });

  it("cuts a text without spaces where the limit falls", () => {
    const said = announcementText("x".repeat(5000), 100);
    assert.equal(said, `${"x".repeat(99)}…`);
  });

  it("says nothing for nothing", () => {
    assert.equal(announcementText(" \n "), "");
  });
});

describe("announcedSource", () => {
  it("keeps an answer within the limit whole", () => {
    const text = "A line\n".repeat(10);
    assert.deepEqual(announcedSource(text, 100), { source: text, cut: false });
  });

  it("takes the start of a long answer, up to a line's end, whatever its length", () => {
    const line = `${"word ".repeat(15).trim()}\n`; // 75 characters
    for (const lines of [200, 20_000]) {
      const answer = line.repeat(lines);
      const { source, cut } = announcedSource(answer);
      assert.ok(cut);
      assert.ok(source.length <= ANNOUNCE_SOURCE_CHARS, source.length);
      assert.ok(source.length > ANNOUNCE_SOURCE_CHARS - line.length, source.length);
      assert.ok(answer.startsWith(source));
      assert.equal(answer[source.length], "\n"); // the cut is at a line's end
    }
  });

  it("cuts where the limit falls when no line ends near it", () => {
    const { source, cut } = announcedSource("x".repeat(50_000), 100);
    assert.ok(cut);
    assert.equal(source, "x".repeat(100));
  });

  it("leaves room for the read text: a long answer's start gives more than is read", () => {
    // Markdown's own marks are a small part of any text: what is rendered of the start
    // still holds more words than an announcement reads.
    const { source } = announcedSource("**word** ".repeat(20_000));
    assert.ok(source.replace(/\*/g, "").length > ANNOUNCE_MAX_CHARS);
  });
});
