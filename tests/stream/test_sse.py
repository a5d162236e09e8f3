import random
from itertools import combinations

import pytest

from bench.sse import as_tuples, httpx_sse_events, openai_stream, our_events, random_reads
from streaming.sse import Event, SSEDecoder


def decode(*chunks: bytes) -> list[Event]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.close()


# The examples from the HTML standard's "Event stream format" section.


def test_spec_example_stock_ticker_joins_data_lines_with_lf() -> None:
    stream = b"data: YHOO\ndata: +2\ndata: 10\n\n"

    assert decode(stream) == [Event(data="YHOO\n+2\n10")]


def test_spec_example_comment_and_id_blocks() -> None:
    stream = (
        b": test stream\n\n"
        b"data: first event\nid: 1\n\n"
        b"data:second event\nid\n\n"
        b"data:  third event\n\n"
    )

    assert decode(stream) == [
        Event(data="first event", id="1"),
        Event(data="second event", id=""),
        Event(data=" third event", id=""),
    ]


def test_spec_example_empty_data_lines_and_unterminated_last_block() -> None:
    stream = b"data\n\ndata\ndata\n\ndata:"

    assert decode(stream) == [Event(data=""), Event(data="\n")]


def test_spec_example_one_space_after_colon_is_removed() -> None:
    assert decode(b"data:test\n\ndata: test\n\n") == [Event(data="test"), Event(data="test")]


# Line ends.


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_line_end_each_kind_ends_lines_and_blocks(eol: bytes) -> None:
    stream = b"data: a" + eol + b"data: b" + eol + eol + b"data: c" + eol + eol

    assert decode(stream) == [Event(data="a\nb"), Event(data="c")]


def test_line_end_cr_then_lf_in_next_feed_is_one_line_end() -> None:
    assert decode(b"data: a\r", b"\ndata: b\r\n\r\n") == [Event(data="a\nb")]


def test_line_end_cr_then_lf_across_an_empty_feed_is_one_line_end() -> None:
    assert decode(b"data: a\r", b"", b"\ndata: b\r\n\r\n") == [Event(data="a\nb")]


def test_line_end_two_crs_are_two_line_ends() -> None:
    assert decode(b"data: a\r", b"\r") == [Event(data="a")]


def test_line_end_cr_dispatches_without_waiting_for_more_input() -> None:
    assert SSEDecoder().feed(b"data: a\r\r") == [Event(data="a")]


# Byte order mark.


def test_bom_at_stream_start_is_stripped() -> None:
    assert decode(b"\xef\xbb\xbfdata: x\n\n") == [Event(data="x")]


@pytest.mark.parametrize("split", [1, 2, 3])
def test_bom_split_across_feeds_is_stripped(split: int) -> None:
    stream = b"\xef\xbb\xbfdata: x\n\n"

    assert decode(stream[:split], stream[split:]) == [Event(data="x")]


def test_bom_fed_one_byte_at_a_time_is_stripped() -> None:
    stream = b"\xef\xbb\xbfdata: x\n\n"

    assert decode(*(stream[i : i + 1] for i in range(len(stream)))) == [Event(data="x")]


def test_bom_second_one_is_kept_and_makes_an_unknown_field() -> None:
    assert decode(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n") == []


def test_bom_after_stream_start_is_kept_and_makes_an_unknown_field() -> None:
    assert decode(b"data: a\n\n\xef\xbb\xbfdata: b\n\n") == [Event(data="a")]


# Fields.


def test_comment_lines_are_ignored() -> None:
    assert decode(b": hello\ndata: a\n:\n: data: b\n\n") == [Event(data="a")]


def test_unknown_and_wrongly_cased_fields_are_ignored() -> None:
    assert decode(b"foo: bar\nData: x\ndata: a\nDATA: y\n\n") == [Event(data="a")]


def test_value_keeps_later_colons_and_extra_spaces() -> None:
    assert decode(b"data:  a: b \n\n") == [Event(data=" a: b ")]


def test_event_field_sets_the_type_of_its_block_only() -> None:
    stream = b"event: delta\ndata: a\n\ndata: b\n\n"

    assert decode(stream) == [Event(event="delta", data="a"), Event(data="b")]


def test_event_field_without_value_means_message() -> None:
    assert decode(b"event\ndata: a\n\n") == [Event(event="message", data="a")]


def test_data_field_without_colon_appends_an_empty_line() -> None:
    assert decode(b"data: a\ndata\ndata: b\n\n") == [Event(data="a\n\nb")]


def test_id_persists_across_later_events() -> None:
    stream = b"id: 7\ndata: a\n\ndata: b\n\nid: 8\ndata: c\n\n"

    assert decode(stream) == [
        Event(data="a", id="7"),
        Event(data="b", id="7"),
        Event(data="c", id="8"),
    ]


def test_id_containing_nul_is_ignored() -> None:
    stream = b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"

    assert decode(stream) == [Event(data="a", id="1"), Event(data="b", id="1")]


def test_last_event_id_is_committed_only_at_a_blank_line() -> None:
    decoder = SSEDecoder()

    decoder.feed(b"id: 5\ndata: a\n")
    assert decoder.last_event_id == ""
    decoder.feed(b"\n")
    assert decoder.last_event_id == "5"


def test_last_event_id_is_committed_by_a_block_without_data() -> None:
    decoder = SSEDecoder()

    assert decoder.feed(b"id: 9\n\n") == []
    assert decoder.last_event_id == "9"


def test_last_event_id_survives_close() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"id: 3\ndata: a\n\nid: 4\ndata: b\n")

    assert decoder.close() == []
    assert decoder.last_event_id == "3"


def test_retry_with_digits_only_is_an_int_on_its_event() -> None:
    stream = b"retry: 3000\ndata: a\n\ndata: b\n\n"

    assert decode(stream) == [Event(data="a", retry=3000), Event(data="b")]


@pytest.mark.parametrize(
    "value",
    [b"10a", b"", b" 10", b"-1", b"1.5", "\uff13".encode(), "\u00b3".encode()],
    ids=["letter", "empty", "two-spaces", "negative", "decimal", "fullwidth", "superscript"],
)
def test_retry_not_all_ascii_digits_is_ignored(value: bytes) -> None:
    assert decode(b"retry: " + value + b"\ndata: a\n\n") == [Event(data="a")]


def test_retry_without_colon_is_ignored() -> None:
    assert decode(b"retry\ndata: a\n\n") == [Event(data="a")]


# Dispatch.


def test_block_without_data_dispatches_nothing_and_leaks_no_event_type() -> None:
    assert decode(b"event: x\n\n") == []
    assert decode(b"event: x\nretry: 5\n\ndata: a\n\n") == [Event(data="a")]


def test_blank_lines_alone_dispatch_nothing() -> None:
    assert decode(b"\n\r\n\r\n\n") == []


def test_unterminated_event_after_complete_line_is_discarded_at_close() -> None:
    assert decode(b"data: x\n") == []


def test_unterminated_partial_line_is_discarded_at_close() -> None:
    assert decode(b"data: x") == []


def test_close_starts_a_fresh_stream() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"event: old\ndata: x\ndata: y")

    assert decoder.close() == []
    assert decoder.feed(b"\xef\xbb\xbfdata: z\n\n") == [Event(data="z")]


# UTF-8.

UNICODE_STREAM = "data: aé€🙂z\n\n".encode()


@pytest.mark.parametrize("split", range(len(UNICODE_STREAM) + 1))
def test_utf8_split_at_any_byte_decodes_correctly(split: int) -> None:
    events = decode(UNICODE_STREAM[:split], UNICODE_STREAM[split:])

    assert events == [Event(data="aé€🙂z")]


def test_utf8_invalid_bytes_become_replacement_characters() -> None:
    assert decode(b"data: \xff ok\n\n") == [Event(data="\ufffd ok")]


def test_utf8_sequence_cut_by_a_line_end_becomes_a_replacement_character() -> None:
    assert decode(b"data: \xe2\x82\ndata: b\n\n") == [Event(data="\ufffd\nb")]


# Chunk boundaries never change the result.

REALISTIC_STREAM = (
    b": keep-alive\n\n"
    b'data: {"choices":[{"delta":{"content":"H\xc3\xa9"}}]}\r\n\r\n'
    b'event: delta\rid: 1\rdata: {"content":"\xe6\x97\xa5\xe6\x9c\xac"}\r\r'
    b'data: {"content":"\xf0\x9f\x99\x82 ok"}\n'
    b'data: {"content":"more"}\n\n'
    b"retry: 1500\r\n"
    b"data: [DONE]\n\n"
)
REALISTIC_EVENTS = [
    Event(data='{"choices":[{"delta":{"content":"Hé"}}]}'),
    Event(event="delta", data='{"content":"日本"}', id="1"),
    Event(data='{"content":"🙂 ok"}\n{"content":"more"}', id="1"),
    Event(data="[DONE]", id="1", retry=1500),
]
SHORT_STREAM = b": c\ndata: \xc3\xa9\r\n\r\nid: 2\rdata: \xf0\x9f\x99\x82\r\rdata: x\n\n"
SHORT_EVENTS = [Event(data="é"), Event(data="🙂", id="2"), Event(data="x", id="2")]


def test_realistic_stream_in_one_feed() -> None:
    assert decode(REALISTIC_STREAM) == REALISTIC_EVENTS


def test_realistic_stream_split_once_anywhere_gives_the_same_events() -> None:
    for i in range(len(REALISTIC_STREAM) + 1):
        events = decode(REALISTIC_STREAM[:i], REALISTIC_STREAM[i:])
        assert events == REALISTIC_EVENTS, f"split at {i}"


def test_realistic_stream_one_byte_at_a_time_gives_the_same_events() -> None:
    chunks = (REALISTIC_STREAM[i : i + 1] for i in range(len(REALISTIC_STREAM)))

    assert decode(*chunks) == REALISTIC_EVENTS


def test_short_stream_split_twice_anywhere_gives_the_same_events() -> None:
    assert decode(SHORT_STREAM) == SHORT_EVENTS
    for i, j in combinations(range(len(SHORT_STREAM) + 1), 2):
        events = decode(SHORT_STREAM[:i], SHORT_STREAM[i:j], SHORT_STREAM[j:])
        assert events == SHORT_EVENTS, f"splits at {i}, {j}"


def test_long_line_in_small_chunks_decodes_correctly() -> None:
    # Exercises the path that appends to a partial line without rescanning it; a decoder that
    # searched the whole buffered line on every feed would take minutes here, not milliseconds.
    payload = b"x" * (2 * 1024 * 1024)
    stream = b"data: " + payload + b"\n\n"

    events = decode(*(stream[i : i + 64] for i in range(0, len(stream), 64)))

    assert events == [Event(data=payload.decode())]


# The same events as httpx-sse, on streams it decodes to the spec too. (It does not always: it
# dispatches blocks without data, takes "retry: -1" and reads a BOM as part of the first line.)


@pytest.mark.parametrize("seed", range(6))
def test_chat_stream_in_random_reads_gives_the_same_events_as_httpx_sse(seed: int) -> None:
    reads = random_reads(openai_stream(300, seed=seed), seed=seed)

    events = as_tuples(our_events(reads))

    assert len(events) == 304
    assert events == as_tuples(httpx_sse_events(reads))


def mixed_line_ends(stream: bytes, seed: int) -> bytes:
    """``stream`` with each block's lines ended by LF, CRLF or CR, and ids, types, comments."""
    rng = random.Random(seed)
    blocks = []
    for i, block in enumerate(stream.split(b"\n\n")[:-1]):
        extra = [b": keep-alive", b"event: delta", b"id: %d" % i, b"retry: 1500"]
        lines = [*rng.sample(extra, rng.randint(0, 2)), *block.split(b"\n")]
        eol = rng.choice((b"\n", b"\r\n", b"\r"))
        blocks.append(eol.join(lines) + eol + eol)
    return b"".join(blocks)


@pytest.mark.parametrize("seed", range(6))
def test_cr_and_crlf_line_ends_in_random_reads_give_the_same_events_as_httpx_sse(
    seed: int,
) -> None:
    stream = mixed_line_ends(openai_stream(300, seed=seed), seed)
    assert b"\r\n" in stream
    assert b"\r\r" in stream
    reads = random_reads(stream, seed=seed, largest=512)

    events = as_tuples(our_events(reads))

    assert len(events) == 304
    assert events == as_tuples(httpx_sse_events(reads))
    assert events == as_tuples(our_events([stream]))


# Blocks of one "data: " line, the common case, which the decoder takes whole.

DATA_BLOCKS = b'data: {"c":"caf\xc3\xa9"}\n\ndata: \xf0\x9f\x99\x82 x\n\ndata: [DONE]\n\n'
DATA_EVENTS = [Event(data='{"c":"café"}'), Event(data="🙂 x"), Event(data="[DONE]")]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_data_blocks_split_twice_anywhere_give_the_same_events(eol: bytes) -> None:
    # Covers splits inside a multi-byte character, right after "data:", between CR and LF and
    # between the two line ends of a block.
    stream = DATA_BLOCKS.replace(b"\n", eol)

    for i, j in combinations(range(len(stream) + 1), 2):
        events = decode(stream[:i], stream[i:j], stream[j:])
        assert events == DATA_EVENTS, f"splits at {i}, {j}"


def test_data_block_after_a_data_line_of_an_earlier_feed_is_a_separate_event() -> None:
    assert decode(b"data: a\n", b"\ndata: b\n\ndata: c\n\n") == [
        Event(data="a"),
        Event(data="b"),
        Event(data="c"),
    ]


def test_data_line_continuing_a_block_of_an_earlier_feed_joins_it() -> None:
    assert decode(b"data: a\n", b"data: b\n\ndata: c\n\n") == [
        Event(data="a\nb"),
        Event(data="c"),
    ]


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        (b"event: delta\n", Event(event="delta", data="x")),
        (b"retry: 10\n", Event(data="x", retry=10)),
        (b"id: 7\n", Event(data="x", id="7")),
    ],
    ids=["event", "retry", "id"],
)
def test_data_line_after_a_field_of_an_earlier_feed_is_in_its_block(
    first: bytes, expected: Event
) -> None:
    events = decode(first, b"data: x\n\ndata: y\n\n")

    assert events == [expected, Event(data="y", id=expected.id)]


def test_data_blocks_around_other_blocks_keep_their_order_and_ids() -> None:
    stream = (
        b"data: a\n\n"
        b"data: b\ndata: c\n\n"
        b"data: d\nid: 2\n\n"
        b"data: e\n\n"
        b"event: x\ndata: f\n\n"
        b"data: g\n"
    )

    assert SSEDecoder().feed(stream) == [
        Event(data="a"),
        Event(data="b\nc"),
        Event(data="d", id="2"),
        Event(data="e", id="2"),
        Event(event="x", data="f", id="2"),
    ]


@pytest.mark.parametrize(
    "blocks",
    [b"data: a\n\n", b"data: a\n\ndata: b\n", b"data: a\n\ndata: b\n\n"],
    ids=["one", "one-then-open", "two"],
)
def test_data_block_commits_the_last_event_id(blocks: bytes) -> None:
    decoder = SSEDecoder()

    decoder.feed(b"id: 4\n")
    assert decoder.last_event_id == ""
    decoder.feed(blocks)
    assert decoder.last_event_id == "4"


def test_data_block_after_extra_blank_lines_is_an_event() -> None:
    assert decode(b"data: a\n\n\n\ndata: b\n\n") == [Event(data="a"), Event(data="b")]


def test_data_block_keeps_a_second_leading_space_and_an_empty_value() -> None:
    stream = b"data: a\n\ndata:  b\n\ndata: \n\ndata:c\n\n"

    assert decode(stream) == [Event(data="a"), Event(data=" b"), Event(data=""), Event(data="c")]


def test_data_block_with_invalid_utf8_gets_replacement_characters() -> None:
    stream = b"data: a\n\ndata: \xff\xe2\x82\n\ndata: c\n\n"

    assert decode(stream) == [Event(data="a"), Event(data="\ufffd\ufffd"), Event(data="c")]


def test_data_block_event_equals_one_built_by_the_dataclass() -> None:
    [event] = SSEDecoder().feed(b"data: a\n\ndata: b\n\n")[1:]

    assert event == Event("message", "b", "", None)
    assert hash(event) == hash(Event(data="b"))
    assert repr(event) == repr(Event(data="b"))
