/*
 * Reading comfort on the chat page: what helps a person read and act on a conversation, but
 * takes no part in keeping its text exact.
 *
 * - a "Jump to latest" button while the reader is scrolled up and an answer streams, or new
 *   content came in below, and always while the page does not hold the end (it opened at a
 *   message), saying so when something new came past what it holds;
 * - each message's time (times.js) kept current once a minute;
 * - the wait before the server retries the provider, said in words and counting down
 *   (the `retrying` frame, docs/protocol.md), in the answer's place until its first text;
 * - the Retry button scrolled into view when an answer fails;
 * - focus back in the composer after Send, Stop or Retry;
 * - a polite live region that reads each answer once it is finished, not every token.
 *
 * main.js calls attach() once, and the page tells it three things: a `retrying` frame came,
 * an answer it saw underway ended (`done`), the page changed (`update`). The rest it finds on
 * the page. The pure helpers are tested in Node (tests/js/comfort.test.js).
 */
import { renderMarkdown } from "./markdown.js";
import { Status } from "./protocol.js";
import { isUnderway } from "./store.js";
import { showTimes } from "./times.js";

// Relative times are drawn again this often.
const REFRESH_MS = 60 * 1000;
// The most a finished answer's announcement reads: the start of a long answer, not all of it.
export const ANNOUNCE_MAX_CHARS = 1000;
// The most of an answer's Markdown rendered for its announcement: far more than the text
// read needs, markup and all, and a fixed cost however long the answer (rendering and
// sanitizing a 100,000-character answer whole took 300 ms of one task).
export const ANNOUNCE_SOURCE_CHARS = 8 * ANNOUNCE_MAX_CHARS;
// Said after an answer's text when it did not end as the model meant it to.
const ENDINGS = {
  cancelled: "The answer was stopped.",
  interrupted: "The answer was interrupted.",
  error: "The answer failed.",
};
// Endings that are not the reader's own doing: their Retry button is brought into view.
const FAILED = new Set([Status.ERROR, Status.INTERRUPTED]);
// Elements after which a reader would pause: their text is kept apart from the next.
const BLOCKS = new Set([
  "p",
  "div",
  "li",
  "ul",
  "ol",
  "h1",
  "h2",
  "h3",
  "h4",
  "h5",
  "h6",
  "pre",
  "blockquote",
  "table",
  "tr",
  "th",
  "td",
  "br",
  "hr",
]);

// --- pure helpers -----------------------------------------------------------------------

/** Whole seconds left until `deadline` at `now` (milliseconds), never below 0. */
export function secondsLeft(deadline, now) {
  return Math.max(0, Math.ceil((deadline - now) / 1000));
}

/** The wait before a retry in words: "Rate limited by the provider, retrying in 12 s". */
export function waitNotice(reason, seconds) {
  return seconds > 0 ? `${reason}, retrying in ${seconds} s` : `${reason}, retrying now…`;
}

/**
 * `text` fit to be read aloud: whitespace made single spaces, and cut to `limit`
 * characters at most (at a word where one is near, with "…").
 */
export function announcementText(text, limit = ANNOUNCE_MAX_CHARS) {
  const plain = text.replace(/\s+/g, " ").trim();
  if (plain.length <= limit) {
    return plain;
  }
  let cut = plain.slice(0, limit - 1);
  const space = cut.lastIndexOf(" ");
  if (space >= limit * 0.8) {
    cut = cut.slice(0, space);
  }
  return `${cut.trimEnd()}…`;
}

/**
 * The start of `markdown` worth rendering to announce it: at most `limit` characters, cut
 * at a line's end where one is near so that a block is not split mid-line; `cut` says
 * whether anything was left out.
 */
export function announcedSource(markdown, limit = ANNOUNCE_SOURCE_CHARS) {
  if (markdown.length <= limit) {
    return { source: markdown, cut: false };
  }
  const line = markdown.lastIndexOf("\n", limit);
  return { source: markdown.slice(0, line >= limit / 2 ? line : limit), cut: true };
}

// --- the page ---------------------------------------------------------------------------

/** The text a reader takes from rendered `root`: blocks kept apart, code headers left out. */
function readableText(root) {
  const parts = [];
  (function walk(parent) {
    for (const child of parent.childNodes) {
      if (child.nodeType === 3) {
        parts.push(child.data);
      } else if (child.nodeType === 1 && !child.classList.contains("code-header")) {
        // A code block's language and its Copy button are the page's, not the answer's.
        const block = BLOCKS.has(child.localName);
        parts.push(block ? " " : "");
        walk(child);
        parts.push(block ? " " : "");
      }
    }
  })(root);
  return parts.join("");
}

/**
 * Wire the page: `els` are the chat's elements (list, scroller, form, input, stop), `view`
 * its view (view.js), `end` how the page stands to the conversation's end:
 * {holdsEnd(), newsBelow(), jump()} (windowing.js). Returns what the page tells it:
 * {retrying(entry, frame), answerEnded(entry, frame), update()}.
 */
export function attach(els, view, end) {
  const doc = document;
  const jump = doc.getElementById("jump-latest");
  const news = doc.getElementById("jump-latest-news");
  const announcer = doc.getElementById("chat-announcer");
  // Endings already announced, by id and seq: a `done` may come twice (a sync of an ended
  // answer).
  const announced = new Set();

  // --- times ---
  function refreshTimes() {
    showTimes(els.list, "time.message-time");
  }
  refreshTimes(); // the server wrote its own clock's time; this is the reader's
  setInterval(refreshTimes, REFRESH_MS);
  // A hidden tab's timers are slowed down: catch up when it is seen again.
  doc.addEventListener("visibilitychange", () => {
    if (doc.visibilityState === "visible") {
      refreshTimes();
    }
  });

  // --- jump to latest ---
  let unseen = false; // the list grew while the reader was scrolled up
  let listHeight = els.list.offsetHeight;
  function answerUnderway() {
    return (
      els.list.querySelector(
        `.message--assistant[data-status="${Status.STREAMING}"], .message--assistant[data-status="${Status.PENDING}"]`,
      ) !== null
    );
  }
  function updateJump() {
    const away = !view.isAtBottom();
    if (!away) {
      unseen = false;
    }
    const short = !end.holdsEnd(); // the end is past what the page holds
    jump.hidden = !(short || (away && (unseen || answerUnderway())));
    // Its words only while it says so: the button's name is what it reads.
    news.textContent = short && end.newsBelow() ? " · new messages" : "";
  }
  // New content is always at the bottom: the list growing is new content below.
  new ResizeObserver(() => {
    const height = els.list.offsetHeight;
    if (height > listHeight && !view.isAtBottom()) {
      unseen = true;
    }
    listHeight = height;
    updateJump();
  }).observe(els.list);
  new ResizeObserver(updateJump).observe(els.scroller);
  els.scroller.addEventListener("scroll", updateJump, { passive: true });
  // A bubble added or drawn again (an answer starts or ends) may leave the height as it was.
  new MutationObserver(updateJump).observe(els.list, { childList: true });
  jump.addEventListener("click", () => {
    if (end.holdsEnd()) {
      view.scrollToBottom();
    } else {
      end.jump(); // a snapshot of the end, which brings the reader down when it comes
    }
    updateJump();
    // The button is gone; the composer is where the reader goes on from.
    els.input.focus({ preventScroll: true });
  });

  // --- focus back in the composer after Send, Stop, Retry (Regenerate) or Continue ---
  function focusComposer() {
    els.input.focus({ preventScroll: true });
  }
  els.form.addEventListener("submit", focusComposer);
  els.stop.addEventListener("click", focusComposer);
  els.list.addEventListener("click", (event) => {
    const starts = '[data-action="regenerate"], [data-action="continue"]';
    if (event.target.closest && event.target.closest(starts)) {
      focusComposer();
    }
  });
  doc.addEventListener("keydown", (event) => {
    // Esc is Stop's key (composer.js): while Stop is offered, it stops, from anywhere.
    if (event.key === "Escape" && !event.isComposing && !els.stop.hidden) {
      focusComposer();
    }
  });

  // --- the wait before a retry ---
  function retrying(entry, frame) {
    // Only for an answer still waiting for its first text; anything else is stale.
    const bubble = view.bubble(entry);
    if (!bubble || !isUnderway(entry) || entry.content !== "") {
      return;
    }
    const content = bubble.querySelector(".message-content");
    if (!content) {
      return;
    }
    // It stands in the answer's place: the first text drawn there (a `delta`) or the
    // bubble drawn again (`done`, a snapshot) takes it away, so nothing has to.
    const notice = doc.createElement("p");
    notice.className = "message-wait";
    content.replaceChildren(notice);
    const deadline = Date.now() + Math.max(0, Number(frame.delay) || 0) * 1000;
    const reason = String(frame.reason || "The provider failed");
    (function tick() {
      if (!notice.isConnected) {
        return;
      }
      const left = secondsLeft(deadline, Date.now());
      notice.textContent = waitNotice(reason, left);
      if (left > 0) {
        // Again when the number shown changes.
        setTimeout(tick, deadline - Date.now() - (left - 1) * 1000);
      }
    })();
  }

  // --- an answer ended (one this page saw underway: handlers.js tells only those) ---
  function answerEnded(entry, frame) {
    const message = frame.message || {};
    // Once per ending: a continued answer ends again, at a later seq.
    const ending = `${frame.message_id}:${frame.seq}`;
    if (announced.has(ending)) {
      return;
    }
    announced.add(ending);
    announce(message);
    if (FAILED.has(message.status)) {
      // The page adds the Retry button once this frame is handled: look for it then.
      queueMicrotask(() => {
        const retry = view.bubble(entry)?.querySelector(".message-retry");
        if (retry) {
          retry.scrollIntoView({ block: "nearest" });
        }
      });
    }
  }

  function announce(message) {
    const { source, cut } = announcedSource(message.content || "");
    let said = announcementText(readableText(renderMarkdown(source)));
    if (cut && said && !said.endsWith("…")) {
      said += "…";
    }
    const parts = [said];
    if (ENDINGS[message.status]) {
      parts.push(ENDINGS[message.status]);
    }
    if (message.error) {
      parts.push(announcementText(message.error));
    }
    const text = parts.filter(Boolean).join(" ");
    if (text) {
      announcer.textContent = text;
    }
  }

  updateJump();
  return { retrying, answerEnded, update: updateJump };
}
