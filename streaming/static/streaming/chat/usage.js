/*
 * The conversation's token total on the chat page: what every answer (all versions) cost,
 * sent to the model and written by it. The server renders it; this keeps it current as
 * answers end, from the usage each stored message carries (`done`, `message`, `snapshot`).
 */

/** The sums of `usage` over `entries` (anything with a `usage` of the server's shape). */
export function sum(entries) {
  const total = { prompt_tokens: 0, completion_tokens: 0 };
  for (const entry of entries) {
    if (entry.usage) {
      total.prompt_tokens += entry.usage.prompt_tokens || 0;
      total.completion_tokens += entry.usage.completion_tokens || 0;
    }
  }
  return total;
}

export function label(total) {
  return `${total.prompt_tokens} tokens in · ${total.completion_tokens} out`;
}

/** Wire the page's #chat-usage; returns {show(entries)}, called when a usage changes. */
export function attach() {
  const el = document.getElementById("chat-usage");
  return {
    show(entries) {
      if (el) {
        el.textContent = label(sum(entries));
      }
    },
  };
}
