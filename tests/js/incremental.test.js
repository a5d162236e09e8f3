/*
 * chat/incremental.js: a streaming answer rendered block by block gives exactly the HTML of
 * the whole answer rendered at once, at every point the text can be cut, and the blocks it
 * calls finished really stay so (the tail stays small); the blocks are those of the whole
 * answer drawn at once.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { createMarkdown } from "../../streaming/static/streaming/chat/markdown.js";
import { libs } from "./vendored.js";

const markdown = createMarkdown(libs);

// Feed `text` cut at `cuts` (ascending offsets, the last its length) to a fresh streamer,
// checking every step against a whole render. Returns what the page would hold at the end.
function stream(text, cuts, streamer = markdown.streamer()) {
  let blocks = [];
  let longestTail = 0;
  let last = [];
  for (const cut of cuts) {
    const prefix = text.slice(0, cut);
    const { reset, blocks: finished, tail } = streamer.update(prefix);
    if (reset) {
      blocks = [];
    }
    blocks.push(...finished);
    assert.equal(blocks.join("") + tail.join(""), markdown.toHtml(prefix), `cut at ${cut}`);
    longestTail = Math.max(longestTail, tail.join("").length);
    last = [...blocks, ...tail];
  }
  // The same top-level blocks as the whole answer drawn at once (a reload): the page groups
  // them by their order, and the two must look the same.
  const atOnce = markdown.streamer().update(text);
  assert.deepEqual(last, [...atOnce.blocks, ...atOnce.tail], "the blocks of a whole render");
  return { blocks, longestTail };
}

function everyCut(text) {
  return Array.from({ length: text.length }, (_, index) => index + 1);
}

const CASES = {
  "a code fence with blank lines": "Intro\n\n```python\nx = 1\n\n\ny = 2\n```\n\nAfter\n",
  "an unclosed fence": "Intro\n\n```\ncode\n\n# not a heading\n",
  "a list, loose later": "- one\n- two\n\n- three\n\n  continued\n\nPara\n\n1. a\n2) b\n",
  "a table": "Text\n\n| a | b |\n|---|--:|\n| 1 | 2 |\n| 3 | 4 |\n\nAfter\n",
  "a table interrupting a paragraph": "Text\n| a | b |\n|---|---|\n| 1 | 2 |\n\nEnd\n",
  "display math across blank lines": "Before\n\n$$\na\n\n= b\n$$\n\nAfter $x$\n",
  "bracket math across blank lines": "Before\n\n\\[\na\n\n= b\n\\]\n\nAfter\n",
  "numbered math": "$$\nx\n$$\n\n(1.2)\n\nNext\n\n\\[y\\]\n\n(eq)\n\nEnd\n",
  "math in a quote and a list": "> $$\n> a\n> $$\n\n- $$b\n\n  c$$\n\nEnd\n",
  "a blockquote with lazy lines": "> quoted\nlazy\n\n> again\n> more\n\nNot quoted\n",
  "setext headings": "Title\n=====\n\nLine one\nline two\n---\n\nA\n\n---\n\nB\n",
  "reference definitions later":
    "See [the docs] and [x][y].\n\nMore [text].\n\n[the docs]: https://e.org/d\n\n[y]: /why 'Title'\n\nEnd\n",
  "a reference used before and defined twice": "[a]\n\n[a]: /first\n\n[a]\n\n[a]: /second\n\n[a]\n",
  "indented code": "Para\n\n    code\n\n    more code\n\nEnd\n",
  "headings, rules and tasks": "# H1\n\n***\n\n- [x] done\n- [ ] todo\n\n## H2\nText\n",
  "CRLF and lone CR": "one\r\n\r\ntwo\r\rthree\r\n\r\n```\r\ncode\r\n```\r\n\r\nend\r\n",
  "a NUL and an emoji": "a\u0000b 🙂\n\nc\n",
  "linkified URLs": "https://example.org/a\n\nwww.example.com and b\n\nend\n",
};

describe("Rendering an answer block by block while it streams", () => {
  for (const [name, text] of Object.entries(CASES)) {
    it(`renders ${name} as a whole render does, cut anywhere`, () => {
      stream(text, everyCut(text));
    });
  }

  it("renders the same whatever the size of the pieces", () => {
    const text = Object.values(CASES).join("\n\n");
    for (const size of [3, 16, 61]) {
      const cuts = [];
      for (let end = size; end < text.length; end += size) {
        cuts.push(end);
      }
      stream(text, [...cuts, text.length]);
    }
  });

  it("keeps a bounded tail: every block but the open one is finished", () => {
    const paragraph = "Some words in a paragraph, with **bold** and `code`.\n\n";
    const fence = "```js\nconst x = 1;\n```\n\n";
    const math = "$$\nx^2\n$$\n\n";
    const text = `${paragraph + fence + math}| a |\n|---|\n| 1 |\n\n`.repeat(40);
    const { blocks, longestTail } = stream(
      text,
      everyCut(text).filter((cut) => cut % 7 === 0),
    );
    assert.equal(blocks.length, 159); // every block but the last
    assert.ok(longestTail < 400, `tail up to ${longestTail} characters`);
  });

  it("highlights and typesets a finished block no more, however long the answer grows", () => {
    let highlights = 0;
    let typeset = 0;
    const hljs = Object.create(libs.hljs);
    hljs.highlight = (...args) => (highlights++, libs.hljs.highlight(...args));
    // texmath keeps the KaTeX of the first renderer made: count on that one.
    const renderToString = libs.katex.renderToString;
    libs.katex.renderToString = (...args) => (typeset++, renderToString(...args));
    try {
      const streamer = createMarkdown({ ...libs, hljs }).streamer();
      let text = "```js\nlet x = 1;\n```\n\n$$\nx^2\n$$\n\nWords";
      streamer.update(text);
      const [highlighted, typesetBefore] = [highlights, typeset];
      assert.ok(highlighted > 0 && typesetBefore > 0);
      for (let more = 0; more < 50; more++) {
        text += more % 10 === 9 ? "\n\nMore" : " words";
        streamer.update(text);
      }
      assert.equal(highlights, highlighted);
      assert.equal(typeset, typesetBefore);
    } finally {
      libs.katex.renderToString = renderToString;
    }
  });

  it("holds display math open until its closing delimiter, then finishes it", () => {
    const streamer = markdown.streamer();
    let result = streamer.update("$$\na\n\nb\n\nc\n\nd");
    assert.deepEqual(result.blocks, []); // the opener may yet be closed
    result = streamer.update("$$\na\n\nb\n\nc\n\nd\n$$\n\nnext");
    assert.equal(result.blocks.length, 1);
    assert.match(result.blocks[0], /math--display/);
  });

  it("renders everything again when a later definition can change finished blocks", () => {
    const streamer = markdown.streamer();
    assert.equal(streamer.update("[a]\n\nb\n\nc").blocks.length, 2);
    const result = streamer.update("[a]\n\nb\n\nc\n\n[a]: /u\n\nd");
    assert.equal(result.reset, true);
    assert.match(result.blocks[0], /<a href="\/u">a<\/a>/);
  });

  it("starts afresh when the text is not a continuation", () => {
    const streamer = markdown.streamer();
    streamer.update("one\n\ntwo\n\nthree");
    const result = streamer.update("One\n\ntwo");
    assert.equal(result.reset, true);
    assert.equal(result.blocks.join("") + result.tail.join(""), markdown.toHtml("One\n\ntwo"));
  });
});

// Answers made of random lines that reach back: setext underlines, lazy lines, math
// delimiters, numbers after formulas, definitions, fences, tables, lists, quotes.
const LINES = [
  "Plain words",
  "more *words* here",
  "",
  "",
  "===",
  "---",
  "- item",
  "  indented",
  "    code line",
  "1. first",
  "> quote",
  "```",
  "```js",
  "~~~",
  "$$",
  "$$ x^2 $$",
  "\\[",
  "\\]",
  "(1)",
  "$a$ and $$b$$",
  "[ref]: /url",
  "[Ref]: /other 'title'",
  "see [ref] and [other]",
  "[other]: https://example.org",
  "| a | b |",
  "|---|---|",
  "| 1 | 2 |",
  "# Heading",
  "* * *",
  "- [ ] task",
];

function seeded(seed) {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
}

describe("Random answers, streamed in random pieces", () => {
  it("render as a whole render does at every step", () => {
    const random = seeded(18);
    for (let answer = 0; answer < 200; answer++) {
      const lines = Array.from(
        { length: 4 + Math.floor(random() * 30) },
        () => LINES[Math.floor(random() * LINES.length)],
      );
      const text = lines.join(random() < 0.1 ? "\r\n" : "\n");
      const cuts = [];
      for (let end = 0; end < text.length;) {
        end = Math.min(text.length, end + 1 + Math.floor(random() * 12));
        cuts.push(end);
      }
      stream(text, cuts);
    }
  });
});
