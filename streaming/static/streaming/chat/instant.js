/*
 * The order of two moments as the server writes them (datetime.isoformat(): "…:05.123456+00:00",
 * or "…:05+00:00" on a whole second). A Date keeps milliseconds only; the server orders by
 * the microsecond, and so must the page, or two messages written within one millisecond
 * would be told apart by chance.
 */

/** [milliseconds since the epoch, the microseconds past the last millisecond] of `iso`. */
function instant(iso) {
  const fraction = /\.(\d+)/.exec(iso);
  const micro = fraction ? parseInt(fraction[1].padEnd(6, "0").slice(0, 6), 10) % 1000 : 0;
  return [Date.parse(iso), micro];
}

/** Negative if `a` is before `b`, positive if after, 0 for the same microsecond. */
export function compareInstants(a, b) {
  const [am, au] = instant(a);
  const [bm, bu] = instant(b);
  return am !== bm ? am - bm : au - bu;
}
