/*
 * The clock the page's timed checks run on (stream.js, sync.js): the real one, looked up at
 * call time, so a test's fake timers (tests/js/fake-clock.js) are used once installed. Each
 * of them takes another in its constructor.
 */
export const realTimers = {
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle),
};
