/*
 * A list of the user's conversations (the sidebar of the chat page, the list page): newest
 * activity first under day headings, as streaming/_conversation_items.html renders them.
 *
 * - More load as it scrolls: the last item, "Older", names the next page's fragment
 *   (data-next, a keyset cursor); without JavaScript it is a plain link to the next page.
 * - The chat page hands it the user-group frames (docs/protocol.md): `conversation_changed`
 *   puts a conversation where its last activity places it (title, answering dot, heading),
 *   and `conversation_removed` drops it; the open conversation's own entry follows its own
 *   frames (`ownChanged`). A lost one heals at the next `refresh()`, which the chat page
 *   calls on every snapshot after the first (a reconnect).
 * - The list page's undo bar goes once its window has passed.
 *
 * Wired by main.js on the chat page and by list.js on the list page. Text is only ever set
 * with textContent.
 */
import { compareInstants } from "./instant.js";

/**
 * Whether a conversation last active at `a` lists before one at `b` ({id, updatedAt}):
 * the server's order, newest first to the microsecond, then by id.
 */
export function listsBefore(a, b) {
  const byTime = compareInstants(a.updatedAt, b.updatedAt);
  return byTime !== 0 ? byTime > 0 : a.id > b.id;
}

/**
 * Keep the list `list` current; `currentId()` is the open conversation's id (or null).
 * Returns {changed, ownChanged, removed, refresh, showsCurrent, loadMore}.
 */
export function attach(doc, list, currentId) {
  const path = (id) => `/c/${id}/`;

  function items() {
    return Array.from(list.querySelectorAll(".conversation-item"));
  }

  function keyOf(li) {
    return { id: li.dataset.conversationId, updatedAt: li.dataset.updatedAt };
  }

  function more() {
    return list.querySelector(".conversation-more");
  }

  /** The item for `c` (a ListedConversation), like the template's. */
  function listItem(c) {
    const li = doc.createElement("li");
    li.className = "conversation-item";
    const link = doc.createElement("a");
    link.href = path(c.id);
    const title = doc.createElement("span");
    title.className = "conversation-title";
    const dot = doc.createElement("span");
    dot.className = "answering-dot";
    dot.setAttribute("role", "img");
    dot.setAttribute("aria-label", "Answering now");
    dot.title = "Answering now";
    link.append(title, dot);
    if (list.dataset.list === "page") {
      const time = doc.createElement("span");
      time.className = "conversation-time";
      time.textContent = "just now";
      link.append(time);
    }
    li.append(link);
    return li;
  }

  function fill(li, c) {
    li.dataset.conversationId = c.id;
    li.dataset.updatedAt = c.updated_at;
    li.dataset.group = c.group;
    li.querySelector(".conversation-title").textContent = c.title;
    li.querySelector(".answering-dot").hidden = !c.answering;
    const link = li.querySelector("a");
    if (c.id === currentId()) {
      link.classList.add("is-current");
      link.setAttribute("aria-current", "page");
    }
  }

  /** Headings again, from each item's group: one before the first item of each. */
  function regroup() {
    for (const heading of list.querySelectorAll(".conversation-group")) {
      heading.remove();
    }
    let last = null;
    for (const li of items()) {
      if (li.dataset.group !== last) {
        last = li.dataset.group;
        const heading = doc.createElement("li");
        heading.className = "conversation-group";
        heading.dataset.group = last;
        heading.textContent = last;
        li.before(heading);
      }
    }
    const empty = doc.getElementById("sidebar-empty");
    if (empty) {
      empty.hidden = items().length > 0;
    }
  }

  /** Put `li` where its last activity places it; dropped if that is past what is loaded. */
  function place(li) {
    const key = keyOf(li);
    const after = items().find((other) => other !== li && listsBefore(key, keyOf(other)));
    if (after) {
      after.before(li);
    } else if (more()) {
      li.remove(); // older than everything loaded: it comes with a later page
    } else {
      list.append(li);
    }
  }

  function changed(c) {
    let li = list.querySelector(`.conversation-item[data-conversation-id="${c.id}"]`);
    if (!li) {
      li = listItem(c);
    }
    fill(li, c);
    place(li);
    regroup();
  }

  /**
   * The open conversation's own entry, from its own frames (the server sends a socket no
   * list frame about its own conversation): `answering`, and `updatedAt` when it moved.
   */
  function ownChanged(answering, updatedAt) {
    const li = list.querySelector(`.conversation-item[data-conversation-id="${currentId()}"]`);
    if (!li) {
      return;
    }
    li.querySelector(".answering-dot").hidden = !answering;
    if (updatedAt) {
      li.dataset.updatedAt = updatedAt;
      li.dataset.group = "Today";
      place(li);
      regroup();
    }
  }

  function removed(id) {
    const li = list.querySelector(`.conversation-item[data-conversation-id="${id}"]`);
    if (li) {
      li.remove();
      regroup();
    }
  }

  /** The items of a fragment (_conversation_items.html). */
  async function fetchItems(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    // Redirected: to the login page, signed out meanwhile; that is no list.
    if (!response.ok || response.redirected) {
      throw new Error(`HTTP ${response.status}${response.redirected ? " (redirected)" : ""}`);
    }
    const template = doc.createElement("template");
    template.innerHTML = await response.text();
    return template.content;
  }

  let loading = false;

  async function loadMore() {
    const sentinel = more();
    if (!sentinel || loading) {
      return;
    }
    loading = true;
    try {
      const fragment = await fetchItems(sentinel.dataset.next);
      // One that moved up since its page was loaded is listed once, where it is now.
      for (const li of fragment.querySelectorAll(".conversation-item")) {
        if (list.querySelector(`[data-conversation-id="${li.dataset.conversationId}"]`)) {
          li.remove();
        }
      }
      sentinel.replaceWith(fragment);
      regroup();
    } catch {
      return; // the link stays: scrolling (or clicking it) tries again
    } finally {
      loading = false;
    }
    watch();
  }

  /** The first page again, as the server has it now. */
  async function refresh() {
    const base = list.dataset.pageUrl;
    const current = currentId();
    const url = current ? `${base}?current=${encodeURIComponent(current)}` : base;
    try {
      const fragment = await fetchItems(url);
      list.replaceChildren(fragment);
      regroup();
      watch();
    } catch {
      // Kept as it is; the next reconnect tries again.
    }
  }

  const observer =
    "IntersectionObserver" in globalThis
      ? new IntersectionObserver((entries) => {
          if (entries.some((entry) => entry.isIntersecting)) {
            loadMore();
          }
        })
      : null;

  function watch() {
    const sentinel = more();
    if (observer && sentinel) {
      observer.disconnect();
      observer.observe(sentinel);
    }
  }

  list.addEventListener("click", (event) => {
    const link = event.target.closest(".conversation-more a");
    if (link) {
      event.preventDefault(); // the next page here, not on a page of its own
      loadMore();
    }
  });

  /** Whether the list shows the open conversation (one made by this page's draft does not). */
  function showsCurrent() {
    return list.querySelector(".is-current") !== null;
  }

  watch();
  return { changed, ownChanged, removed, refresh, showsCurrent, loadMore };
}

/** The list page's undo bar goes once the server would no longer undo the delete. */
export function hideUndoWhenLate(doc) {
  const bar = doc.getElementById("undo-bar");
  const seconds = bar ? parseFloat(bar.dataset.seconds) : NaN;
  if (bar && seconds > 0) {
    setTimeout(() => {
      bar.hidden = true;
    }, seconds * 1000);
  }
}
