/*
 * An answer's Markdown drawn into its bubble block by block. While it streams, the blocks
 * that are finished (incremental.js) stay in the DOM as they are, the very same nodes, and
 * only the open tail is drawn again: a frame's cost does not grow with the answer, and a
 * finished block's code is highlighted and its math typeset once. Each piece is sanitized on
 * its own (markdown.js); markdown-it's blocks are whole elements, so the pieces together are
 * what the whole answer sanitized at once is, and the bubble ends as a reload draws it.
 */
import { pageMarkdown } from "./markdown.js";

// An answer's top-level blocks go into plain <div class="markdown-blocks">, this many in
// each, by their order: the browser's own layout and paint walk a content's children every
// frame, and a long answer of thousands of blocks would make that walk grow with it, while a
// group with nothing new is passed over whole. The groups depend only on the blocks, so an
// answer drawn at once (a reload) is grouped exactly as it was while it streamed.
export const BLOCKS_PER_GROUP = 32;

// Each content element drawn here: its streamer, how many finished blocks it holds, the
// nodes drawn for the open tail (blocks, and the groups made for them), and how many nodes
// it holds in all.
const drawn = new WeakMap();

/** Draw `text`, an answer's Markdown, into `content`, keeping what is already finished. */
export function drawMarkdown(content, text) {
  const markdown = pageMarkdown();
  let state = drawn.get(content);
  // Drawn afresh the first time, and after anything else wrote into it (a notice while an
  // answer waits for its first text, the server's stored text).
  const fresh = state === undefined || content.childNodes.length !== state.count;
  if (fresh) {
    state = { streamer: markdown.streamer(), finished: 0, tail: [], count: 0 };
    drawn.set(content, state);
  }
  const { reset, blocks, tail } = state.streamer.update(text);
  if (fresh || reset) {
    content.replaceChildren();
    state.finished = 0;
  } else {
    for (const node of state.tail) {
      node.remove();
    }
  }
  for (const html of blocks) {
    place(content, state.finished, markdown.sanitize(html));
    state.finished++;
  }
  state.tail = [];
  tail.forEach((html, index) => {
    const fragment = markdown.sanitize(html);
    state.tail.push(...fragment.childNodes);
    const group = place(content, state.finished + index, fragment);
    if (group) {
      state.tail.push(group);
    }
  });
  state.count = content.childNodes.length;
}

// Put block number `index` into its group, the last one in `content`; returns the group
// when it had to be made.
function place(content, index, fragment) {
  if (index % BLOCKS_PER_GROUP === 0) {
    const group = document.createElement("div");
    group.className = "markdown-blocks";
    group.append(fragment);
    content.append(group);
    return group;
  }
  content.lastChild.append(fragment);
  return null;
}
