"""Attaching files on one daphne process: how long an upload takes (a phone's 12-megapixel
photo decoded and written anew, a 200-page PDF read for its text), and whether the
process's pages wait for it (a page's time while two photos upload at once, against its
time alone, measured in the same run).

    python -m bench uploads

Needs PostgreSQL (BENCH_DATABASE_URL); the in-memory channel layer, one process.
"""

import asyncio
import io
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from bench.stack import DATABASE_URL, one_process_env, setup_django
from tests.support.files import pdf, words
from tests.support.servers import DaphneServer, daphne_servers

#: Uploads of each file timed, one after another (the median is reported).
ROUNDS = 5
#: Page loads timed alone, and while photos upload.
PAGES = 40


def photo() -> bytes:
    """A 4032 by 3024 JPEG with a photo's grain, as a phone writes it (a few MB)."""
    noise = Image.effect_noise((4032, 3024), 40).convert("RGB")
    gradient = Image.linear_gradient("L").resize((4032, 3024)).convert("RGB")
    out = io.BytesIO()
    Image.blend(noise, gradient, 0.5).save(out, "JPEG", quality=90)
    return out.getvalue()


def report() -> bytes:
    """A PDF of 200 pages of text."""
    return pdf(*(words(f"Page {n} of the quarterly report " * 3) for n in range(200)))


def run(var: Path) -> list[tuple[str, str]]:
    cookie, user = setup_django(DATABASE_URL)
    from streaming.models import Conversation

    conversation = Conversation.objects.create(owner=user, title="bench: uploads")
    media = var / "bench-media"
    env = one_process_env(MEDIA_ROOT=str(media), STORAGE_QUOTA_CHARS="0")
    with daphne_servers(1, env, var) as (server,):
        return asyncio.run(_measure(server, cookie, str(conversation.id)))


async def _measure(server: DaphneServer, cookie: str, conversation: str) -> list[tuple[str, str]]:
    big, paper = photo(), report()
    async with httpx.AsyncClient(
        base_url=server.url, cookies={"sessionid": cookie}, timeout=120
    ) as http:
        page = f"/c/{conversation}/"
        (await http.get(page)).raise_for_status()
        token = http.cookies["csrftoken"]

        async def upload(name: str, data: bytes) -> tuple[float, dict[str, Any]]:
            started = time.perf_counter()
            response = await http.post(
                "/attachments/",
                data={"conversation": conversation},
                files={"file": (name, data)},
                headers={"X-CSRFToken": token, "Referer": server.url + page},
            )
            response.raise_for_status()
            return time.perf_counter() - started, response.json()["attachment"]

        async def pages(count: int) -> list[float]:
            times = []
            for _ in range(count):
                started = time.perf_counter()
                (await http.get("/settings/")).raise_for_status()
                times.append(time.perf_counter() - started)
            return times

        photo_times: list[float] = []
        kept: dict[str, Any] = {}
        for _ in range(ROUNDS):
            seconds, kept = await upload("IMG_0001.jpg", big)
            photo_times.append(seconds)
        pdf_times = [(await upload("report.pdf", paper))[0] for _ in range(ROUNDS)]
        alone = await pages(PAGES)
        busy: list[float] = []

        async def uploading() -> None:
            while len(busy) < PAGES:
                await upload("IMG_0002.jpg", big)

        async def timed() -> None:
            busy.extend(await pages(PAGES))

        await asyncio.gather(uploading(), uploading(), timed())
    return [
        (
            f"upload a 12-megapixel photo ({len(big) / 1e6:.1f} MB JPEG), kept "
            f"{kept['width']} by {kept['height']} ({kept['size'] / 1e6:.2f} MB)",
            f"{statistics.median(photo_times) * 1000:.0f} ms (median of {ROUNDS})",
        ),
        (
            f"upload a 200-page PDF ({len(paper) / 1e3:.0f} kB), its text read",
            f"{statistics.median(pdf_times) * 1000:.0f} ms (median of {ROUNDS})",
        ),
        (
            "a page (settings) alone, and while two photos upload at once",
            f"median {statistics.median(alone) * 1000:.0f} ms, worst {max(alone) * 1000:.0f} "
            f"ms; while uploading: median {statistics.median(busy) * 1000:.0f} ms, worst "
            f"{max(busy) * 1000:.0f} ms",
        ),
    ]
