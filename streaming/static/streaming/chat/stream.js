/*
 * One streaming answer as this page assembles it from `snapshot`, `delta`, `sync` and `done`
 * frames.
 *
 * This is the client algorithm of docs/protocol.md ("Resuming: snapshot, seq and sync"), the
 * same as tests/assembler.py: an answer is its text and `last`, the seq of the last delta in
 * it. Deltas apply only in order; a gap asks the server for a sync; a sync reply applies only
 * if it starts where the text ends; `done` ends the answer with the saved text, which wins.
 * No DOM and no socket here: the frame handlers (handlers.js) feed the frames in, and the
 * page passes a function that sends a sync request; tests/js/ runs it in Node.
 */
import { realTimers } from "./timers.js";

// A sync request left unanswered this long is sent again (docs/protocol.md).
export const SYNC_RETRY_MS = 3000;
// Nothing heard about a streaming answer for this long: ask (a lost `done` heals so).
export const QUIET_MS = 5000;

export class AnswerStream {
  /**
   * @param {string} messageId the answer's message id
   * @param {(messageId: string, afterSeq: number) => void} askForSync sends a `sync` frame
   * @param {{setTimeout: Function, clearTimeout: Function}} [timers] for tests
   */
  constructor(messageId, askForSync, timers) {
    this.messageId = messageId;
    this.askForSync = askForSync;
    this.timers = timers || realTimers;
    this.text = "";
    this.last = 0;
    this.ended = false;
    // The `after_seq` of the sync request outstanding, or null when none is.
    this.syncingAfter = null;
    this.timer = null;
    this.quietTimer = null;
    this.heard();
  }

  /**
   * Start again from a snapshot's text, unless this page already has more of it (a resync
   * while the answer streams); the server has asked for the rest after the snapshot's seq.
   */
  resume(text, seq) {
    if (this.ended) {
      return;
    }
    this.heard();
    if (seq < this.last) {
      // The snapshot's checkpoint is older than what arrived here: keep ours. The sync the
      // server sends on our behalf is stale for us and will be ignored.
      return;
    }
    this.text = text;
    this.last = seq;
    // The server sends a sync on this socket's behalf right after the snapshot; count it
    // as ours, so a gap before its reply does not ask a second time.
    this.awaitSync(seq);
  }

  /**
   * Start from a `start` frame's text and seq: "" and 0 for a new answer, the stored text of
   * a continued one (its deltas follow from `seq` + 1). What this page already has beyond
   * it (from a snapshot read after the answer began) is kept.
   */
  startAt(text, seq) {
    if (this.ended || seq < this.last) {
      return;
    }
    this.heard();
    this.text = text;
    this.last = seq;
  }

  /** Apply a `delta` frame; true if the text changed. */
  delta(seq, text) {
    if (this.ended) {
      return false; // late or repeated: `done` gave the final text
    }
    this.heard();
    if (seq <= this.last) {
      return false; // already have it (from the snapshot or a sync reply)
    }
    if (seq === this.last + 1) {
      this.text += text;
      this.last = seq;
      return true;
    }
    // A gap: some deltas went missing. This one is not applied: the reply covers it.
    if (this.syncingAfter !== this.last) {
      this.requestSync();
    }
    return false;
  }

  /** Apply a `sync` reply; true if the text changed. */
  sync(afterSeq, seq, text) {
    if (this.ended) {
      return false;
    }
    this.heard();
    const fits = afterSeq === this.last;
    if (fits) {
      this.text += text;
      this.last = seq;
    }
    // Stale or not, the request was answered; a gap still open asks again at its next delta.
    this.clearSync();
    return fits && text !== "";
  }

  /**
   * Apply a `done` frame: the answer ended with `content` saved, which holds the deltas up
   * to `seq`. The saved text wins. Returns how it compares with what was assembled:
   * "exact"; "healed" (it holds deltas this page never got: a missing tail); "truncated"
   * (the server kept less than was streamed: an answer swept from its checkpoint); or
   * "mismatch" (the two disagree on text they both claim to hold: a bug somewhere).
   */
  finish(seq, content) {
    if (this.ended) {
      return "exact";
    }
    const assembled = this.text;
    const last = this.last;
    this.end();
    this.text = content;
    if (typeof seq === "number") {
      this.last = seq;
    }
    if (assembled === content) {
      return "exact";
    }
    if (typeof seq === "number" && seq > last && content.startsWith(assembled)) {
      return "healed";
    }
    if (typeof seq === "number" && seq < last && assembled.startsWith(content)) {
      return "truncated";
    }
    return "mismatch";
  }

  /** The answer ended (or this page stopped following it): no more requests for it. */
  end() {
    this.ended = true;
    this.clearSync();
    if (this.quietTimer !== null) {
      this.timers.clearTimeout(this.quietTimer);
      this.quietTimer = null;
    }
  }

  /**
   * Something about this answer arrived. Group sends can be dropped without a trace, the
   * `done` included, so an answer that goes quiet is asked about rather than trusted.
   */
  heard() {
    if (this.quietTimer !== null) {
      this.timers.clearTimeout(this.quietTimer);
    }
    this.quietTimer = this.timers.setTimeout(() => {
      this.quietTimer = null;
      if (this.syncingAfter === null) {
        this.requestSync();
      }
      this.heard();
    }, QUIET_MS);
  }

  requestSync() {
    this.askForSync(this.messageId, this.last);
    this.awaitSync(this.last);
  }

  awaitSync(afterSeq) {
    this.clearSync();
    this.syncingAfter = afterSeq;
    // The request or its reply may be lost (a socket closing, a layer over capacity).
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      if (this.syncingAfter !== null) {
        this.requestSync();
      }
    }, SYNC_RETRY_MS);
  }

  clearSync() {
    if (this.timer !== null) {
      this.timers.clearTimeout(this.timer);
      this.timer = null;
    }
    this.syncingAfter = null;
  }
}
