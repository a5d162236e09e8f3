/*
 * chat/markdown.js: the markdown-it layer (toHtml) and its URL policy, with the vendored
 * libraries. DOMPurify needs a DOM, so the sanitized layer is tested in Chromium
 * (tests/test_markdown_browser.py).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  AUTODETECT_MAX_CHARS,
  createMarkdown,
  isSafeUrl,
} from "../../streaming/static/streaming/chat/markdown.js";
import { libs } from "./vendored.js";

const { toHtml } = createMarkdown(libs);

describe("Markdown rendering", () => {
  it("renders headings, tables, strikethrough and lists", () => {
    const html = toHtml("## Two\n\n### Three\n\n| a | b |\n|---|---|\n| 1 | ~~2~~ |\n\n- x\n- y\n");
    assert.match(html, /<h2>Two<\/h2>/);
    assert.match(html, /<h3>Three<\/h3>/);
    assert.match(html, /<table>[\s\S]*<th>a<\/th>[\s\S]*<td><s>2<\/s><\/td>/);
    assert.match(html, /<ul>\s*<li>x<\/li>\s*<li>y<\/li>\s*<\/ul>/);
  });

  it("aligns table columns by class, never by inline style", () => {
    const html = toHtml("| a | b | c | d |\n|:--|:-:|--:|---|\n| 1 | 2 | 3 | 4 |\n");
    assert.doesNotMatch(html, /style=/);
    assert.match(html, /<th class="align-left">a<\/th>\s*<th class="align-center">b<\/th>/);
    assert.match(html, /<th class="align-right">c<\/th>\s*<th>d<\/th>/);
    assert.match(html, /<td class="align-left">1<\/td>\s*<td class="align-center">2<\/td>/);
    assert.match(html, /<td class="align-right">3<\/td>\s*<td>4<\/td>/);
  });

  it("renders task lists as disabled checkboxes", () => {
    const html = toHtml("- [x] done\n- [ ] to do\n");
    const boxes = html.match(/<input [^>]*>/g);
    assert.equal(boxes.length, 2);
    assert.ok(boxes.every((box) => /type="checkbox"/.test(box) && /disabled=""/.test(box)));
    assert.match(boxes[0], /checked=""/);
    assert.doesNotMatch(boxes[1], /checked/);
    assert.doesNotMatch(html, /\[x\]|\[ \]/);
    // Each named by its text: a label around both, as ids (for=) do not survive sanitizing.
    assert.match(html, /<label><input [^>]*checked[^>]*\/>done<\/label>/);
    assert.match(html, /<label><input [^>]*\/>to do<\/label>/);
    assert.doesNotMatch(html, / id=| for=/);
  });

  it("turns bare URLs into links", () => {
    assert.match(toHtml("see https://example.org/a"), /<a href="https:\/\/example.org\/a">/);
  });

  it("highlights a fenced block in its language, under a header with a Copy button", () => {
    const html = toHtml("```python\ndef f(x):\n    return x < y\n```\n");
    assert.match(html, /<span class="code-language">python<\/span>/);
    assert.match(
      html,
      /<button type="button" class="button button--small code-copy">Copy<\/button>/,
    );
    assert.match(html, /<code class="hljs language-python"><span class="hljs-keyword">def<\/span>/);
    assert.match(html, /x &lt; y<\/code>/); // no newline kept before the closing fence
  });

  it("guesses the language of an unlabelled block, up to a length", () => {
    const code =
      'def greet(name):\n    """Say hi."""\n    return f"Hello {name}"\n\nclass Box:\n    pass\n';
    const fence = "```";
    assert.match(toHtml(`${fence}\n${code}${fence}\n`), /class="hljs language-python"/);
    const long = code.repeat(Math.ceil(AUTODETECT_MAX_CHARS / code.length) + 1);
    const html = toHtml(`${fence}\n${long}${fence}\n`);
    assert.match(html, /<code class="hljs">def greet/);
    assert.match(html, /<span class="code-language">text<\/span>/);
  });

  it("names an unknown language and escapes its code", () => {
    const html = toHtml("```nosuchlang\n<b>x</b>\n```\n");
    assert.match(html, /code-language">nosuchlang</);
    assert.match(html, /<code class="hljs language-nosuchlang">&lt;b&gt;x&lt;\/b&gt;<\/code>/);
  });

  it("renders every math delimiter as MathML, without inline styles", () => {
    const html = toHtml("$a^2$ and \\(b\\)\n\n$$c$$\n\n\\[d\\]\n");
    assert.equal((html.match(/<math /g) || []).length, 4);
    assert.equal((html.match(/display="block"/g) || []).length, 2);
    assert.doesNotMatch(html, /style=/);
  });
});

describe("Markdown policy", () => {
  it("escapes raw HTML, also inside code spans", () => {
    const html = toHtml("<img src=x onerror=alert(1)> <script>alert(1)</script> `<i>c</i>`");
    assert.doesNotMatch(html, /<img|<script|<i>/);
    assert.match(html, /&lt;img src=x onerror=alert\(1\)&gt;/);
    assert.match(html, /<code>&lt;i&gt;c&lt;\/i&gt;<\/code>/);
  });

  it("makes no link or image of a scripting or data URL", () => {
    for (const url of [
      "javascript:alert(1)",
      "JaVaScRiPt:alert(1)",
      "vbscript:x",
      "data:text/html,x",
    ]) {
      const html = toHtml(`[x](${url}) ![y](${url}) <${url}>`);
      assert.doesNotMatch(html, /href=|src=/, url);
    }
  });

  it("shows an image as a link with its alt text, never as an image", () => {
    const html = toHtml("![a cat](https://example.com/cat.png)");
    assert.doesNotMatch(html, /<img/);
    assert.match(html, /<a class="md-image" href="https:\/\/example.com\/cat.png">a cat<\/a>/);
  });

  it("refuses URLs that hide their scheme behind whitespace or control characters", () => {
    assert.equal(isSafeUrl("java\tscript:alert(1)"), false);
    assert.equal(isSafeUrl(" \u0001javascript:alert(1)"), false);
    assert.equal(isSafeUrl("da\nta:text/html,x"), false);
    assert.equal(isSafeUrl("https://example.org/javascript:"), true);
    assert.equal(isSafeUrl("mailto:a@example.org"), true);
  });

  it("renders a nesting bomb as text", () => {
    for (const bomb of [
      "[".repeat(20000),
      "*".repeat(20000),
      ">".repeat(20000),
      "- ".repeat(20000),
    ]) {
      const html = toHtml(bomb);
      assert.ok(html.length > 0);
      assert.ok((html.match(/<blockquote>|<ul>|<em>/g) || []).length <= 20, bomb.slice(0, 2));
    }
  });
});

describe("Code blocks while an answer streams", () => {
  const answer =
    "Two blocks:\n\n```python\nprint('one')\n```\n\nand\n\n```\nlet x = 1;\nconsole.log(x);\n```\n";

  it("renders every prefix of an answer exactly as a fresh renderer would", () => {
    const streaming = createMarkdown(libs);
    for (let end = 1; end <= answer.length; end++) {
      const prefix = answer.slice(0, end);
      assert.equal(streaming.toHtml(prefix), createMarkdown(libs).toHtml(prefix));
    }
  });

  it("highlights a finished block once, however often the answer is rendered again", () => {
    let calls = 0;
    const hljs = Object.create(libs.hljs);
    hljs.highlight = (...args) => (calls++, libs.hljs.highlight(...args));
    hljs.highlightAuto = (...args) => (calls++, libs.hljs.highlightAuto(...args));
    const { toHtml: render } = createMarkdown({ ...libs, hljs });

    const first = render(answer);
    assert.equal(calls, 2);
    assert.equal(render(answer), first);
    assert.equal(calls, 2);
  });
});
