/*
 * A clock for the chat page's timers: setTimeout and clearTimeout that run only when a
 * test moves time on. Injected into AnswerStream, Watchdog and IdleCheck; no real waiting.
 */
export function fakeClock() {
  let now = 0;
  let nextHandle = 1;
  const timers = new Map(); // handle → {at, callback}

  return {
    setTimeout(callback, ms) {
      const handle = nextHandle++;
      timers.set(handle, { at: now + ms, callback });
      return handle;
    },
    clearTimeout(handle) {
      timers.delete(handle);
    },
    /** Move time on by `ms`, running every timer that falls due, in order. */
    advance(ms) {
      const until = now + ms;
      for (;;) {
        let due = null;
        for (const [handle, timer] of timers) {
          if (timer.at <= until && (due === null || timer.at < due[1].at)) {
            due = [handle, timer];
          }
        }
        if (due === null) {
          break;
        }
        timers.delete(due[0]);
        now = due[1].at;
        due[1].callback();
      }
      now = until;
    },
    /** How many timers are set. */
    get pending() {
      return timers.size;
    },
  };
}
