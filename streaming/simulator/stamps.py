"""`sim:stamp=1`: content tokens that say when the simulator sent them, for latency benchmarks.

A stamped token is the Unix time (`time.time()`) at which its chunk was written to the socket,
with exactly six decimals (microseconds), followed by one space: "1764032000.123456 ". A
stamped answer is nothing but such tokens, so a client finds every one in the concatenated
text however the relay cut it into pieces: a stamp is complete once its space has arrived.
Both ends read the same clock only on one machine, which is where the benchmark runs.
"""

import re
import time

STAMP = re.compile(r"(\d+\.\d{6}) ")
"""One complete stamped token; group 1 is the time in seconds."""


def stamp_token() -> str:
    """A token carrying the current wall-clock time."""
    return f"{time.time():.6f} "


def read_stamps(text: str, start: int = 0) -> tuple[list[float], int]:
    """The stamps complete in `text[start:]`, and the offset to start from next time.

    Feed it a growing text with the offset it returned last: each stamp is read once, and a
    stamp whose space has not arrived yet is read on a later call.
    """
    stamps = []
    for match in STAMP.finditer(text, start):
        stamps.append(float(match[1]))
        start = match.end()
    return stamps, start
