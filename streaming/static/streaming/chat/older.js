/*
 * Older messages of a long conversation: the page holds a window of it (docs/protocol.md,
 * "Older messages"), and a button above the first message shown asks for the window before
 * it. The button asks by itself when it scrolls into view, so reading upwards just goes on.
 */
import { requestHistory } from "./requests.js";
import { isOpen, olderThanShown } from "./store.js";

/** The button `button` over the list, for the page whose state is `state`; `run(fx)` carries
 * out what a request pushes. Returns {update()}: show or hide it as the state says. */
export function attachOlder({ state, button, scroller, run }) {
  function load() {
    const fx = [];
    requestHistory(state, fx);
    run(fx);
  }

  button.addEventListener("click", load);
  const watcher = new IntersectionObserver(
    (seen) => {
      if (seen.some((each) => each.isIntersecting) && !button.hidden) {
        load();
      }
    },
    { root: scroller, rootMargin: "200px 0px 0px 0px" },
  );
  watcher.observe(button);

  function update() {
    const older = olderThanShown(state) !== null;
    button.hidden = !older;
    button.disabled = !isOpen(state) || state.historyRequested !== null;
    button.textContent =
      state.historyRequested !== null ? "Loading earlier messages…" : "Load earlier messages";
  }

  return { update };
}
