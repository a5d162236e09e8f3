/*
 * A message's files as the page shows them (docs/protocol.md, "Attachments"): images as
 * thumbnails that open full size, everything else as a chip that downloads. Their bytes come
 * only from their `url`, which serves them to their owner (images inline, anything else as a
 * download). The parts of a chip (its icon, name and size) are shared with the composer's
 * tray (attachments.js). Names are only ever set as text.
 */
import { node } from "./dom.js";
import { humanSize } from "./tray.js";

/** The longest side of a thumbnail, in CSS pixels. */
const THUMBNAIL = 200;
const KIND_LABELS = { image: "IMG", pdf: "PDF", text: "TXT" };

/** A file's icon (its kind, in three letters), its name and its size, for a chip. */
export function chipParts(name, size, kind) {
  const icon = node("span", `file-icon file-icon--${kind}`, KIND_LABELS[kind] || "FILE");
  icon.setAttribute("aria-hidden", "true");
  const label = node("span", "file-label");
  label.append(node("span", "file-name", name), node("span", "file-size", ` · ${humanSize(size)}`));
  return [icon, label];
}

/** The width and height a thumbnail of `attachment` is drawn at (its room kept before it loads). */
export function thumbnailSize(attachment) {
  const { width, height } = attachment;
  if (!(width > 0) || !(height > 0)) {
    return { width: THUMBNAIL, height: THUMBNAIL };
  }
  const scale = Math.min(1, THUMBNAIL / Math.max(width, height));
  return {
    width: Math.max(1, Math.round(width * scale)),
    height: Math.max(1, Math.round(height * scale)),
  };
}

/** An image thumbnail of `attachment`, from its url, loaded when scrolled near. */
export function thumbnail(attachment, className) {
  const img = node("img", className);
  const { width, height } = thumbnailSize(attachment);
  img.width = width;
  img.height = height;
  img.loading = "lazy";
  img.decoding = "async";
  img.alt = attachment.name;
  img.src = attachment.url;
  return img;
}

function shownFile(attachment) {
  const item = node("li", `message-file message-file--${attachment.kind}`);
  const link = node("a");
  link.href = attachment.url;
  if (attachment.kind === "image") {
    // The full size, in a tab of its own; the thumbnail's alt names the link.
    link.className = "message-image";
    link.target = "_blank";
    link.rel = "noopener";
    link.title = `${attachment.name} (opens full size)`;
    link.append(thumbnail(attachment));
  } else {
    link.className = "file-chip";
    link.download = attachment.name;
    link.title = `Download ${attachment.name}`;
    link.append(...chipParts(attachment.name, attachment.size, attachment.kind));
  }
  item.append(link);
  return item;
}

/** The list of a message's `attachments` (the frames' shape), or null for none. */
export function messageFiles(attachments) {
  if (!attachments || attachments.length === 0) {
    return null;
  }
  const list = node("ul", "message-files");
  list.setAttribute("aria-label", attachments.length === 1 ? "Attached file" : "Attached files");
  list.append(...attachments.map(shownFile));
  return list;
}
