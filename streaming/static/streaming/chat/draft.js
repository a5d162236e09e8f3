/*
 * A new chat's page (GET /c/new/) is a draft with no conversation and no socket behind it.
 * Its first message is POSTed with the page's system prompt and model (docs/protocol.md,
 * "A new chat: saved by its first message"), which saves the conversation and starts the
 * answer; the page then becomes the conversation's and connects like any chat page.
 * Until then its system prompt is kept here, on the page.
 */
import { signedOut } from "./connection.js";
import { Effect } from "./effects.js";
import { rejectSend } from "./outbox.js";

/**
 * Wire the draft of the page `root`. `config` holds `startUrl` and `maxPromptChars`, and gets
 * the conversation's `wsPath`; `run(fx)` carries out effects (page.js); `connect()` opens the
 * socket. Returns {keepPrompt(frame), post(clientId)}.
 */
export function attach({ state, root, els, picker, prompt, config, run, connect }) {
  // The system prompt the conversation will be made with (sent with its first message).
  let draftPrompt = document.getElementById("system-prompt-text").textContent;
  let starting = false;

  /** A `set_system_prompt` frame, kept on the page: true (it was taken). */
  function keepPrompt(frame) {
    const length = Array.from(frame.system_prompt).length;
    const limit = config.maxPromptChars;
    // Told back after the caller has taken the answer, as a frame's reply would be.
    queueMicrotask(() => {
      if (length > limit) {
        prompt.refused({
          message: `The system prompt is ${length} characters long; the limit is ${limit}.`,
        });
      } else {
        draftPrompt = frame.system_prompt;
        prompt.show(draftPrompt);
      }
    });
    return true;
  }

  /** POST the first message: the server makes the conversation and starts the answer. */
  async function post(clientId) {
    const frame = state.outbox.get(clientId);
    if (!frame || starting) {
      return;
    }
    starting = true;
    const body = new URLSearchParams({
      content: frame.content,
      client_id: clientId,
      system_prompt: draftPrompt,
    });
    // The files it carries, uploaded already (without a conversation): the field repeated.
    for (const id of frame.attachments || []) {
      body.append("attachments", id);
    }
    const picked = picker.picked();
    if (picked) {
      body.set("provider_id", picked.provider_id === null ? "" : String(picked.provider_id));
      body.set("model", picked.model);
    }
    const token = els.form.elements.namedItem("csrfmiddlewaretoken");
    let response = null;
    let reply = null;
    try {
      response = await fetch(config.startUrl, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { "X-CSRFToken": token ? token.value : "" },
      });
      reply = await response.json();
    } catch {
      reply = null;
    } finally {
      starting = false;
    }
    if (response && reply && response.ok) {
      becomeConversation(reply);
    } else {
      refused(clientId, response, reply);
    }
  }

  // Nothing was saved: say why, and give the text back.
  function refused(clientId, response, reply) {
    let text = "The server could not be reached: your message was not sent. Try again.";
    if (reply && reply.message) {
      text = reply.message;
    } else if (response) {
      text = `The server refused the message (HTTP ${response.status}). Reload the page and try again.`;
    }
    const fx = [{ type: Effect.ALERT, text }];
    rejectSend(state, clientId, fx); // its text and files back to the composer
    if (response && response.status === 401) {
      signedOut(state, fx);
    }
    run(fx);
  }

  // The draft was saved: this page is the conversation's from now on.
  function becomeConversation(reply) {
    state.draft = false;
    config.wsPath = reply.ws_path;
    root.dataset.conversationId = reply.conversation_id;
    delete root.dataset.draft;
    history.replaceState(null, "", reply.url);
    document.getElementById("chat-rename").hidden = false;
    const remove = document.getElementById("chat-delete");
    remove.action = `${reply.url}delete/`;
    remove.hidden = false;
    document.getElementById("chat-export-markdown").href = `${reply.url}export.md`;
    document.getElementById("chat-export-json").href = `${reply.url}export.json`;
    const share = document.getElementById("chat-share");
    if (share) {
      share.href = `${reply.url}share/`;
    }
    document.getElementById("chat-export").hidden = false;
    run([{ type: Effect.STATUS, connection: "connecting", text: "", kind: "" }]);
    connect();
  }

  return { keepPrompt, post };
}
