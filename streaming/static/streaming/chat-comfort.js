/*
 * Reading comfort on the chat page: what helps a person read and act on a conversation, but
 * takes no part in keeping its text exact.
 *
 * - each message's time, relative ("3 min ago"), with the exact local time on hover, kept
 *   current once a minute;
 * - the wait before the server retries the provider, said in words and counting down
 *   (the `retrying` frame, docs/protocol.md), in the answer's place until its first text.
 *
 * chat.js calls attach() once and tells it when a `retrying` frame came. The pure helpers
 * are exported for Node's tests (tests/js/chat-comfort.test.js).
 */
(function (global) {
  "use strict";

  const MINUTE_MS = 60 * 1000;
  const HOUR_MS = 60 * MINUTE_MS;
  // Relative times are drawn again this often.
  const REFRESH_MS = MINUTE_MS;

  // --- pure helpers -----------------------------------------------------------------------

  function startOfDay(date) {
    return new Date(date.getFullYear(), date.getMonth(), date.getDate());
  }

  /**
   * When `date` was, as seen at `now` (both Dates, in local time): "just now", "3 min ago",
   * "2 h ago" (earlier today), "yesterday", or the date ("14 Mar", with the year when it is
   * not this year's) in `locale` (the browser's when undefined).
   */
  function relativeTime(date, now, locale) {
    const ago = now - date;
    if (ago < MINUTE_MS) {
      return "just now"; // a server clock a little ahead of this one's too
    }
    if (ago < HOUR_MS) {
      return `${Math.floor(ago / MINUTE_MS)} min ago`;
    }
    const today = startOfDay(now);
    if (date >= today) {
      return `${Math.floor(ago / HOUR_MS)} h ago`;
    }
    const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
    if (date >= yesterday) {
      return "yesterday";
    }
    const options = { day: "numeric", month: "short" };
    if (date.getFullYear() !== now.getFullYear()) {
      options.year = "numeric";
    }
    return date.toLocaleDateString(locale, options);
  }

  /** The exact local date and time of `date`, to the second, in `locale`. */
  function exactTime(date, locale) {
    return date.toLocaleString(locale, { dateStyle: "full", timeStyle: "medium" });
  }

  /** Whole seconds left until `deadline` at `now` (milliseconds), never below 0. */
  function secondsLeft(deadline, now) {
    return Math.max(0, Math.ceil((deadline - now) / 1000));
  }

  /** The wait before a retry in words: "Rate limited by the provider, retrying in 12 s". */
  function waitNotice(reason, seconds) {
    return seconds > 0 ? `${reason}, retrying in ${seconds} s` : `${reason}, retrying now…`;
  }

  // --- the page ---------------------------------------------------------------------------

  function showTime(element, now) {
    const date = new Date(element.dateTime);
    if (Number.isNaN(date.getTime())) {
      return;
    }
    element.textContent = relativeTime(date, now);
    element.title = exactTime(date);
  }

  /** A message's time, `iso` as the server sent it: `<time datetime title>3 min ago</time>`. */
  function timeElement(iso) {
    const element = global.document.createElement("time");
    element.className = "message-time";
    element.dateTime = iso;
    showTime(element, new Date());
    return element;
  }

  /**
   * Wire the page: `els` are chat.js's elements (its message list). Returns what chat.js
   * tells: {retrying(entry, frame)}.
   */
  function attach(els) {
    const doc = global.document;
    const { isUnderway } = global.ChatView;

    // --- times ---
    function refreshTimes() {
      const now = new Date();
      for (const element of els.list.querySelectorAll("time.message-time")) {
        showTime(element, now);
      }
    }
    refreshTimes(); // the server wrote its own clock's time; this is the reader's
    global.setInterval(refreshTimes, REFRESH_MS);
    // A hidden tab's timers are slowed down: catch up when it is seen again.
    doc.addEventListener("visibilitychange", () => {
      if (doc.visibilityState === "visible") {
        refreshTimes();
      }
    });

    // --- the wait before a retry ---
    function retrying(entry, frame) {
      // Only for an answer still waiting for its first text; anything else is stale.
      if (!entry || !entry.el || !isUnderway(entry) || entry.content !== "") {
        return;
      }
      const content = entry.el.querySelector(".message-content");
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
          global.setTimeout(tick, deadline - Date.now() - (left - 1) * 1000);
        }
      })();
    }

    return { retrying };
  }

  const api = { relativeTime, exactTime, secondsLeft, waitNotice };
  if (typeof module !== "undefined" && module.exports) {
    module.exports = api;
  } else {
    api.timeElement = timeElement;
    api.attach = attach;
    global.ChatComfort = api;
  }
})(typeof window !== "undefined" ? window : globalThis);
