/*
 * The chat page on a narrow screen: the conversation list is a drawer, opened by the
 * "Chats" button in the chat header, so the messages keep the height; the composer's
 * placeholder is the short one, which fits.
 *
 * The drawer is a disclosure, not a dialog: it traps nothing. Opening it moves the focus to
 * the current conversation (or the first thing in it); Escape, a click outside it, the focus
 * leaving it, or picking a conversation closes it, and Escape brings the focus back to the
 * button. The layout itself is chat.css's (the `is-drawer-open` class); on a wide screen the
 * list is a sidebar and none of this applies.
 */

/** Wire the drawer and the composer's placeholder, if the page has them. */
export function attach() {
  const layout = document.querySelector(".chat-layout");
  const toggle = document.getElementById("drawer-toggle");
  const drawer = document.getElementById("sidebar");
  const input = document.getElementById("composer-input");
  if (!layout || !toggle || !drawer) {
    return;
  }
  // Keep in step with the narrow-screen @media block in chat.css.
  const narrow = window.matchMedia("(max-width: 720px)");

  function isOpen() {
    return layout.classList.contains("is-drawer-open");
  }

  function setOpen(shown) {
    layout.classList.toggle("is-drawer-open", shown);
    toggle.setAttribute("aria-expanded", String(shown));
  }

  function open() {
    setOpen(true);
    const target =
      drawer.querySelector('a[aria-current="page"]') ||
      drawer.querySelector("a[href], button:not([disabled])");
    if (target) {
      target.focus({ preventScroll: true });
    }
  }

  toggle.addEventListener("click", () => {
    if (isOpen()) {
      setOpen(false);
    } else {
      open();
    }
  });

  // Capture, before the composer's Escape (which stops a streaming answer): with the drawer
  // open, Escape only closes it.
  window.addEventListener(
    "keydown",
    (event) => {
      if (event.key === "Escape" && !event.isComposing && isOpen()) {
        event.preventDefault();
        event.stopPropagation();
        setOpen(false);
        toggle.focus();
      }
    },
    true,
  );

  // A click outside closes it and does nothing else: the reader meant to dismiss the drawer,
  // not to press what was under it.
  document.addEventListener(
    "click",
    (event) => {
      if (!isOpen() || drawer.contains(event.target) || toggle.contains(event.target)) {
        return;
      }
      event.preventDefault();
      event.stopPropagation();
      setOpen(false);
    },
    true,
  );

  drawer.addEventListener("click", (event) => {
    if (event.target.closest("a[href]")) {
      setOpen(false);
    }
  });

  // Tabbing out of it (to anything but its button) closes it, so it never covers the focus.
  drawer.addEventListener("focusout", (event) => {
    const next = event.relatedTarget;
    if (isOpen() && next && !drawer.contains(next) && next !== toggle) {
      setOpen(false);
    }
  });

  const longPlaceholder = input ? input.placeholder : "";
  function fitLayout() {
    if (!narrow.matches) {
      setOpen(false);
    }
    if (input && input.dataset.placeholderNarrow) {
      input.placeholder = narrow.matches ? input.dataset.placeholderNarrow : longPlaceholder;
    }
  }
  narrow.addEventListener("change", fitLayout);
  // Back from the back/forward cache after a conversation was picked: closed again.
  window.addEventListener("pageshow", () => setOpen(false));
  fitLayout();
}
