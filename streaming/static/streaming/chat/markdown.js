/*
 * How an assistant's answer looks: its Markdown rendered to sanitized HTML, the same way while
 * it streams and once it is stored, so a reload shows what the live page showed.
 *
 * Two walls: markdown-it runs with raw HTML off (it escapes any tag the model writes) and
 * refuses links to scripting and data URLs; DOMPurify then sanitizes what markdown-it wrote.
 * Images are never loaded (a model's answer must not make the browser fetch anything): they
 * become links with their alt text. Math is rendered by KaTeX as MathML only, which needs no
 * inline styles (the site's Content-Security-Policy forbids them) and no fonts; a table
 * column's alignment is a class (`align-right`), not the inline style markdown-it writes.
 *
 * Code blocks are highlighted by highlight.js and get a header with their language and a
 * Copy button. The button is part of the rendered HTML and one listener on the document
 * handles every Copy click, so re-rendering a streaming answer never loses or doubles one.
 *
 * The libraries come from streaming/static/streaming/vendor/ (make vendor). In the browser
 * libs.js reads them; Node's tests (tests/js/) pass them to createMarkdown() and test the
 * markdown-it layer, toHtml() and streamer(), which need no DOM.
 */
import { createStreamer } from "./incremental.js";
import { vendoredLibs } from "./libs.js";

// Deeper nesting than this is rendered as text: a bomb of nested brackets or emphasis
// stays linear instead of eating the page.
export const MAX_NESTING = 20;
// Guessing a code block's language tries every language; past this length, plain text.
export const AUTODETECT_MAX_CHARS = 4000;
const HIGHLIGHT_CACHE_SIZE = 200;
// How long a Copy button says "Copied".
const COPIED_MS = 1500;
// Schemes that run code or smuggle content in a link. Browsers ignore tabs, newlines and
// leading control characters in a URL's scheme, so those are removed before the test.
const UNSAFE_URL = /^(?:javascript|vbscript|data):/i;
// eslint-disable-next-line no-control-regex
const URL_IGNORED = /[\u0000-\u0020\u007f-\u009f]/g;
// How markdown-it aligns a table's column (`|--:|`): an inline style on each of its cells.
const ALIGN_STYLE = /^text-align:(left|center|right)$/;

/** Whether `url` may become a link's href: not a scripting or data URL. */
export function isSafeUrl(url) {
  return !UNSAFE_URL.test(String(url).replace(URL_IGNORED, ""));
}

function escapeHtml(text) {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/**
 * A renderer from the libraries `libs`: {markdownit, taskLists, texmath, katex, hljs} and,
 * in a browser, DOMPurify. Returns {toHtml, render}.
 */
export function createMarkdown(libs) {
  const md = libs.markdownit({
    html: false,
    linkify: true,
    typographer: false,
    maxNesting: MAX_NESTING,
  });
  // Tables and strikethrough are in markdown-it's default preset.
  md.validateLink = isSafeUrl;
  alignmentAsClasses(md);
  md.use(libs.taskLists, { enabled: false, label: true });
  // A task's text is its checkbox's label, so a screen reader says what is done or not. The
  // plugin ties the two by an id named after the item's line; ids are dropped by the
  // sanitizer, and without them a streaming answer's tail (whose lines count from the tail)
  // renders the same: the label holds the checkbox instead, from before it to the text's end.
  const checkbox = md.renderer.rules.taskListItemCheckbox;
  md.renderer.rules.taskListItemCheckbox = (...args) =>
    `<label>${checkbox(...args).replace(/ id="[^"]*"/, "")}`;
  md.renderer.rules.taskListItemLabel_open = () => "";
  md.use(libs.texmath, {
    engine: libs.katex,
    delimiters: ["dollars", "brackets"],
    katexOptions: { output: "mathml", throwOnError: false, trust: false, maxExpand: 1000 },
  });
  mathAsPlainElements(md);
  // A streaming answer's open tail is rendered again every frame (incremental.js), but a
  // code block in it that is already closed does not change: it is highlighted once, and
  // reused when it becomes a finished block and whenever the answer is rendered whole.
  const highlighted = new Map();
  function cachedCodeBlock(content, language) {
    const key = `${language}\u0000${content}`;
    let html = highlighted.get(key);
    if (html === undefined) {
      html = codeBlock(libs.hljs, content, language);
      if (highlighted.size >= HIGHLIGHT_CACHE_SIZE) {
        highlighted.delete(highlighted.keys().next().value); // the oldest
      }
      highlighted.set(key, html);
    }
    return html;
  }
  md.renderer.rules.fence = (tokens, idx) => {
    const token = tokens[idx];
    const language = token.info.trim().split(/\s+/)[0] || "";
    return cachedCodeBlock(token.content, language);
  };
  md.renderer.rules.code_block = (tokens, idx) => cachedCodeBlock(tokens[idx].content, "");
  md.renderer.rules.image = (tokens, idx, options, env, self) => {
    const token = tokens[idx];
    const src = token.attrGet("src") || "";
    const alt = self.renderInlineAsText(token.children || [], options, env) || src;
    return `<a class="md-image" href="${escapeHtml(src)}">${escapeHtml(alt)}</a>`;
  };

  /** The answer as HTML, from markdown-it alone: not yet sanitized. */
  function toHtml(text) {
    return md.render(text);
  }

  const purify = libs.DOMPurify;
  if (purify) {
    purify.addHook("afterSanitizeAttributes", linkPolicy);
  }

  /** The answer as a sanitized DocumentFragment (browser only). */
  function render(text) {
    return sanitize(toHtml(text));
  }

  /** HTML that markdown-it wrote, as a sanitized DocumentFragment (browser only). */
  function sanitize(html) {
    return purify.sanitize(html, {
      RETURN_DOM_FRAGMENT: true,
      USE_PROFILES: { html: true, mathMl: true },
      // Nothing from an answer loads anything: images are links already.
      FORBID_TAGS: ["img", "picture", "source", "video", "audio", "track", "style", "form"],
      // No ids: several answers on one page would repeat them, and they could clobber
      // names scripts look up.
      FORBID_ATTR: ["id", "style"],
      // KaTeX keeps the TeX source in <annotation>; DOMPurify drops the tag, and the TeX
      // must go with it rather than show as text after the formula.
      ADD_FORBID_CONTENTS: ["annotation"],
    });
  }

  /** A renderer of one streaming answer, block by block (incremental.js). */
  function streamer() {
    return createStreamer(md);
  }

  return { toHtml, render, sanitize, streamer };
}

// The site's Content-Security-Policy refuses inline styles, so markdown-it's
// style="text-align:right" would leave the column unaligned, and have the browser report a
// violation for every cell it parses, each time a streaming answer is drawn. A class of
// chat.css (`align-left`, `align-center`, `align-right`) takes its place.
function alignmentAsClasses(md) {
  md.core.ruler.push("table_alignment_classes", (state) => {
    for (const token of state.tokens) {
      const style = token.attrGet("style");
      if (style === null || (token.type !== "th_open" && token.type !== "td_open")) {
        continue;
      }
      token.attrs = token.attrs.filter(([name]) => name !== "style");
      const align = ALIGN_STYLE.exec(style);
      if (align) {
        token.attrJoin("class", `align-${align[1]}`);
      }
    }
  });
}

// texmath wraps formulas in its own <eq>/<eqn>/<section> tags; ordinary elements are
// simpler to sanitize and style.
function mathAsPlainElements(md) {
  const rules = md.renderer.rules;
  for (const name of Object.keys(rules)) {
    if (!name.startsWith("math_")) {
      continue;
    }
    const texmathRule = rules[name];
    const display = name.startsWith("math_block");
    rules[name] = (tokens, idx, ...rest) => {
      const html = texmathRule(tokens, idx, ...rest)
        .replace(/^<section[^>]*>|<\/section>$/g, "")
        .replace(/^<eqn?>|<\/eqn?>$/g, "");
      return display
        ? `<div class="math math--display">${html}</div>\n`
        : `<span class="math">${html}</span>`;
    };
  }
}

function codeBlock(hljs, content, language) {
  // The code exactly as written, without the newline before the closing fence.
  const code = content.replace(/\n$/, "");
  let html = null;
  let label = language;
  if (language && hljs.getLanguage(language)) {
    html = hljs.highlight(code, { language, ignoreIllegals: true }).value;
  } else if (!language && code.length <= AUTODETECT_MAX_CHARS) {
    const guess = hljs.highlightAuto(code);
    if (guess.language) {
      html = guess.value;
      label = guess.language;
    }
  }
  const languageClass = label ? ` language-${escapeHtml(label)}` : "";
  return (
    '<div class="code-block">' +
    '<div class="code-header">' +
    `<span class="code-language">${escapeHtml(label || "text")}</span>` +
    '<button type="button" class="button button--small code-copy">Copy</button>' +
    "</div>" +
    `<pre><code class="hljs${languageClass}">${html === null ? escapeHtml(code) : html}</code></pre>` +
    "</div>\n"
  );
}

// DOMPurify's hook for every element it keeps: links open in a new tab without handing the
// page to it, and no scripting or data URL survives in any attribute that navigates.
function linkPolicy(element) {
  for (const name of ["href", "src", "action", "formaction", "xlink:href"]) {
    const value = element.getAttribute(name);
    if (value !== null && !isSafeUrl(value)) {
      element.removeAttribute(name);
    }
  }
  if (element.tagName === "A" && element.hasAttribute("href")) {
    element.setAttribute("target", "_blank");
    element.setAttribute("rel", "noopener noreferrer");
  }
}

/**
 * Put `text` on the clipboard, and let `button` say how it went for a moment ("Copied").
 * The Clipboard API exists only in secure contexts (https, localhost); a site served over
 * plain http on a LAN address copies through a selected, hidden text area instead.
 */
export function copyText(button, text) {
  const label = button.dataset.label || button.textContent;
  button.dataset.label = label;
  const say = (word) => {
    button.textContent = word;
    clearTimeout(button.copiedTimer);
    button.copiedTimer = setTimeout(() => {
      button.textContent = label;
    }, COPIED_MS);
  };
  const clipboard = navigator.clipboard;
  const written =
    clipboard && isSecureContext
      ? clipboard.writeText(text)
      : Promise.resolve().then(() => copyBySelection(text));
  written.then(
    () => say("Copied"),
    () => say("Copy failed"),
  );
}

function copyBySelection(text) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "visually-hidden";
  document.body.append(area);
  area.select();
  const copied = document.execCommand("copy");
  area.remove();
  if (!copied) {
    throw new Error("copy refused");
  }
}

// One listener for every code block's Copy button, present and future.
export function listenForCopy(doc) {
  doc.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest(".code-copy");
    if (button) {
      copyText(button, button.closest(".code-block").querySelector("code").textContent);
    }
  });
}

let pageRenderer = null;

/** The page's one renderer, made from the vendored libraries when first asked for. */
export function pageMarkdown() {
  pageRenderer ??= createMarkdown(vendoredLibs());
  return pageRenderer;
}

/** An answer's Markdown as a sanitized DocumentFragment, by the page's one renderer. */
export function renderMarkdown(text) {
  return pageMarkdown().render(text);
}
