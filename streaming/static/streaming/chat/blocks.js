/*
 * An answer's Markdown drawn into its bubble block by block. While it streams, the blocks
 * that are finished (incremental.js) stay in the DOM as they are, the very same nodes, and
 * only the open tail is drawn again: a frame's cost does not grow with the answer, and a
 * finished block's code is highlighted and its math typeset once. Each piece is sanitized on
 * its own (markdown.js); markdown-it's blocks are whole elements, so the pieces together are
 * what the whole answer sanitized at once is, and the bubble ends as a reload draws it.
 */
import { pageMarkdown } from "./markdown.js";

// Each content element drawn here: its streamer, the nodes of its open tail, and how many
// nodes it holds in all.
const drawn = new WeakMap();

/** Draw `text`, an answer's Markdown, into `content`, keeping what is already finished. */
export function drawMarkdown(content, text) {
  const markdown = pageMarkdown();
  let state = drawn.get(content);
  // Drawn afresh the first time, and after anything else wrote into it (a notice while an
  // answer waits for its first text, the server's stored text).
  const fresh = state === undefined || content.childNodes.length !== state.count;
  if (fresh) {
    state = { streamer: markdown.streamer(), tail: [], count: 0 };
    drawn.set(content, state);
  }
  const { reset, blocks, tail } = state.streamer.update(text);
  if (fresh || reset) {
    content.replaceChildren();
  } else {
    for (const node of state.tail) {
      node.remove();
    }
  }
  for (const html of blocks) {
    content.append(markdown.sanitize(html));
  }
  const open = markdown.sanitize(tail);
  state.tail = [...open.childNodes];
  content.append(open);
  state.count = content.childNodes.length;
}
