/*
 * Frames that come in parts: the server sends a frame longer than its FRAME_BUDGET_BYTES as
 * `part` frames, each holding the next piece of the frame's JSON text, the last one marked
 * (docs/protocol.md, "Frames in parts"). A socket's parts follow each other with nothing in
 * between, so joining them needs no ids: a joiner per socket keeps the pieces so far.
 */
import { ServerFrame } from "./protocol.js";

// How the server writes a part's first characters (Python's json.dumps, `type` first):
// any other frame is passed on untouched, without being parsed twice.
const PART_START = `{"type": "${ServerFrame.PART}"`;

/**
 * A joiner for one socket: `join(text)` gives back the text of a whole frame (the socket's
 * message itself, or its parts joined once the last has come), or null while a frame is
 * still coming in parts. A part that cannot be read, or a whole frame arriving while parts
 * are pending, drops the pending pieces: that frame is lost as if never sent, and the page
 * heals it as it heals any lost frame.
 */
export function createJoiner() {
  let pieces = [];

  function join(text) {
    if (typeof text !== "string" || !text.startsWith(PART_START)) {
      pieces = [];
      return text;
    }
    let part;
    try {
      part = JSON.parse(text);
    } catch {
      pieces = [];
      return null;
    }
    if (typeof part.data !== "string") {
      pieces = [];
      return null;
    }
    pieces.push(part.data);
    if (part.last !== true) {
      return null;
    }
    const whole = pieces.join("");
    pieces = [];
    return whole;
  }

  return { join };
}
