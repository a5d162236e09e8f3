/*
 * The chat page's message list: how a message looks as a bubble, its actions (copy, edit,
 * regenerate, versions), editing in place, and scrolling that follows new text only when the
 * reader is at the bottom. It draws messages (store.js's entries) and keeps each one's
 * bubble; what is shown is decided elsewhere (page.js).
 *
 * A user's text is only ever set with textContent, never parsed as HTML. An assistant's answer
 * is Markdown, rendered and sanitized by markdown.js, the same while it streams and once it
 * is stored; blocks.js draws it, the finished blocks once.
 */
import { drawMarkdown } from "./blocks.js";
import { node } from "./dom.js";
import { messageFiles } from "./files.js";
import { Role, Status } from "./protocol.js";
import { createScrolling } from "./scrolling.js";
import { isUnderway } from "./store.js";
import { timeElement } from "./times.js";

const ROLE_LABELS = { user: "You", assistant: "Assistant", system: "System" };
// Keep in step with the labels in conversation_detail.html.
const STATUS_LABELS = {
  sending: "Sending…",
  pending: "Waiting…",
  cancelled: "Stopped",
  interrupted: "Interrupted",
  error: "Failed",
};

function typingIndicator() {
  const typing = node("div", "typing");
  typing.setAttribute("role", "img");
  typing.setAttribute("aria-label", "The assistant is typing");
  typing.append(node("span"), node("span"), node("span"));
  return typing;
}

// An answer's Markdown, rendered; anything else as the plain text it is.
function fillContent(content, entry) {
  if (entry.role === Role.ASSISTANT) {
    content.className = "message-content message-content--markdown";
    drawMarkdown(content, entry.content);
  } else {
    content.textContent = entry.content;
  }
}

// Same markup as the loop in conversation_detail.html, around `content`, drawn already.
function buildBubble(entry, content) {
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
    meta.append(timeElement(entry.createdAt));
  }
  const label = STATUS_LABELS[entry.status];
  if (label) {
    meta.append(node("span", `message-status message-status--${entry.status}`, label));
  }
  li.append(meta);
  li.append(content);
  const files = messageFiles(entry.attachments);
  if (files) {
    li.append(files); // each version shows its own, as its message carries them
  }
  if (entry.role === Role.ASSISTANT && isUnderway(entry)) {
    li.append(typingIndicator());
  }
  if (entry.status === Status.ERROR) {
    li.append(node("div", "message-error", entry.error || "The answer failed."));
  } else if (entry.error) {
    // Interrupted by the server, or cut at the site's length limit: neither the model's
    // fault nor the user's, so a notice, not an error.
    li.append(node("div", "message-notice", entry.error));
  }
  if (entry.role === Role.ASSISTANT && entry.model) {
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
export function createView(els) {
  const { isAtBottom, scrollToBottom, keepingScroll, keepingPlace, topMessageId } =
    createScrolling(els);
  // Each message's bubble, and the animation frame its text waits for while it streams.
  const bubbles = new WeakMap();
  const frames = new WeakMap();

  /** `entry`'s bubble, drawn or adopted; undefined before either. */
  function bubble(entry) {
    return bubbles.get(entry);
  }

  /** Take `element`, a bubble the server rendered, as `entry`'s rather than draw it again;
   * its files are drawn here (the server's markup has none). */
  function adopt(entry, element) {
    bubbles.set(entry, element);
    const files = messageFiles(entry.attachments);
    if (files) {
      element.querySelector(".message-content").after(files);
    }
  }

  // Build `entry`'s bubble afresh; one on the page is replaced, a new one waits for place().
  function render(entry) {
    cancelFrame(entry);
    const old = bubbles.get(entry);
    const kept = entry.role === Role.ASSISTANT && old?.querySelector(":scope > .message-content");
    if (kept) {
      redrawAround(old, kept, entry);
      return;
    }
    const content = node("div", "message-content");
    fillContent(content, entry);
    const fresh = buildBubble(entry, content);
    if (old && old.parentNode) {
      old.replaceWith(fresh);
    }
    bubbles.set(entry, fresh);
  }

  // An answer's bubble drawn again keeps its element and its content element, which stay on
  // the page with the blocks drawn in them (blocks.js): everything else is drawn afresh
  // around them. Taking a long answer off the page and back would cost a whole new layout.
  function redrawAround(element, content, entry) {
    fillContent(content, entry);
    const placeholder = node("div");
    const fresh = buildBubble(entry, placeholder);
    for (const name of element.getAttributeNames()) {
      element.removeAttribute(name);
    }
    for (const name of fresh.getAttributeNames()) {
      element.setAttribute(name, fresh.getAttribute(name));
    }
    for (const child of [...element.childNodes]) {
      if (child !== content) {
        child.remove();
      }
    }
    const after = [...fresh.childNodes];
    const before = after.splice(0, after.indexOf(placeholder) + 1);
    before.pop();
    content.before(...before);
    content.after(...after);
  }

  // Streaming changes only the text: rebuilding the bubble for every delta would be wasteful.
  // An answer's text is drawn at most once a frame however many deltas arrive, and then only
  // its open tail (blocks.js).
  function renderContent(entry) {
    if (entry.role !== Role.ASSISTANT) {
      showContent(entry);
    } else if (!frames.has(entry)) {
      const frame = requestAnimationFrame(() => {
        frames.delete(entry);
        keepingScroll(() => showContent(entry));
      });
      frames.set(entry, frame);
    }
  }

  function cancelFrame(entry) {
    if (frames.has(entry)) {
      cancelAnimationFrame(frames.get(entry));
      frames.delete(entry);
    }
  }

  /** Draw `entry`'s content into its bubble now, e.g. into one the server rendered. */
  function showContent(entry) {
    const content = bubbles.get(entry)?.querySelector(".message-content");
    if (content) {
      fillContent(content, entry);
    } else {
      render(entry);
    }
  }

  function remove(entry) {
    cancelFrame(entry);
    bubbles.get(entry)?.remove();
    bubbles.delete(entry);
  }

  // Show exactly the bubbles of `entries`, in that order (a branch of the conversation),
  // moving only those out of place; bubbles of other branches leave the list.
  function place(entries) {
    let expected = els.list.firstElementChild;
    for (const entry of entries) {
      const element = bubbles.get(entry);
      if (element === expected) {
        expected = expected.nextElementSibling;
      } else {
        els.list.insertBefore(element, expected);
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
   * `continuable` (the answer was cut off at its length limit: Continue, in view),
   * `disabled` (nothing can be asked now: an answer streams, or the page is offline).
   * The buttons carry `data-action`; page.js listens on the list.
   */
  function showActions(entry, state) {
    const element = bubbles.get(entry);
    let bar = element.querySelector(":scope > .message-actions");
    if (!bar) {
      bar = node("div", "message-actions");
      element.append(bar);
    }
    const saved = entry.id !== null && !isUnderway(entry);
    // Drawn again only when its buttons change, not when they are only enabled or disabled:
    // the keyboard's place and a Copy saying "Copied" stay as they are.
    const shape = JSON.stringify([
      state.version,
      state.versions,
      state.retry,
      Boolean(state.continuable),
      entry.role,
    ]);
    if (bar.dataset.shape !== shape) {
      const active = document.activeElement;
      const focused = bar.contains(active) ? active.dataset.action : null;
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
      continue: state.disabled || !saved,
    };
    for (const button of bar.querySelectorAll("button[data-action]")) {
      button.disabled = off[button.dataset.action];
    }
    // Pinned in view: a failed answer's Retry, a cut-off one's Continue, and the versions of
    // a message.
    bar.classList.toggle("is-pinned", state.retry || state.continuable || state.versions > 1);
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
    buttons.push(
      actionButton("copy", "Copy", `Copy this ${entry.role === Role.USER ? "message" : "answer"}`),
    );
    if (entry.role === Role.USER) {
      buttons.push(actionButton("edit", "Edit", "Edit this message"));
    } else if (entry.role === Role.ASSISTANT) {
      if (state.continuable) {
        const more = actionButton("continue", "Continue", "Continue this answer where it stopped");
        more.classList.add("message-continue");
        buttons.push(more);
      }
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
   * taken (the editor closes); `onClose(sent)` is called when it closes either way; `files`,
   * if given, is put above the text (the message's files, as the composer's tray is). Returns
   * {close(), text()}: a way to close it, and the text as it stands.
   */
  function openEditor(entry, text, onSend, onClose, files = null) {
    const element = bubbles.get(entry);
    const content = element.querySelector(".message-content");
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
    form.append(...(files ? [files] : []), area, row);
    content.hidden = true;
    element.classList.add("is-editing");
    content.after(form);
    let closed = false;
    const close = (sent) => {
      if (closed) {
        return;
      }
      closed = true;
      form.remove();
      content.hidden = false;
      element.classList.remove("is-editing");
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

  return {
    bubble,
    adopt,
    render,
    renderContent,
    showContent,
    remove,
    place,
    showActions,
    openEditor,
    isAtBottom,
    scrollToBottom,
    keepingScroll,
    keepingPlace,
    topMessageId,
  };
}
