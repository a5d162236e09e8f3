/*
 * Files a message carries, on the page's side (chat/tray.js, outbox.js, refusals.js): sizes
 * as people read them, the tray from a file added to its message sent, the frame naming the
 * files by id, and every refusal giving the files back with the text.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Effect } from "../../streaming/static/streaming/chat/effects.js";
import { sendMessage } from "../../streaming/static/streaming/chat/outbox.js";
import { applyStored, newEntry } from "../../streaming/static/streaming/chat/store.js";
import {
  guessKind,
  humanSize,
  tooBig,
  Tray,
  Upload,
} from "../../streaming/static/streaming/chat/tray.js";
import { feed, newPage, only, sent, servedTurn, snapshot, stored } from "./page-state.js";

const file = (name, size = 10, type = "") => ({ name, size, type });
const shown = (id, fields = {}) => ({
  id,
  kind: "text",
  name: `${id}.txt`,
  size: 5,
  content_type: "text/plain",
  width: null,
  height: null,
  url: `/attachments/${id}/`,
  ...fields,
});
const refusal = (code) => ({
  type: "error",
  code,
  message: `refused: ${code}`,
});

describe("tooBig", () => {
  it("refuses a file over the limit in the server's words, and nothing at or under it", () => {
    assert.equal(
      tooBig("huge.log", 31_457_280, 20_000_000),
      "huge.log is 31.5 MB; files may be up to 20 MB.",
    );
    assert.equal(tooBig("fits.log", 20_000_000, 20_000_000), "");
    assert.equal(
      tooBig("small.txt", 1500, 999),
      "small.txt is 1.5 kB; files may be up to 999 bytes.",
    );
    assert.equal(tooBig("any.log", 10 ** 12, Infinity), "");
  });
});

describe("humanSize", () => {
  it("says bytes, kB, MB and GB as the server counts them, one decimal below ten", () => {
    assert.equal(humanSize(0), "0 B");
    assert.equal(humanSize(999), "999 B");
    assert.equal(humanSize(1000), "1.0 kB");
    assert.equal(humanSize(1234), "1.2 kB");
    assert.equal(humanSize(12_345), "12 kB");
    assert.equal(humanSize(1_200_000), "1.2 MB");
    assert.equal(humanSize(25_000_000), "25 MB");
    assert.equal(humanSize(3_400_000_000), "3.4 GB");
  });

  it("never says 1000 of a unit, and takes nonsense as nothing", () => {
    assert.equal(humanSize(999_960), "1.0 MB");
    assert.equal(humanSize(9_960), "10 kB");
    assert.equal(humanSize(undefined), "0 B");
    assert.equal(humanSize(-5), "0 B");
  });
});

describe("guessKind", () => {
  it("guesses the icon of a file not yet read by the server from its type", () => {
    assert.equal(guessKind("image/png"), "image");
    assert.equal(guessKind("application/pdf"), "pdf");
    assert.equal(guessKind("text/x-python"), "text");
    assert.equal(guessKind(""), "text");
    assert.equal(guessKind(undefined), "text");
  });
});

describe("the tray", () => {
  it("adds files as uploading, and a message waits for them", () => {
    const tray = new Tray(10);
    const { added, refused } = tray.add([file("a.png", 50, "image/png"), file("b.py")]);
    assert.equal(refused, "");
    assert.deepEqual(
      added.map((item) => [item.name, item.kind, item.status, item.progress]),
      [
        ["a.png", "image", Upload.UPLOADING, 0],
        ["b.py", "text", Upload.UPLOADING, 0],
      ],
    );
    assert.equal(tray.uploading, true);
    assert.equal(tray.canSend(true), false); // text or not, the files are not there yet
    assert.deepEqual(tray.ready, []);
  });

  it("follows progress forwards only, and not after the upload ended", () => {
    const tray = new Tray();
    const [item] = tray.add([file("a.txt")]).added;
    assert.equal(tray.progress(item.key, 50, 100), true);
    assert.equal(item.progress, 0.5);
    assert.equal(tray.progress(item.key, 20, 100), false); // a late event moves nothing back
    assert.equal(tray.progress(item.key, 10, 0), false);
    tray.uploaded(item.key, shown("x"));
    assert.equal(tray.progress(item.key, 80, 100), false);
    assert.equal(item.progress, 1);
  });

  it("takes the server's word for an uploaded file: name, size, kind", () => {
    const tray = new Tray();
    const [item] = tray.add([file("shot.PNG", 900_000, "image/png")]).added;
    const attachment = shown("x", {
      kind: "image",
      name: "shot.PNG",
      size: 48_213,
    });
    assert.equal(tray.uploaded(item.key, attachment), true);
    assert.equal(item.status, Upload.DONE);
    assert.equal(item.size, 48_213);
    assert.deepEqual(tray.ready, [attachment]);
    assert.equal(tray.canSend(false), true); // a file alone is a message
  });

  it("marks a refused file failed with the server's words; it is not sent, nor counted", () => {
    const tray = new Tray(2);
    const [bad, good] = tray.add([file("evil.svg"), file("ok.txt")]).added;
    assert.equal(tray.failed(bad.key, "evil.svg is not a kind of file that can be attached"), true);
    assert.equal(bad.status, Upload.FAILED);
    assert.equal(bad.error, "evil.svg is not a kind of file that can be attached");
    assert.equal(tray.uploading, true);
    tray.uploaded(good.key, shown("ok"));
    assert.equal(tray.canSend(false), true);
    assert.deepEqual(tray.ready, [shown("ok")]);
    assert.equal(tray.count, 1);
    assert.equal(tray.add([file("third.txt")]).refused, ""); // the failed one left room
    assert.equal(tray.failed(good.key, "late"), false); // an upload ends once
  });

  it("refuses files past the limit, naming them, and keeps the first ones", () => {
    const tray = new Tray(2);
    tray.add([file("one.txt")]);
    const { added, refused } = tray.add([file("two.txt"), file("three.txt"), file("four.txt")]);
    assert.deepEqual(
      added.map((item) => item.name),
      ["two.txt"],
    );
    assert.equal(
      refused,
      "A message may carry 2 files at most: three.txt, four.txt were not added.",
    );
    assert.equal(tray.add([file("five.txt")]).refused.endsWith("five.txt was not added."), true);
  });

  it("removes a file whatever its state, and ignores what it no longer holds", () => {
    const tray = new Tray();
    const [a, b] = tray.add([file("a.txt"), file("b.txt")]).added;
    assert.equal(tray.remove(a.key), a);
    assert.equal(tray.remove(a.key), undefined);
    assert.equal(tray.uploaded(a.key, shown("a")), false); // its upload ended after it left
    assert.deepEqual(
      tray.items.map((item) => item.key),
      [b.key],
    );
    tray.clear();
    assert.deepEqual(tray.items, []);
    assert.equal(tray.canSend(false), false);
  });

  it("takes files back (a refused message's) once each, after those it holds", () => {
    const tray = new Tray();
    const [item] = tray.add([file("new.txt")]).added;
    tray.uploaded(item.key, shown("n"));
    tray.restore([shown("a"), shown("n"), shown("b")]);
    assert.deepEqual(
      tray.ready.map((attachment) => attachment.id),
      ["n", "a", "b"],
    );
    assert.equal(new Set(tray.items.map((i) => i.key)).size, 3);
  });
});

describe("a message with files", () => {
  const files = [shown("f1", { kind: "image" }), shown("f2")];

  it("names them by id in its frame, and shows them at once", () => {
    const { state } = servedTurn();
    const fx = [];
    const entry = sendMessage(
      state,
      { content: "", parentId: "a1", clientId: "c1", attachments: files },
      fx,
    );
    assert.deepEqual(sent(fx), [
      {
        type: "user_message",
        content: "",
        client_id: "c1",
        parent_id: "a1",
        attachments: ["f1", "f2"],
      },
    ]);
    assert.deepEqual(entry.attachments, files);
  });

  it("without text or files goes nowhere, and without files names none", () => {
    const { state } = servedTurn();
    const fx = [];
    assert.equal(sendMessage(state, { content: " ", parentId: "a1", clientId: "c1" }, fx), null);
    assert.deepEqual(fx, []);
    sendMessage(state, { content: "Hi", parentId: "a1", clientId: "c2", attachments: [] }, fx);
    assert.equal("attachments" in sent(fx)[0], false);
  });

  for (const code of ["no_vision", "too_many_attachments", "bad_attachment", "storage_full"]) {
    it(`refused with ${code}: taken back, its text and files given back`, () => {
      const { state } = servedTurn();
      sendMessage(
        state,
        {
          content: "What is this?",
          parentId: "a1",
          clientId: "c1",
          attachments: files,
        },
        [],
      );
      const fx = feed(state, refusal(code));
      assert.equal(state.messages.has("local:c1"), false);
      assert.equal(state.outbox.size, 0);
      assert.deepEqual(only(fx, Effect.ALERT), [{ type: Effect.ALERT, text: `refused: ${code}` }]);
      assert.deepEqual(only(fx, Effect.GIVE_BACK), [
        {
          type: Effect.GIVE_BACK,
          text: "What is this?",
          attachments: files,
          editOf: null,
          notice: "",
        },
      ]);
    });
  }

  it("an edit's refused files go back to the editor with its text", () => {
    const { state } = servedTurn();
    sendMessage(
      state,
      {
        content: "Hi!",
        parentId: null,
        clientId: "c1",
        editOf: "u1",
        attachments: files,
      },
      [],
    );
    const [back] = only(feed(state, refusal("no_vision")), Effect.GIVE_BACK);
    assert.equal(back.editOf, state.messages.get("u1"));
    assert.deepEqual(back.attachments, files);
  });

  it("a retry refused with no_vision is no longer awaited", () => {
    const { state } = servedTurn();
    state.retryRequested = "a1";
    feed(state, refusal("no_vision"));
    assert.equal(state.retryRequested, null);
  });

  it("goes on a new chat's page as its first POST, the files in its frame", () => {
    const { state } = newPage({ draft: true });
    const fx = [];
    sendMessage(state, { content: "", parentId: null, clientId: "c1", attachments: files }, fx);
    assert.deepEqual(only(fx, Effect.POST), [{ type: Effect.POST, clientId: "c1" }]);
    assert.deepEqual(state.outbox.get("c1").attachments, ["f1", "f2"]);
  });
});

describe("a stored message's files", () => {
  it("come with every frame, and are no change when they are the same", () => {
    const entry = newEntry({ id: "u1", role: "user", status: "complete" });
    assert.deepEqual(entry.attachments, []);
    const message = stored("u1", {
      content: "Look",
      attachments: [shown("f1")],
    });
    assert.equal(applyStored(entry, message), true);
    assert.deepEqual(entry.attachments, [shown("f1")]);
    assert.equal(applyStored(entry, structuredClone(message)), false);
    assert.equal(applyStored(entry, { ...message, attachments: undefined }), true);
    assert.deepEqual(entry.attachments, []);
  });

  it("are each version's own, from the snapshot", () => {
    const { state } = newPage();
    feed(
      state,
      snapshot([
        stored("u1", { attachments: [shown("old")] }),
        stored("u2", {
          attachments: [shown("new")],
          created_at: "2025-03-14T10:00:05+00:00",
        }),
      ]),
    );
    assert.deepEqual(state.messages.get("u1").attachments, [shown("old")]);
    assert.deepEqual(state.messages.get("u2").attachments, [shown("new")]);
  });
});
