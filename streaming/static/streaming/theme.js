/*
 * The colour theme: the system's setting unless the reader picked light or dark in the
 * header, remembered in localStorage.
 *
 * Loaded in the <head>, neither deferred nor async, after the stylesheets' <link>s: it runs
 * before the body is drawn, so a page never flashes the other theme. It sets
 * <html data-theme="light|dark"> (the theme shown; chat.css sets `color-scheme` from it, and
 * every colour there is a light-dark() pair) and turns on the one highlight.js stylesheet
 * marked `data-theme-for` with that theme. Without JavaScript neither happens, and the CSS
 * and the stylesheets' own `media` follow the system.
 *
 * The picker (#theme-choice, hidden until this script shows it) is wired once the page is
 * parsed; a choice made in one tab reaches the others through the `storage` event. A classic
 * script, not a module (modules are deferred): it publishes nothing on the page, and its pure
 * helpers are exported, CommonJS-style, for Node's tests only (tests/js/theme.test.js).
 */
(function (global) {
  "use strict";

  const STORAGE_KEY = "chatsite-theme";
  const CHOICES = ["system", "light", "dark"];
  const DARK_QUERY = "(prefers-color-scheme: dark)";

  /** A stored value as a choice: anything unknown (or nothing) is "system". */
  function parseChoice(stored) {
    return CHOICES.includes(stored) ? stored : "system";
  }

  /** The theme shown for a choice, given whether the system asks for dark. */
  function resolveTheme(choice, systemDark) {
    if (choice === "light" || choice === "dark") {
      return choice;
    }
    return systemDark ? "dark" : "light";
  }

  const api = { STORAGE_KEY, parseChoice, resolveTheme };
  if (typeof module !== "undefined" && module.exports) {
    module.exports = api;
    return;
  }

  const doc = global.document;
  const system = global.matchMedia(DARK_QUERY);

  // localStorage throws where storage is off (some private modes, blocked cookies): the
  // choice then lasts as long as the page.
  function readChoice() {
    try {
      return parseChoice(global.localStorage.getItem(STORAGE_KEY));
    } catch {
      return "system";
    }
  }

  function storeChoice(choice) {
    try {
      if (choice === "system") {
        global.localStorage.removeItem(STORAGE_KEY);
      } else {
        global.localStorage.setItem(STORAGE_KEY, choice);
      }
    } catch {
      // Not remembered; still applied.
    }
  }

  let choice = readChoice();

  function apply() {
    const theme = resolveTheme(choice, system.matches);
    doc.documentElement.dataset.theme = theme;
    for (const sheet of doc.querySelectorAll("link[data-theme-for]")) {
      sheet.media = sheet.dataset.themeFor === theme ? "all" : "not all";
    }
    const picker = doc.getElementById("theme-choice");
    if (picker) {
      picker.value = choice;
    }
  }

  apply();
  system.addEventListener("change", apply);
  global.addEventListener("storage", (event) => {
    if (event.key === STORAGE_KEY || event.key === null) {
      choice = readChoice();
      apply();
    }
  });

  doc.addEventListener("DOMContentLoaded", () => {
    const picker = doc.getElementById("theme-choice");
    if (!picker) {
      return;
    }
    picker.value = choice;
    picker.closest(".theme-picker").hidden = false;
    picker.addEventListener("change", () => {
      choice = parseChoice(picker.value);
      storeChoice(choice);
      apply();
    });
  });
})(typeof window !== "undefined" ? window : globalThis);
