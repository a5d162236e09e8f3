/*
 * An answer's Markdown rendered while it streams, at a cost that does not grow with the
 * answer: the blocks that can no longer change are rendered once, and every later call
 * renders only the text after them, the tail.
 *
 * markdown-it parses block by block, and a top-level block that another one follows is
 * closed for good: a setext underline, a lazy continuation line or a list item can only
 * change the block still open at the end. So every top-level block but the last is finished,
 * and the text after the finished blocks, parsed on its own, gives the same tokens as the
 * whole text does. Three things reach further back, and each is handled here:
 *
 * - A link reference definition applies to the whole answer, also to the blocks before it.
 *   The tail is parsed knowing the definitions of the finished blocks; one it adds sends
 *   everything back to be rendered again, and no block is finished while a new definition
 *   is still in the open last block (its URL may still grow).
 * - Display math (`$$…$$`, `\[…\]`) is found by a pattern over the rest of the text, across
 *   blank lines, so a closing `$$` arriving later turns the paragraphs after an opening one
 *   into one formula; a formula followed by `(…)` becomes a numbered one. A block is not
 *   finished while an opener before its end is still unclosed, or a closed formula may yet
 *   get its number.
 * - markdown-it turns "\r\n", "\r" and NUL as it reads; the finished part always ends at the
 *   start of a block's line, so the split never falls inside one of them.
 *
 * The pure part: tests/js/incremental.test.js proves it renders exactly what markdown-it
 * renders for the whole text, for every split of many answers.
 */

// The line breaks markdown-it counts lines by (its `normalize` core rule).
const LINE_BREAK = /\r\n?|\n/g;
// A block's first line that may open display math, after quote and list markers: texmath
// tries its rule where a block starts, and one that did not match may match later.
const MATH_OPENER = /^[ \t>]*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+[ \t>]*)*(\$\$|\\\[)/;
// texmath's patterns for a display formula without a number ("dollars" and "brackets").
const MATH_PATTERNS = { $$: /\${2}([^$]*?[^\\])\${2}/y, "\\[": /\\\[([\s\S]+?)\\\]/y };
// After a closed formula: what may still make it a numbered one.
const NUMBER_AHEAD = /^\s*\(/;
// Blocks whose first line is theirs, not a place texmath tried.
const NOT_TRIED = new Set(["fence", "code_block", "math_block_eqno"]);

/**
 * A renderer of one streaming answer with markdown-it instance `md`. Its `update(text)`
 * takes the answer as it stands, and returns {reset, blocks, tail}: `reset` says the blocks
 * returned before no longer hold (the text is not a continuation of the last one, or a new
 * reference definition can change them); `blocks` is the HTML of each block finished since,
 * in order; `tail` the HTML of each top-level block of the rest. The blocks returned since
 * the last reset, followed by `tail`, are the top-level blocks of `md.render(text)`.
 */
export function createStreamer(md) {
  // The text of the finished blocks, as given, and the reference definitions in it.
  let finished = "";
  let references = {};

  function forget() {
    finished = "";
    references = {};
  }

  function update(text) {
    let reset = false;
    if (!text.startsWith(finished)) {
      forget();
      reset = true;
    }
    let rendered = renderRest(text.slice(finished.length));
    if (rendered === null) {
      forget();
      reset = true;
      rendered = renderRest(text);
    }
    return { reset, ...rendered };
  }

  // Render `source`, the text after the finished blocks, and finish the blocks that can no
  // longer change. Null when it defines a reference the finished blocks were rendered without.
  function renderRest(source) {
    const env = { references: { ...references } };
    const tokens = md.parse(source, env);
    const defined = Object.keys(env.references).length > Object.keys(references).length;
    if (defined && finished !== "") {
      return null;
    }
    const blocks = topLevelBlocks(tokens);
    const lines = lineStarts(source);
    const starts = blocks.map((block) => lines[block.line]);
    let keep = Math.max(0, blocks.length - 1);
    if (keep > 0) {
      const unsettled = unsettledMath(
        source,
        lines,
        tokens.slice(0, blocks[keep].start),
        starts[keep],
      );
      while (keep > 0 && starts[keep] > unsettled) {
        keep--;
      }
    }
    if (keep > 0 && defined && definesNew(md, source, starts[keep])) {
      keep = 0; // a definition still being written: nothing is final yet
    }
    const html = blocks.map((block) =>
      md.renderer.render(tokens.slice(block.start, block.end), md.options, env),
    );
    if (keep > 0) {
      finished += source.slice(0, starts[keep]);
      references = env.references;
    }
    return { blocks: html.slice(0, keep), tail: html.slice(keep) };
  }

  return { update };
}

// The top-level blocks of `tokens`: {start, end} (a slice of tokens) and its first line.
function topLevelBlocks(tokens) {
  const blocks = [];
  let depth = 0;
  let start = 0;
  tokens.forEach((token, index) => {
    if (depth === 0) {
      start = index;
    }
    depth += token.nesting;
    if (depth === 0) {
      blocks.push({ start, end: index + 1, line: tokens[start].map[0] });
    }
  });
  return blocks;
}

// Where each line of `source` starts, counting lines as markdown-it does.
function lineStarts(source) {
  const starts = [0];
  LINE_BREAK.lastIndex = 0;
  while (LINE_BREAK.exec(source) !== null) {
    starts.push(LINE_BREAK.lastIndex);
  }
  return starts;
}

// The offset of the first block in `tokens` (which end before `end`) that later text can
// still turn into display math or number: an opener texmath found no close for yet, or a
// formula followed by "(". Infinity when there is none.
function unsettledMath(source, lines, tokens, end) {
  for (const token of tokens) {
    if (!token.block || token.nesting < 0 || !token.map || NOT_TRIED.has(token.type)) {
      continue;
    }
    const start = lines[token.map[0]];
    const opener = MATH_OPENER.exec(source.slice(start, lines[token.map[0] + 1]));
    if (!opener) {
      continue;
    }
    if (token.type !== "math_block") {
      return start;
    }
    const pattern = MATH_PATTERNS[opener[1]];
    pattern.lastIndex = start + opener[0].length - opener[1].length;
    if (!pattern.test(source) || NUMBER_AHEAD.test(source.slice(pattern.lastIndex, end + 1))) {
      return start;
    }
  }
  return Infinity;
}

// Whether `source` from `start` on defines a link reference it does not define before.
function definesNew(md, source, start) {
  const later = definedLabels(md, source.slice(start));
  if (later.length === 0) {
    return false;
  }
  const before = new Set(definedLabels(md, source.slice(0, start)));
  return later.some((label) => !before.has(label));
}

function definedLabels(md, source) {
  const env = {};
  md.parse(source, env);
  return Object.keys(env.references || {});
}
