"""The simulator takes OpenAI's content parts, text and images, and `sim:parts=1` says what it
was sent; over real HTTP on loopback."""

import base64
import hashlib
import io
import json
import os
from typing import Any

import httpx
import pytest
from PIL import Image

from streaming.simulator import Simulator


def png(width: int, height: int, *, noise: bool = False) -> bytes:
    """A real PNG: one colour, or random pixels (which do not compress)."""
    if noise:
        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), (30, 120, 200))
    written = io.BytesIO()
    image.save(written, "PNG")
    return written.getvalue()


def image_part(data: bytes, media_type: str = "image/png", **extra: Any) -> dict[str, Any]:
    url = f"data:{media_type};base64,{base64.b64encode(data).decode()}"
    return {"type": "image_url", "image_url": {"url": url, **extra}}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def ask(
    http: httpx.AsyncClient, messages: list[dict[str, Any]], *, stream: bool = False
) -> httpx.Response:
    body = {"model": "vision-model", "messages": messages, "stream": stream}
    return await http.post("/chat/completions", json=body)


def answer_of(response: httpx.Response) -> str:
    """The answer's text, from a JSON reply or an event stream."""
    if not response.headers["content-type"].startswith("text/event-stream"):
        content: str = response.json()["choices"][0]["message"]["content"]
        return content
    chunks = [
        json.loads(line.removeprefix("data: "))
        for line in response.text.splitlines()
        if line.startswith("data: {")
    ]
    return "".join(
        choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"]
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_parts_answer_one_exact_line_per_part(
    http: httpx.AsyncClient, server: Simulator, stream: bool
) -> None:
    picture = png(40, 30)
    question = "What is in this picture? sim:parts=1"
    link = "https://images.example.com/cat.webp"
    content = [
        text_part(question),
        image_part(picture, detail="high"),
        {"type": "image_url", "image_url": {"url": link}},
    ]

    response = await ask(http, [{"role": "user", "content": content}], stream=stream)

    assert response.status_code == 200
    assert answer_of(response) == (
        f"part 1: text {len(question)} chars sha256={sha256(question.encode())}\n"
        f"part 2: image_url image/png {len(picture)} bytes sha256={sha256(picture)} detail=high\n"
        f"part 3: image_url url {len(link)} chars sha256={sha256(link.encode())}"
    )
    # What was sent is recorded as sent: the image's bytes come back out of its data: URL.
    (recorded,) = server.requests
    assert recorded["messages"][0]["content"] == content
    url = recorded["messages"][0]["content"][1]["image_url"]["url"]
    assert base64.b64decode(url.partition(",")[2]) == picture


@pytest.mark.asyncio
async def test_parts_of_a_string_content_is_one_text_line(http: httpx.AsyncClient) -> None:
    question = "Plain text, “quoted” ✨ sim:parts=1"

    response = await ask(http, [{"role": "user", "content": question}])

    encoded = question.encode()
    assert answer_of(response) == f"part 1: text {len(question)} chars sha256={sha256(encoded)}"


@pytest.mark.asyncio
async def test_parts_describes_only_the_last_user_message(http: httpx.AsyncClient) -> None:
    earlier = png(8, 8)
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": [text_part("Be brief.")]},
        {"role": "user", "content": [text_part("First"), image_part(earlier)]},
        {"role": "assistant", "content": "A square."},
        {"role": "user", "content": [text_part("sim:parts=1")]},
    ]

    response = await ask(http, messages)

    assert answer_of(response) == f"part 1: text 11 chars sha256={sha256(b'sim:parts=1')}"


@pytest.mark.asyncio
async def test_an_image_larger_than_a_mebibyte_is_taken_whole(
    http: httpx.AsyncClient, server: Simulator
) -> None:
    picture = png(700, 700, noise=True)  # about 1.5 MB, 2 MB as base64
    assert len(picture) > 1024 * 1024

    response = await ask(
        http, [{"role": "user", "content": [text_part("sim:parts=1"), image_part(picture)]}]
    )

    assert response.status_code == 200
    assert answer_of(response).splitlines()[1] == (
        f"part 2: image_url image/png {len(picture)} bytes sha256={sha256(picture)}"
    )


@pytest.mark.asyncio
async def test_directives_and_the_echo_come_from_the_text_parts(http: httpx.AsyncClient) -> None:
    content = [text_part("Describe"), image_part(png(4, 4)), text_part("this sim:tokens=4")]

    response = await ask(http, [{"role": "user", "content": content}])

    assert answer_of(response) == "You said “Describe this”."
    failing = [text_part("Hello"), image_part(png(4, 4)), text_part("sim:status=503")]
    assert (await ask(http, [{"role": "user", "content": failing}])).status_code == 503


def error(message: str, param: str, code: str) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }


NO_DATA_PREFIX = (
    "Invalid 'messages[0].content[0].image_url.url'. Expected a base64-encoded data URL with "
    "an image MIME type (e.g. 'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='), but got a value "
    "without the 'data:' prefix."
)
UNSUPPORTED_IMAGE = (
    "You uploaded an unsupported image. Please make sure your image has of one the following "
    "formats: ['png', 'jpeg', 'gif', 'webp']."
)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("messages", "refusal"),
    [
        pytest.param(
            [{"role": "user", "content": [text_part("Hi"), {"type": "audio_url"}]}],
            error(
                "Invalid value: 'audio_url'. Supported values are: 'text' and 'image_url'.",
                "messages[0].content[1].type",
                "invalid_value",
            ),
            id="unknown-type",
        ),
        pytest.param(
            [{"role": "user", "content": [{"text": "no type"}]}],
            error(
                "Invalid value for 'messages[0].content[0]': expected an object with a string "
                "'type'.",
                "messages[0].content[0]",
                "invalid_type",
            ),
            id="no-type",
        ),
        pytest.param(
            [{"role": "user", "content": [{"type": "text", "text": 5}]}],
            error(
                "Invalid value for 'messages[0].content[0].text': expected a string.",
                "messages[0].content[0].text",
                "invalid_type",
            ),
            id="text-not-a-string",
        ),
        pytest.param(
            [{"role": "user", "content": []}],
            error(
                "Invalid 'messages[0].content': empty array. Expected an array with minimum "
                "length 1, but got an empty array instead.",
                "messages[0].content",
                "empty_array",
            ),
            id="no-parts",
        ),
        pytest.param(
            [{"role": "user", "content": [{"type": "image_url", "image_url": "https://x.test"}]}],
            error(
                "Invalid value for 'messages[0].content[0].image_url': expected an object with "
                "a string 'url'.",
                "messages[0].content[0].image_url",
                "invalid_type",
            ),
            id="image-url-not-an-object",
        ),
        pytest.param(
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}}]}],
            error(NO_DATA_PREFIX, "messages[0].content[0].image_url.url", "invalid_value"),
            id="neither-data-nor-http",
        ),
        pytest.param(
            [{"role": "user", "content": [image_part(b"<svg/>", "image/svg+xml")]}],
            error(
                UNSUPPORTED_IMAGE, "messages[0].content[0].image_url.url", "invalid_image_format"
            ),
            id="svg",
        ),
        pytest.param(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,%%"}}
                    ],
                }
            ],
            error(
                UNSUPPORTED_IMAGE, "messages[0].content[0].image_url.url", "invalid_image_format"
            ),
            id="bad-base64",
        ),
        pytest.param(
            [{"role": "user", "content": [image_part(b"\x89PNG", detail="medium")]}],
            error(
                "Invalid value: 'medium'. Supported values are: 'auto', 'low', and 'high'.",
                "messages[0].content[0].image_url.detail",
                "invalid_value",
            ),
            id="bad-detail",
        ),
        pytest.param(
            [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [image_part(b"\x89PNG")]},
            ],
            error(
                "Invalid 'messages[1]'. Image URLs are only allowed for messages with role "
                "'user', but this message with role 'assistant' contains an image URL.",
                "messages[1]",
                "invalid_value",
            ),
            id="image-from-the-assistant",
        ),
    ],
)
async def test_a_malformed_part_is_refused_as_openai_refuses_it(
    http: httpx.AsyncClient, messages: list[dict[str, Any]], refusal: dict[str, Any]
) -> None:
    response = await ask(http, messages)

    assert response.status_code == 400
    assert response.json() == refusal  # the error body only: no answer


@pytest.mark.asyncio
async def test_parts_and_markdown_together_are_refused(http: httpx.AsyncClient) -> None:
    response = await ask(http, [{"role": "user", "content": "sim:parts=1 sim:markdown=1"}])

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_directive"
    assert "choices" not in response.json()
