/*
 * Files to send, on the page: the composer's tray (chips, each with its progress, its
 * error and its remove button), the ways files come in (the paperclip's file input, a drop
 * on the conversation, a paste into the message box), and their uploads, one request each,
 * started at once (docs/protocol.md, "Attachments"). An edit's tray is drawn the same way,
 * with the files of the message it edits. What a tray holds and decides is tray.js's.
 */
import { node } from "./dom.js";
import { chipParts, thumbnail } from "./files.js";
import { tooBig, Tray, Upload } from "./tray.js";

/**
 * Draw `tray` into `list` (a <ul>, hidden while the tray is empty) whenever `draw()` is
 * called. Each item's remove button calls `onRemove(key)`; the keyboard then goes to the
 * next chip's remove button, or to `fallbackFocus()` when none is left.
 */
export function trayView(list, tray, { onRemove, fallbackFocus }) {
  // Each item's chip and the status it was drawn in: drawn again only when that changes,
  // so progress moves a bar and leaves the keyboard where it is.
  const drawn = new Map();

  function chip(item) {
    const li = node("li", `tray-item tray-item--${item.status} tray-item--${item.kind}`);
    li.dataset.key = item.key;
    li.dataset.status = item.status;
    if (item.status === Upload.DONE && item.kind === "image") {
      li.append(thumbnail(item.attachment, "tray-thumb")); // named by its alt: the file's name
    } else {
      li.append(...chipParts(item.name, item.size, item.kind));
    }
    if (item.status === Upload.UPLOADING) {
      const bar = node("progress", "tray-progress");
      bar.max = 100;
      bar.value = Math.round(item.progress * 100);
      bar.setAttribute("aria-label", `Uploading ${item.name}`);
      li.append(bar);
    }
    const remove = node("button", "tray-remove", "×");
    remove.type = "button";
    remove.setAttribute("aria-label", `Remove ${item.name}`);
    remove.title = `Remove ${item.name}`;
    remove.addEventListener("click", () => removeByButton(item.key));
    li.append(remove);
    if (item.status === Upload.FAILED) {
      li.append(node("span", "tray-error", item.error)); // on a line of its own, below
    }
    return li;
  }

  function removeByButton(key) {
    const keys = tray.items.map((item) => item.key);
    const at = keys.indexOf(key);
    onRemove(key);
    draw();
    const next = tray.items[Math.min(at, tray.items.length - 1)];
    const button = next && drawn.get(next.key)?.li.querySelector(".tray-remove");
    (button || fallbackFocus()).focus();
  }

  function draw() {
    let expected = list.firstElementChild;
    for (const item of tray.items) {
      let shown = drawn.get(item.key);
      if (!shown || shown.status !== item.status) {
        const li = chip(item);
        const hadFocus = shown && shown.li.contains(document.activeElement);
        if (shown) {
          shown.li.replaceWith(li);
          if (expected === shown.li) {
            expected = li;
          }
        }
        shown = { li, status: item.status };
        drawn.set(item.key, shown);
        if (hadFocus) {
          li.querySelector(".tray-remove").focus();
        }
      } else if (item.status === Upload.UPLOADING) {
        shown.li.querySelector("progress").value = Math.round(item.progress * 100);
      }
      if (shown.li === expected) {
        expected = expected.nextElementSibling;
      } else {
        list.insertBefore(shown.li, expected);
      }
    }
    for (const [key, shown] of drawn) {
      if (!tray.get(key)) {
        shown.li.remove();
        drawn.delete(key);
      }
    }
    list.hidden = tray.items.length === 0;
  }

  return { draw };
}

/** The files of a DataTransfer (a drop's or a paste's), as a list. */
function filesOf(transfer) {
  return transfer && transfer.files ? Array.from(transfer.files) : [];
}

/**
 * Wire the composer's files: `els` holds the chat `root`, `tray` (the list), `files` (the
 * file input), `input` (the message box), `dropTarget`, `announcer` and `alert`;
 * `config` holds `uploadUrl`, `maxFiles` and `maxBytes`. `canAttach()` says whether files may be added
 * now; `onChange()` is called whenever what the tray holds changes (Send follows it).
 * Returns {tray, restore(attachments), clear(), draw()}.
 */
export function attachUploads({ els, config, canAttach, onChange, showAlert }) {
  const tray = new Tray(config.maxFiles);
  // The request of each file still uploading, by its key: removing the file aborts it.
  const requests = new Map();
  const view = trayView(els.tray, tray, {
    onRemove: (key) => {
      requests.get(key)?.abort();
      requests.delete(key);
      tray.remove(key);
      onChange();
    },
    fallbackFocus: () => els.input,
  });

  function csrfToken() {
    const field = document.querySelector('input[name="csrfmiddlewaretoken"]');
    return field ? field.value : "";
  }

  function settle(key, ok, reply, status) {
    requests.delete(key);
    const attachment = reply && reply.attachment;
    if (ok && attachment) {
      tray.uploaded(key, attachment);
    } else {
      const text =
        (reply && reply.message) ||
        (status
          ? `The server refused the file (HTTP ${status}).`
          : "The file could not be uploaded: the server could not be reached. Try again.");
      if (tray.failed(key, text)) {
        // Read out whole (aria-atomic): every file refused so far, not only the last.
        const failed = tray.items.filter((item) => item.status === Upload.FAILED);
        els.announcer.textContent = failed.map((item) => `${item.name}: ${item.error}`).join(" ");
      }
    }
    view.draw();
    onChange();
  }

  function upload(item, file) {
    // Refused here as the server would refuse it, without sending it all first.
    const big = tooBig(item.name, file.size, config.maxBytes);
    if (big) {
      settle(item.key, false, { message: big }, 413);
      return;
    }
    const request = new XMLHttpRequest();
    requests.set(item.key, request);
    request.open("POST", config.uploadUrl);
    request.responseType = "json";
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && tray.progress(item.key, event.loaded, event.total)) {
        view.draw();
      }
    });
    request.addEventListener("load", () => {
      settle(item.key, request.status === 201, request.response, request.status);
    });
    request.addEventListener("error", () => settle(item.key, false, null, 0));
    const body = new FormData();
    body.append("file", file, file.name);
    // A new chat's page has no conversation yet: its first message names the files.
    const conversation = els.root.dataset.conversationId;
    if (conversation) {
      body.append("conversation", conversation);
    }
    request.send(body);
  }

  /** Add `files` (File objects) to the tray and upload each at once. */
  function add(files) {
    if (files.length === 0 || !canAttach()) {
      return;
    }
    const { added, refused } = tray.add(files);
    if (refused) {
      showAlert(refused);
    }
    view.draw();
    added.forEach((item, index) => upload(item, files[index]));
    onChange();
  }

  els.files.addEventListener("change", () => {
    add(Array.from(els.files.files));
    els.files.value = ""; // the same file can be chosen again after it was removed
  });

  // Only what carries files is a drop here: dragged text goes into the box as usual.
  const carriesFiles = (event) =>
    event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files");
  // Every enter has its leave, each on its own element: the target shows until the last.
  let depth = 0;
  function showDropTarget(shown) {
    els.dropTarget.hidden = !shown;
    els.root.classList.toggle("is-dropping", shown);
  }
  els.root.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event) || !canAttach()) {
      return;
    }
    event.preventDefault();
    depth += 1;
    showDropTarget(true);
  });
  els.root.addEventListener("dragover", (event) => {
    if (!carriesFiles(event) || !canAttach()) {
      return;
    }
    event.preventDefault(); // a drop is taken here, not opened as a page
    event.dataTransfer.dropEffect = "copy";
  });
  els.root.addEventListener("dragleave", (event) => {
    if (!carriesFiles(event)) {
      return;
    }
    depth = Math.max(0, depth - 1);
    if (depth === 0) {
      showDropTarget(false);
    }
  });
  els.root.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) {
      return;
    }
    event.preventDefault();
    depth = 0;
    showDropTarget(false);
    add(filesOf(event.dataTransfer));
    els.input.focus();
  });

  // A pasted screenshot (or files copied) is attached. Clipboard contents with text too
  // (a spreadsheet's cells come with a picture of them) paste their text, as before.
  els.input.addEventListener("paste", (event) => {
    const files = filesOf(event.clipboardData);
    if (files.length === 0 || event.clipboardData.getData("text/plain") !== "") {
      return;
    }
    event.preventDefault();
    add(files);
  });

  return {
    tray,
    draw: view.draw,
    /** Uploaded files given back (a refused message's): in the tray again. */
    restore(attachments) {
      tray.restore(attachments);
      view.draw();
      onChange();
    },
    /** The message carrying the tray's files went: the tray is empty again. */
    clear() {
      for (const request of requests.values()) {
        request.abort();
      }
      requests.clear();
      tray.clear();
      view.draw();
    },
  };
}

/**
 * An edit's tray: the edited message's `attachments`, each removable, drawn in a list to
 * put in the editor. Returns {element, ready()} (the files still there, to send).
 */
export function editTray(attachments, { onChange, fallbackFocus }) {
  const tray = new Tray();
  tray.restore(attachments);
  const element = node("ul", "file-tray edit-tray");
  element.setAttribute("aria-label", "Files of this message");
  const view = trayView(element, tray, {
    onRemove: (key) => {
      tray.remove(key);
      onChange();
    },
    fallbackFocus,
  });
  view.draw();
  return { element, ready: () => tray.ready };
}
