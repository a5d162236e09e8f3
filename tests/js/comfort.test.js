/*
 * The chat page's reading comfort (streaming/static/streaming/chat/comfort.js): the wait
 * before a retry in words, and what a screen reader is read.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  ANNOUNCE_MAX_CHARS,
  ANNOUNCE_SOURCE_CHARS,
  announcedSource,
  announcementText,
  secondsLeft,
  waitNotice,
} from "../../streaming/static/streaming/chat/comfort.js";

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
