"""daphne as chatsite starts it: on uvloop's event loop, unless UVLOOP is false or uvloop
cannot be imported (then on asyncio's own), then daphne's command line, arguments unchanged:

    python -m chatsite.daphne -b 127.0.0.1 -p 8000 chatsite.asgi:application

Every daphne of chatsite starts so: `manage.py serve`, deploy/chatsite@.service, the tests'
and the benchmarks' servers. The loop is chosen here, before daphne is imported, because
importing ``daphne.server`` creates the loop that Twisted's reactor, so the whole
application, runs on; set later, a loop policy reaches nothing.
"""

import asyncio
import logging
import sys

from chatsite import environment

# Named, not __name__: run with -m, this module is __main__.
logger = logging.getLogger("chatsite.daphne")


def command(host: str, port: int) -> list[str]:
    """The command line that serves chatsite on ``host``:``port`` with this launcher."""
    application = "chatsite.asgi:application"
    return [sys.executable, "-m", "chatsite.daphne", "-b", host, "-p", str(port), application]


def uvloop_policy() -> tuple[asyncio.AbstractEventLoopPolicy | None, str]:
    """uvloop's event loop policy, or None and why the process is to run on asyncio's loop."""
    if not environment.UVLOOP.read():
        return None, "UVLOOP is false"
    try:
        import uvloop
    except ImportError as exc:
        return None, f"uvloop cannot be imported ({exc})"
    return uvloop.EventLoopPolicy(), ""


def log_loop() -> None:
    """Under daphne's command line, log which event loop the process runs on, and on
    asyncio's, why (at WARNING unless UVLOOP chose it). Elsewhere this does nothing."""
    server = sys.modules.get("daphne.server")
    if server is None or "daphne.cli" not in sys.modules:
        return
    loop = type(server.twisted_loop)
    name = f"{loop.__module__}.{loop.__qualname__}"
    if loop.__module__.startswith("uvloop"):
        logger.info("Event loop: %s", name)
        return
    _, why = uvloop_policy()
    # uvloop there and wanted, yet not the loop: daphne was started some other way.
    why = why or "daphne was not started by `python -m chatsite.daphne`"
    level = logging.WARNING if environment.UVLOOP.read() else logging.INFO
    logger.log(level, "Event loop: asyncio's own (%s): %s", name, why)


def main() -> None:
    """Install uvloop's policy if it is to be used, then run daphne on ``sys.argv``."""
    policy, _ = uvloop_policy()
    if policy is not None:
        asyncio.set_event_loop_policy(policy)
    # Only now: importing daphne creates its event loop (see above).
    from daphne.cli import CommandLineInterface

    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
