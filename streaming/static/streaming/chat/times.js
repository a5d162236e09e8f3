/*
 * Times as the chat pages show them: relative ("3 min ago", "yesterday") in the reader's
 * own time zone, with the exact local time on hover. The server writes each <time> with
 * its datetime; these draw it for the reader. Pure but for the two DOM helpers at the end;
 * tested in Node (tests/js/times.test.js).
 */

const MINUTE_MS = 60 * 1000;
const HOUR_MS = 60 * MINUTE_MS;

function startOfDay(date) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate());
}

/**
 * When `date` was, as seen at `now` (both Dates, in local time): "just now", "3 min ago",
 * "2 h ago" (earlier today), "yesterday", or the date ("14 Mar", with the year when it is
 * not this year's) in `locale` (the browser's when undefined).
 */
export function relativeTime(date, now, locale) {
  const ago = now - date;
  if (ago < MINUTE_MS) {
    return "just now"; // a server clock a little ahead of this one's too
  }
  if (ago < HOUR_MS) {
    return `${Math.floor(ago / MINUTE_MS)} min ago`;
  }
  const today = startOfDay(now);
  if (date >= today) {
    return `${Math.floor(ago / HOUR_MS)} h ago`;
  }
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (date >= yesterday) {
    return "yesterday";
  }
  const options = { day: "numeric", month: "short" };
  if (date.getFullYear() !== now.getFullYear()) {
    options.year = "numeric";
  }
  return date.toLocaleDateString(locale, options);
}

/** The exact local date and time of `date`, to the second, in `locale`. */
export function exactTime(date, locale) {
  return date.toLocaleString(locale, { dateStyle: "full", timeStyle: "medium" });
}

/** Show `element`, a <time datetime>, as seen at `now`, with its exact time on hover. */
export function showTime(element, now) {
  const date = new Date(element.dateTime);
  if (Number.isNaN(date.getTime())) {
    return;
  }
  element.textContent = relativeTime(date, now);
  element.title = exactTime(date);
}

/** A message's time, `iso` as the server sent it: `<time datetime title>3 min ago</time>`. */
export function timeElement(iso) {
  const element = document.createElement("time");
  element.className = "message-time";
  element.dateTime = iso;
  showTime(element, new Date());
  return element;
}

/** Draw every `<time datetime>` under `root` that matches `selector`, as seen now. */
export function showTimes(root, selector) {
  const now = new Date();
  for (const element of root.querySelectorAll(selector)) {
    showTime(element, now);
  }
}
