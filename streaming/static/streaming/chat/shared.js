/*
 * A shared conversation's page (streaming/shared.html): each answer's Markdown drawn by the
 * chat's own renderer (blocks.js, markdown.js: the same markdown-it, the same sanitizing),
 * from the plain text the server wrote into it, which is what a reader without the script
 * sees. No socket, no composer: the page only draws what it was sent.
 */
import { drawMarkdown } from "./blocks.js";
import { listenForCopy } from "./markdown.js";

for (const content of document.querySelectorAll("[data-markdown]")) {
  drawMarkdown(content, content.textContent);
}
listenForCopy(document);
