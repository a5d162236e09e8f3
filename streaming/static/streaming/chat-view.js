/*
 * The chat page's message list: how a message looks as a bubble, where the Retry button goes,
 * and scrolling that follows new text only when the reader is at the bottom. No state and no socket: chat.js owns the
 * messages and calls these.
 *
 * A user's text is only ever set with textContent, never parsed as HTML. An assistant's answer
 * is Markdown, rendered and sanitized by chat-markdown.js, the same while it streams and once
 * it is stored.
 */
(function (global) {
  "use strict";

  // Closer to the bottom than this counts as "at the bottom" (sub-pixel zoom, rounding).
  const STICK_THRESHOLD_PX = 48;

  const ROLE_LABELS = { user: "You", assistant: "Assistant", system: "System" };
  // Keep in step with the labels in conversation_detail.html.
  const STATUS_LABELS = {
    sending: "Sending…",
    pending: "Waiting…",
    cancelled: "Stopped",
    interrupted: "Interrupted",
    error: "Failed",
  };

  /** Whether a message's answer is still coming. */
  function isUnderway(entry) {
    return entry.status === "streaming" || entry.status === "pending";
  }

  function node(tag, className, text) {
    const element = document.createElement(tag);
    if (className) {
      element.className = className;
    }
    if (text !== undefined) {
      element.textContent = text;
    }
    return element;
  }

  function typingIndicator() {
    const typing = node("div", "typing");
    typing.setAttribute("role", "img");
    typing.setAttribute("aria-label", "The assistant is typing");
    typing.append(node("span"), node("span"), node("span"));
    return typing;
  }

  // An answer's Markdown, rendered; anything else as the plain text it is.
  function fillContent(content, entry) {
    if (entry.role === "assistant") {
      content.className = "message-content message-content--markdown";
      content.replaceChildren(global.ChatMarkdown.renderMarkdown(entry.content));
    } else {
      content.textContent = entry.content;
    }
  }

  // Same markup as the loop in conversation_detail.html.
  function buildBubble(entry) {
    const li = node("li", `message message--${entry.role} message--${entry.status}`);
    if (entry.id) {
      li.dataset.messageId = entry.id;
    }
    if (entry.clientId) {
      li.dataset.clientId = entry.clientId;
    }
    li.dataset.role = entry.role;
    li.dataset.status = entry.status;

    const meta = node("div", "message-meta");
    meta.append(node("span", "message-role", ROLE_LABELS[entry.role] || entry.role));
    if (entry.createdAt) {
      // Known once the server saved it: not yet for a message still being sent.
      meta.append(global.ChatComfort.timeElement(entry.createdAt));
    }
    const label = STATUS_LABELS[entry.status];
    if (label) {
      meta.append(node("span", `message-status message-status--${entry.status}`, label));
    }
    li.append(meta);
    const content = node("div", "message-content");
    fillContent(content, entry);
    li.append(content);
    if (entry.role === "assistant" && isUnderway(entry)) {
      li.append(typingIndicator());
    }
    if (entry.status === "error") {
      li.append(node("div", "message-error", entry.error || "The answer failed."));
    } else if (entry.error) {
      // Interrupted by the server, or cut at the site's length limit: neither the model's
      // fault nor the user's, so a notice, not an error.
      li.append(node("div", "message-notice", entry.error));
    }
    if (entry.usage && entry.usage.total_tokens) {
      li.append(node("div", "message-usage", `${entry.usage.total_tokens} tokens`));
    }
    return li;
  }

  /** The view of one message list: `els` has `list`, `empty` and `scroller`. */
  function createView(els) {
    function render(entry) {
      cancelFrame(entry);
      const fresh = buildBubble(entry);
      if (entry.el && entry.el.parentNode) {
        entry.el.replaceWith(fresh);
      } else {
        els.list.append(fresh);
      }
      entry.el = fresh;
      els.empty.hidden = true;
    }

    // Streaming changes only the text: rebuilding the bubble for every delta would be wasteful.
    // An answer is rendered again whole, at most once a frame however many deltas arrive.
    function renderContent(entry) {
      if (entry.role !== "assistant") {
        showContent(entry);
      } else if (!entry.frame) {
        entry.frame = global.requestAnimationFrame(() => {
          entry.frame = null;
          keepingScroll(() => showContent(entry));
        });
      }
    }

    function cancelFrame(entry) {
      if (entry.frame) {
        global.cancelAnimationFrame(entry.frame);
        entry.frame = null;
      }
    }

    /** Draw `entry`'s content into its bubble now, e.g. into one the server rendered. */
    function showContent(entry) {
      const content = entry.el && entry.el.querySelector(".message-content");
      if (content) {
        fillContent(content, entry);
      } else {
        render(entry);
      }
    }

    function remove(entry, nothingLeft) {
      cancelFrame(entry);
      if (entry.el) {
        entry.el.remove();
      }
      els.empty.hidden = !nothingLeft;
    }

    // Put the bubbles of `entries` first, in that order, moving only those out of place.
    function reorder(entries) {
      let expected = els.list.firstElementChild;
      for (const entry of entries) {
        if (entry.el === expected) {
          expected = expected.nextElementSibling;
        } else {
          els.list.insertBefore(entry.el, expected);
        }
      }
    }

    // At most one Retry button in the list: on `entry`'s bubble, or nowhere when it is null.
    function showRetry(entry, disabled, onRetry) {
      for (const actions of els.list.querySelectorAll(".message-actions")) {
        if (!entry || actions.parentNode !== entry.el) {
          actions.remove();
        }
      }
      if (!entry) {
        return;
      }
      let button = entry.el.querySelector(".message-retry");
      if (!button) {
        const actions = node("div", "message-actions");
        button = node("button", "button button--small message-retry", "Retry");
        button.type = "button";
        button.addEventListener("click", () => onRetry(entry.id));
        actions.append(button);
        entry.el.append(actions);
      }
      button.disabled = disabled;
    }

    function isAtBottom() {
      const s = els.scroller;
      return s.scrollHeight - s.scrollTop - s.clientHeight <= STICK_THRESHOLD_PX;
    }

    function scrollToBottom() {
      els.scroller.scrollTop = els.scroller.scrollHeight;
    }

    // Run a change to the list; follow it down only if the reader was already at the bottom.
    function keepingScroll(change) {
      const stick = isAtBottom();
      change();
      if (stick) {
        scrollToBottom();
      }
    }

    return { render, renderContent, showContent, remove, reorder, showRetry, isAtBottom, scrollToBottom, keepingScroll };
  }

  global.ChatView = { createView, isUnderway };
})(window);
