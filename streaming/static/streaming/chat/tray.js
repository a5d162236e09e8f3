/*
 * The files a message is to carry, before it is sent: each added as the person gives it,
 * uploaded at once (attachments.js does the uploading and the drawing), and then uploaded,
 * or failed with the server's words, or removed. The message may go once nothing is still
 * uploading, with the files that were uploaded (docs/protocol.md, "Attachments"). Pure: no
 * DOM and no requests, so all of it runs in Node (tests/js/).
 */

/** Where a file of the tray stands. */
export const Upload = Object.freeze({
  UPLOADING: "uploading",
  DONE: "done",
  FAILED: "failed",
});

const UNITS = ["kB", "MB", "GB"];

/**
 * `bytes` as people read a size: "512 B", "1.2 kB", "34 MB" (decimal units, as the server's
 * messages count them; one decimal below 10).
 */
export function humanSize(bytes) {
  if (!Number.isFinite(bytes) || bytes < 1000) {
    return `${Math.max(0, Math.round(bytes || 0))} B`;
  }
  let value = bytes;
  let unit = "B";
  for (const next of UNITS) {
    if (value < 1000) {
      break;
    }
    value /= 1000;
    unit = next;
  }
  // 999.96 kB would round to "1000 kB": say it in the next unit instead.
  if (Math.round(value) >= 1000 && unit !== UNITS[UNITS.length - 1]) {
    value /= 1000;
    unit = UNITS[UNITS.indexOf(unit) + 1];
  }
  const shown = value < 9.95 ? value.toFixed(1) : String(Math.round(value));
  return `${shown} ${unit}`;
}

/** The kind of a file before the server has read it, for its icon: by its type, a guess. */
export function guessKind(type) {
  if (typeof type !== "string") {
    return "text";
  }
  if (type.startsWith("image/")) {
    return "image";
  }
  return type === "application/pdf" ? "pdf" : "text";
}

/**
 * Why a file of `size` bytes named `name` is not sent, over `maxBytes` (ATTACH_MAX_BYTES), in
 * the server's words (streaming/intake.py, `too_big`); "" when it is not too big.
 */
export function tooBig(name, size, maxBytes) {
  if (!(size > maxBytes)) {
    return "";
  }
  const words = (count) => {
    for (const [unit, step] of [
      ["MB", 1e6],
      ["kB", 1e3],
    ]) {
      if (count >= step) {
        return `${(count / step).toFixed(1).replace(/\.0$/, "")} ${unit}`;
      }
    }
    return `${count} bytes`;
  };
  return `${name} is ${words(size)}; files may be up to ${words(maxBytes)}.`;
}

/**
 * The tray of one composer (or one editor). `maxFiles`: the most one message carries
 * (ATTACH_MAX_FILES). Items: {key, name, size, kind, status, progress (0 to 1), attachment
 * (the server's, once uploaded), error (the server's words, once failed)}.
 */
export class Tray {
  constructor(maxFiles = Infinity) {
    this.maxFiles = maxFiles;
    this.items = [];
    this.lastKey = 0;
  }

  /** The files that count toward the limit: all but the failed ones. */
  get count() {
    return this.items.filter((item) => item.status !== Upload.FAILED).length;
  }

  /**
   * Add `files` ({name, size, type} each) as uploading, while there is room: {added (the
   * new items, to upload), refused (a sentence naming those left out, or "")}.
   */
  add(files) {
    const room = Math.max(0, this.maxFiles - this.count);
    const list = Array.from(files);
    const added = list.slice(0, room).map((file) => {
      this.lastKey += 1;
      const item = {
        key: `f${this.lastKey}`,
        name: file.name || "attachment",
        size: file.size || 0,
        kind: guessKind(file.type),
        status: Upload.UPLOADING,
        progress: 0,
        attachment: null,
        error: "",
      };
      this.items.push(item);
      return item;
    });
    const left = list.slice(room).map((file) => file.name || "attachment");
    const refused = left.length
      ? `A message may carry ${this.maxFiles} files at most: ${left.join(", ")} ` +
        `${left.length === 1 ? "was" : "were"} not added.`
      : "";
    return { added, refused };
  }

  /** The item `key`, or undefined (removed meanwhile). */
  get(key) {
    return this.items.find((item) => item.key === key);
  }

  /** `loaded` of `total` bytes of the item `key` have gone; whether that changed anything. */
  progress(key, loaded, total) {
    const item = this.get(key);
    if (!item || item.status !== Upload.UPLOADING || !(total > 0)) {
      return false;
    }
    const progress = Math.min(1, Math.max(item.progress, loaded / total));
    const changed = progress !== item.progress;
    item.progress = progress;
    return changed;
  }

  /** The server kept the item `key` as `attachment`. */
  uploaded(key, attachment) {
    const item = this.get(key);
    if (!item || item.status !== Upload.UPLOADING) {
      return false;
    }
    Object.assign(item, {
      status: Upload.DONE,
      progress: 1,
      attachment,
      name: attachment.name,
      size: attachment.size,
      kind: attachment.kind,
    });
    return true;
  }

  /** The item `key` was refused (`error`: the server's words), or could not be sent. */
  failed(key, error) {
    const item = this.get(key);
    if (!item || item.status !== Upload.UPLOADING) {
      return false;
    }
    item.status = Upload.FAILED;
    item.error = error;
    return true;
  }

  /** Take the item `key` out of the tray: it, or undefined. */
  remove(key) {
    const item = this.get(key);
    if (item) {
      this.items = this.items.filter((other) => other !== item);
    }
    return item;
  }

  /** Whether a file is still uploading (the message waits for it). */
  get uploading() {
    return this.items.some((item) => item.status === Upload.UPLOADING);
  }

  /** The uploaded files, as the server showed them, in the tray's order. */
  get ready() {
    return this.items.filter((item) => item.status === Upload.DONE).map((item) => item.attachment);
  }

  /** Whether a message could go now: nothing uploading, and text or an uploaded file. */
  canSend(hasText) {
    return !this.uploading && (hasText || this.ready.length > 0);
  }

  /** Empty the tray (the message carrying its files was sent). */
  clear() {
    this.items = [];
  }

  /**
   * Put uploaded files (the server's attachments) back: a message refused gives its files
   * back, and an edit starts with its message's. Ones in the tray already stay as they are.
   */
  restore(attachments) {
    for (const attachment of attachments || []) {
      if (this.items.some((item) => item.attachment && item.attachment.id === attachment.id)) {
        continue;
      }
      this.lastKey += 1;
      this.items.push({
        key: `f${this.lastKey}`,
        name: attachment.name,
        size: attachment.size,
        kind: attachment.kind,
        status: Upload.DONE,
        progress: 1,
        attachment,
        error: "",
      });
    }
  }
}
