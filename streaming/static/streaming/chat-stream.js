/*
 * One streaming answer as this page assembles it from `snapshot`, `delta` and `sync` frames.
 *
 * This is the client algorithm of docs/protocol.md ("Resuming: snapshot, seq and sync"), the
 * same as tests/assembler.py: an answer is its text and `last`, the seq of the last delta in
 * it. Deltas apply only in order; a gap asks the server for a sync; a sync reply applies only
 * if it starts where the text ends. No DOM and no socket here: chat.js feeds the frames in and
 * passes a function that sends a sync request.
 */
(function (global) {
  "use strict";

  // A sync request left unanswered this long is sent again (docs/protocol.md).
  const SYNC_RETRY_MS = 3000;
  // Nothing heard about a streaming answer for this long: ask (a lost `done` heals so).
  const QUIET_MS = 5000;

  class AnswerStream {
    /**
     * @param {string} messageId the answer's message id
     * @param {(messageId: string, afterSeq: number) => void} askForSync sends a `sync` frame
     */
    constructor(messageId, askForSync) {
      this.messageId = messageId;
      this.askForSync = askForSync;
      this.text = "";
      this.last = 0;
      // The `after_seq` of the sync request outstanding, or null when none is.
      this.syncingAfter = null;
      this.timer = null;
      this.quietTimer = null;
      this.heard();
    }

    /** Start again from a snapshot's text; the server has asked for the rest already. */
    resume(text, seq) {
      this.heard();
      this.text = text;
      this.last = seq;
      // The server sends a sync on this socket's behalf right after the snapshot; count it
      // as ours, so a gap before its reply does not ask a second time.
      this.awaitSync(seq);
    }

    /** Apply a `delta` frame; true if the text changed. */
    delta(seq, text) {
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

    /** The answer ended: no more sync requests for it. */
    end() {
      this.clearSync();
      global.clearTimeout(this.quietTimer);
      this.quietTimer = null;
    }

    /**
     * Something about this answer arrived. Group sends can be dropped without a trace, the
     * `done` included, so an answer that goes quiet is asked about rather than trusted.
     */
    heard() {
      global.clearTimeout(this.quietTimer);
      this.quietTimer = global.setTimeout(() => {
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
      this.timer = global.setTimeout(() => {
        this.timer = null;
        if (this.syncingAfter !== null) {
          this.requestSync();
        }
      }, SYNC_RETRY_MS);
    }

    clearSync() {
      if (this.timer !== null) {
        global.clearTimeout(this.timer);
        this.timer = null;
      }
      this.syncingAfter = null;
    }
  }

  global.ChatStream = { AnswerStream, SYNC_RETRY_MS, QUIET_MS };
})(window);
