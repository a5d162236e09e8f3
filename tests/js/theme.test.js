/*
 * The colour theme's choice (streaming/static/streaming/theme.js): what is stored, and the
 * theme a choice shows under each system setting. Applying it is tested in Chromium
 * (tests/test_theme_browser.py).
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { describe, it } from "node:test";

// A classic script (it must run before the page is drawn), exporting CommonJS-style for Node.
const { parseChoice, resolveTheme } = createRequire(import.meta.url)(
  "../../streaming/static/streaming/theme.js",
);

describe("parseChoice", () => {
  it("keeps a known choice", () => {
    for (const choice of ["system", "light", "dark"]) {
      assert.equal(parseChoice(choice), choice);
    }
  });

  it("takes nothing, or anything unknown, as the system's", () => {
    for (const stored of [null, undefined, "", "Dark", "sepia", "{}"]) {
      assert.equal(parseChoice(stored), "system");
    }
  });
});

describe("resolveTheme", () => {
  it("follows the system when the choice is the system's", () => {
    assert.equal(resolveTheme("system", true), "dark");
    assert.equal(resolveTheme("system", false), "light");
  });

  it("holds a reader's choice whatever the system says", () => {
    for (const systemDark of [true, false]) {
      assert.equal(resolveTheme("light", systemDark), "light");
      assert.equal(resolveTheme("dark", systemDark), "dark");
    }
  });
});
