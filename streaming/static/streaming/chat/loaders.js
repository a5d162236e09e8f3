/*
 * The two ends of the window of a long conversation the page holds (docs/protocol.md,
 * "Older messages" and "Opening at a message"): a button above the first message shown asks
 * for the window before it, and, on a page that does not hold the end, one below the last
 * asks for the window after it. Each asks by itself when it comes near the view, so reading
 * up or down just goes on.
 */
import { isOpen } from "./store.js";
import { newerThanShown, olderThanShown, requestHistory, requestNewer } from "./windowing.js";

/**
 * The button `button` at one end of the list `scroller` scrolls. `margin`: how near the view
 * (an IntersectionObserver rootMargin) it asks; `wanted()`: there is something to ask for;
 * `waiting()`: it was asked for and has not come; `request(state, fx)` asks; `labels`:
 * {idle, busy}. `run(fx)` carries out what a request pushes. Returns {update()}.
 */
function attachLoader({ state, button, scroller, run, margin, wanted, waiting, request, labels }) {
  function load() {
    const fx = [];
    request(state, fx);
    run(fx);
  }

  button.addEventListener("click", load);
  const watcher = new IntersectionObserver(
    (seen) => {
      if (seen.some((each) => each.isIntersecting) && !button.hidden) {
        load();
      }
    },
    { root: scroller, rootMargin: margin },
  );
  watcher.observe(button);

  /** Show or hide the button, as the state says. */
  function update() {
    button.hidden = !wanted();
    button.disabled = !isOpen(state) || waiting();
    button.textContent = waiting() ? labels.busy : labels.idle;
  }

  return { update };
}

/** The button above the messages: older ones. */
export function attachOlder({ state, button, scroller, run }) {
  return attachLoader({
    state,
    button,
    scroller,
    run,
    margin: "200px 0px 0px 0px",
    wanted: () => olderThanShown(state) !== null,
    waiting: () => state.historyRequested !== null,
    request: requestHistory,
    labels: { idle: "Load earlier messages", busy: "Loading earlier messages…" },
  });
}

/** The button below the messages, while the page does not hold the end: newer ones. */
export function attachNewer({ state, button, scroller, run }) {
  return attachLoader({
    state,
    button,
    scroller,
    run,
    margin: "0px 0px 200px 0px",
    wanted: () => newerThanShown(state) !== null,
    waiting: () => state.newerRequested !== null,
    request: requestNewer,
    labels: { idle: "Load newer messages", busy: "Loading newer messages…" },
  });
}
