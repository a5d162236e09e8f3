/*
 * How the chat page notices that it lost a frame it cannot name, and asks for the truth.
 *
 * Group sends can be dropped without a trace: a user message's echo, an answer's `start`,
 * its `done`, a title. stream.js heals gaps inside one answer by `seq`; this file holds the
 * rest, with no DOM and no socket (main.js wires them), so tests/js/ can run it in Node:
 *
 * - Watchdog: while the page waits for something the server must confirm (a message's echo,
 *   a retry's `start`, a stop's `done`, a resync's snapshot) and nothing has been resolved
 *   for WAIT_MS, it calls back (the page sends `resync`), and again every WAIT_MS after.
 * - IdleCheck: after IDLE_MS without any frame it calls back (the page sends `ping`).
 * - pongDisagreement: compares a `pong` with what the page holds (handlers.js resyncs on one).
 */
import { realTimers } from "./timers.js";

// Waiting this long for a confirmation that does not come: ask for a fresh snapshot.
export const WAIT_MS = 3000;
// Nothing at all from the server for this long: ask it how the conversation stands.
export const IDLE_MS = 5000;

export class Watchdog {
  /**
   * @param {() => void} onOverdue called when waiting got nowhere for WAIT_MS, then every WAIT_MS
   * @param {{setTimeout: Function, clearTimeout: Function}} [timers] for tests
   */
  constructor(onOverdue, timers) {
    this.onOverdue = onOverdue;
    this.timers = timers || realTimers;
    this.waitingFor = new Set();
    this.timer = null;
  }

  /**
   * Tell it everything the page waits for now, as strings naming each thing. A thing that
   * is no longer there was resolved: progress, so the clock starts again. New things alone
   * do not restart it, so an old unresolved thing is not put off by every new one.
   */
  update(things) {
    const now = new Set(things);
    let resolved = false;
    for (const thing of this.waitingFor) {
      if (!now.has(thing)) {
        resolved = true;
      }
    }
    this.waitingFor = now;
    if (now.size === 0) {
      this.cancel();
    } else if (resolved || this.timer === null) {
      this.arm();
    }
  }

  /** Waiting for nothing any more (or not able to ask: the socket is gone). */
  stop() {
    this.waitingFor = new Set();
    this.cancel();
  }

  arm() {
    this.cancel();
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      if (this.waitingFor.size > 0) {
        this.arm();
        this.onOverdue();
      }
    }, WAIT_MS);
  }

  cancel() {
    if (this.timer !== null) {
      this.timers.clearTimeout(this.timer);
      this.timer = null;
    }
  }
}

export class IdleCheck {
  /**
   * @param {() => void} onIdle called after IDLE_MS without `heard()`, then every IDLE_MS
   * @param {{setTimeout: Function, clearTimeout: Function}} [timers] for tests
   */
  constructor(onIdle, timers) {
    this.onIdle = onIdle;
    this.timers = timers || realTimers;
    this.timer = null;
  }

  /** A frame arrived: the next check is IDLE_MS from now. */
  heard() {
    this.stop();
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.heard();
      this.onIdle();
    }, IDLE_MS);
  }

  stop() {
    if (this.timer !== null) {
      this.timers.clearTimeout(this.timer);
      this.timer = null;
    }
  }
}

/**
 * How a `pong` (the stored conversation) differs from what the page holds, or null if it
 * does not. `held` is {count, lastId, lastStatus, title, modelChoice}: the number of
 * messages the page has with a server id, the id and status of the newest, the title it
 * shows and the model chosen (each null when it does not know the stored one yet; the
 * status undefined when the page does not hold the newest: it is not compared).
 */
export function pongDisagreement(pong, held) {
  if (pong.count !== held.count) {
    return `${pong.count} messages stored, ${held.count} on the page`;
  }
  if ((pong.last_id || null) !== (held.lastId || null)) {
    return `newest message ${pong.last_id}, ${held.lastId} on the page`;
  }
  if (held.lastStatus !== undefined && (pong.last_status || null) !== (held.lastStatus || null)) {
    return `newest message ${pong.last_status}, ${held.lastStatus} on the page`;
  }
  if (held.title !== null && typeof pong.title === "string" && pong.title !== held.title) {
    return "the title changed";
  }
  const stored = pong.model_choice;
  const shown = held.modelChoice;
  if (
    shown &&
    stored &&
    (stored.provider_id !== shown.provider_id ||
      stored.model !== shown.model ||
      stored.available !== shown.available)
  ) {
    return "the model changed";
  }
  return null;
}
