/*
 * The chat page's message list: how a message looks as a bubble, its actions (copy, edit,
 * regenerate, versions), editing in place, and scrolling that follows new text only when the
 * reader is at the bottom. No state and no socket: chat.js owns the messages and calls these.
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
    if (entry.role === "assistant" && entry.model) {
      // Who produced the answer, as it recorded when it started.
      const source = entry.providerName ? `${entry.model} · ${entry.providerName}` : entry.model;
      li.append(node("div", "message-source", source));
    }
    if (entry.usage && entry.usage.total_tokens) {
      // The prompt (everything sent for this answer) apart from the answer's own length.
      const { prompt_tokens: sent, completion_tokens: written } = entry.usage;
      const usage = node("div", "message-usage", `${sent} tokens in · ${written} out`);
      usage.title = `${sent} tokens sent to the model for this answer, ${written} in the answer`;
      li.append(usage);
    }
    return li;
  }

  /** The view of one message list: `els` has `list`, `empty` and `scroller`. */
  function createView(els) {
    // Build `entry`'s bubble afresh; one on the page is replaced, a new one waits for place().
    function render(entry) {
      cancelFrame(entry);
      const fresh = buildBubble(entry);
      if (entry.el && entry.el.parentNode) {
        entry.el.replaceWith(fresh);
      }
      entry.el = fresh;
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

    function remove(entry) {
      cancelFrame(entry);
      if (entry.el) {
        entry.el.remove();
      }
    }

    // Show exactly the bubbles of `entries`, in that order (a branch of the conversation),
    // moving only those out of place; bubbles of other branches leave the list.
    function place(entries) {
      let expected = els.list.firstElementChild;
      for (const entry of entries) {
        if (entry.el === expected) {
          expected = expected.nextElementSibling;
        } else {
          els.list.insertBefore(entry.el, expected);
        }
      }
      while (expected) {
        const next = expected.nextElementSibling;
        expected.remove();
        expected = next;
      }
      els.empty.hidden = entries.length > 0;
    }

    /**
     * The row of actions under `entry`'s bubble, drawn afresh from `state`:
     * {version, versions} (1-based; a switcher when there are several), `retry` (the answer
     * failed, stopped or was cut off: Regenerate is called Retry and stays in view),
     * `disabled` (nothing can be asked now: an answer streams, or the page is offline).
     * The buttons carry `data-action`; chat.js listens on the list.
     */
    function showActions(entry, state) {
      let bar = entry.el.querySelector(":scope > .message-actions");
      if (!bar) {
        bar = node("div", "message-actions");
        entry.el.append(bar);
      }
      const saved = entry.id !== null && !isUnderway(entry);
      // Drawn again only when its buttons change, not when they are only enabled or disabled:
      // the keyboard's place and a Copy saying "Copied" stay as they are.
      const shape = JSON.stringify([state.version, state.versions, state.retry, entry.role]);
      if (bar.dataset.shape !== shape) {
        const focused = bar.contains(global.document.activeElement)
          ? global.document.activeElement.dataset.action
          : null;
        bar.replaceChildren(...actionButtons(entry, state));
        bar.dataset.shape = shape;
        const again = focused && bar.querySelector(`[data-action="${focused}"]`);
        if (again) {
          again.focus();
        }
      }
      const off = {
        previous: state.disabled || state.version <= 1,
        next: state.disabled || state.version >= state.versions,
        copy: !saved,
        edit: state.disabled || !saved,
        regenerate: state.disabled || !saved,
      };
      for (const button of bar.querySelectorAll("button[data-action]")) {
        button.disabled = off[button.dataset.action];
      }
      // Pinned in view: a failed answer's Retry, and the versions of a message.
      bar.classList.toggle("is-pinned", state.retry || state.versions > 1);
    }

    function actionButtons(entry, state) {
      const buttons = [];
      if (state.versions > 1) {
        const switcher = node("span", "message-versions");
        switcher.append(
          actionButton("previous", "‹", "Previous version"),
          node("span", "message-version", `${state.version} / ${state.versions}`),
          actionButton("next", "›", "Next version"),
        );
        buttons.push(switcher);
      }
      buttons.push(actionButton("copy", "Copy", `Copy this ${entry.role === "user" ? "message" : "answer"}`));
      if (entry.role === "user") {
        buttons.push(actionButton("edit", "Edit", "Edit this message"));
      } else if (entry.role === "assistant") {
        const label = state.retry ? "Retry" : "Regenerate";
        const button = actionButton("regenerate", label, `${label} this answer`);
        if (state.retry) {
          button.classList.add("message-retry");
        }
        buttons.push(button);
      }
      return buttons;
    }

    function actionButton(action, text, label) {
      const button = node("button", "message-action", text);
      button.type = "button";
      button.dataset.action = action;
      if (label !== text) {
        button.setAttribute("aria-label", label);
        button.title = label;
      }
      return button;
    }

    /**
     * Edit a user message in place: `text` in a text area with Send and Cancel. Enter sends
     * (Shift+Enter adds a line), Esc cancels. `onSend(text)` returns true when the text was
     * taken (the editor closes); `onClose(sent)` is called when it closes either way. Returns
     * {close(), text()}: a way to close it, and the text as it stands.
     */
    function openEditor(entry, text, onSend, onClose) {
      const content = entry.el.querySelector(".message-content");
      const form = node("form", "message-editor");
      const area = node("textarea", "message-editor-input");
      area.value = text;
      area.rows = Math.min(12, text.split("\n").length + 1);
      area.setAttribute("aria-label", "Edit your message");
      const row = node("div", "message-editor-actions");
      const cancel = node("button", "button button--small", "Cancel");
      cancel.type = "button";
      const send = node("button", "button button--primary button--small", "Send");
      send.type = "submit";
      row.append(cancel, send);
      form.append(area, row);
      content.hidden = true;
      entry.el.classList.add("is-editing");
      content.after(form);
      let closed = false;
      const close = (sent) => {
        if (closed) {
          return;
        }
        closed = true;
        form.remove();
        content.hidden = false;
        entry.el.classList.remove("is-editing");
        onClose(sent === true);
      };
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        if (onSend(area.value)) {
          close(true);
        }
      });
      cancel.addEventListener("click", () => close(false));
      area.addEventListener("keydown", (event) => {
        if (event.isComposing || event.keyCode === 229) {
          return;
        }
        if (event.key === "Escape") {
          event.stopPropagation(); // Esc here cancels the edit, not the answer
          close(false);
        } else if (event.key === "Enter" && !event.shiftKey) {
          event.preventDefault();
          form.requestSubmit();
        }
      });
      area.focus();
      area.setSelectionRange(area.value.length, area.value.length);
      return { close, text: () => area.value };
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

    return {
      render, renderContent, showContent, remove, place, showActions, openEditor, isAtBottom,
      scrollToBottom, keepingScroll,
    };
  }

  global.ChatView = { createView, isUnderway };
})(window);
