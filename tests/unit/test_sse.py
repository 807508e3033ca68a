from __future__ import annotations

import pytest

from claude_api.sse import KEEPALIVE_COMMENT, SSEEvent, SSEParser, encode_event

STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_1"}}\n\n'
    b": keep-alive\n\n"
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","delta":{"text":"h\xc3\xa9llo"}}\n\n'
    b"event: ping\n"
    b'data: {"type": "ping"}\n\n'
    b'data: {"only":"data"}\n\n'
    b"event: message_stop\n"
    b'data: {"type":"message_stop"}\n\n'
)
EXPECTED = [
    SSEEvent("message_start", b'{"type":"message_start","message":{"id":"msg_1"}}'),
    SSEEvent(
        "content_block_delta", b'{"type":"content_block_delta","delta":{"text":"h\xc3\xa9llo"}}'
    ),
    SSEEvent("ping", b'{"type": "ping"}'),
    SSEEvent("", b'{"only":"data"}'),
    SSEEvent("message_stop", b'{"type":"message_stop"}'),
]


def parse(*chunks: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    events = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.flush()


def with_endings(stream: bytes, ending: bytes) -> bytes:
    return stream.replace(b"\n", ending)


def test_it_parses_a_whole_stream() -> None:
    assert parse(STREAM) == EXPECTED


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_it_gives_the_same_events_at_every_split_point(ending: bytes) -> None:
    stream = with_endings(STREAM, ending)
    for split in range(len(stream) + 1):
        assert parse(stream[:split], stream[split:]) == EXPECTED, split


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_it_gives_the_same_events_fed_byte_by_byte(ending: bytes) -> None:
    stream = with_endings(STREAM, ending)
    assert parse(*(stream[i : i + 1] for i in range(len(stream)))) == EXPECTED


def test_it_gives_the_same_events_at_every_pair_of_split_points() -> None:
    stream = with_endings(STREAM[:120], b"\r\n")
    expected = parse(stream)
    for first in range(len(stream)):
        for second in range(first, len(stream)):
            chunks = (stream[:first], stream[first:second], stream[second:])
            assert parse(*chunks) == expected, (first, second)


def test_it_emits_each_event_as_soon_as_it_is_complete() -> None:
    for ending in (b"\n", b"\r\n", b"\r"):
        parser = SSEParser()
        first = with_endings(b"event: a\ndata: 1\n\n", ending)
        assert parser.feed(first) == [SSEEvent("a", b"1")], ending
        assert parser.feed(with_endings(b"event: b\ndata: 2\n\n", ending)) == [SSEEvent("b", b"2")]
        assert parser.flush() == []


def test_it_joins_a_cr_at_the_end_of_a_chunk_with_a_lf_at_the_start_of_the_next() -> None:
    parser = SSEParser()
    assert parser.feed(b"event: a\r") == []
    assert parser.feed(b"\ndata: 1\r") == []
    assert parser.feed(b"\n\r") == [SSEEvent("a", b"1")]
    # The \n completing that last \r\n must not count as another blank line.
    assert parser.feed(b"\ndata: 2\r\n") == []
    assert parser.feed(b"\r\n") == [SSEEvent("", b"2")]


def test_it_does_not_delay_a_cr_cr_framed_event() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: 1\r\r") == [SSEEvent("", b"1")]
    assert parser.feed(b"data: 2\r\r") == [SSEEvent("", b"2")]


def test_it_accepts_mixed_line_endings() -> None:
    assert parse(b"event: a\r\ndata: 1\n\revent: b\rdata: 2\r\n\r\n") == [
        SSEEvent("a", b"1"),
        SSEEvent("b", b"2"),
    ]


def test_it_ignores_comments() -> None:
    assert parse(b": keep-alive\n\n:another\n\n") == []
    assert parse(b": note\nevent: a\n: inside\ndata: 1\n\n") == [SSEEvent("a", b"1")]
    assert parse(KEEPALIVE_COMMENT * 3) == []


def test_it_joins_multi_line_data_with_newlines() -> None:
    assert parse(b"event: a\ndata: line 1\ndata: line 2\ndata:\ndata:  indented\n\n") == [
        SSEEvent("a", b"line 1\nline 2\n\n indented")
    ]


def test_it_reads_fields_without_a_space_after_the_colon() -> None:
    assert parse(b"event:a\ndata:{}\n\n") == [SSEEvent("a", b"{}")]


def test_it_ignores_id_and_retry_fields() -> None:
    assert parse(b"id: 7\nretry: 1000\nevent: a\ndata: 1\n\n") == [SSEEvent("a", b"1")]
    assert parse(b"id: 7\nretry: 1000\n\n") == []


def test_it_keeps_events_with_a_name_but_no_data() -> None:
    assert parse(b"event: ping\n\n") == [SSEEvent("ping", b"")]


def test_it_skips_empty_blocks() -> None:
    assert parse(b"\n\n\n\n\n") == []
    assert parse(b"data: 1\n\n\n\n\ndata: 2\n\n") == [SSEEvent("", b"1"), SSEEvent("", b"2")]


def test_it_flushes_an_unterminated_last_event() -> None:
    parser = SSEParser()
    assert parser.feed(b"event: a\ndata: 1\n\nevent: b\ndata: 2") == [SSEEvent("a", b"1")]
    assert parser.pending == b"event: b\ndata: 2"
    assert parser.flush() == [SSEEvent("b", b"2")]
    assert parser.pending == b""
    assert parser.flush() == []


def test_it_flushes_an_event_ended_by_a_single_line_end() -> None:
    assert parse(b"data: 1\r\n") == [SSEEvent("", b"1")]
    assert parse(b"data: 1\r") == [SSEEvent("", b"1")]


def test_it_flushes_nothing_when_only_blank_lines_remain() -> None:
    parser = SSEParser()
    parser.feed(b"\n")
    assert parser.flush() == []


def test_it_ignores_empty_chunks() -> None:
    parser = SSEParser()
    assert parser.feed(b"") == []
    assert parser.feed(b"data: 1\n") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\n") == [SSEEvent("", b"1")]


def test_it_hands_over_a_bare_json_error_block() -> None:
    body = b'{\n  "error": {\n    "code": 429,\n    "message": "Resource exhausted",\n    "status": "RESOURCE_EXHAUSTED"\n  }\n}\n'
    events = parse(body)
    assert len(events) == 1
    assert events[0].name == ""
    assert events[0].json() == {
        "error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}
    }


def test_it_hands_over_a_bare_json_error_between_events() -> None:
    stream = b'data: {"a":1}\n\n[{\n  "error": {"code": 503}\n}]\n\ndata: {"b":2}\n\n'
    events = parse(stream)
    assert events[0] == SSEEvent("", b'{"a":1}')
    assert events[1].name == "" and events[1].json() == [{"error": {"code": 503}}]
    assert events[2] == SSEEvent("", b'{"b":2}')


def test_it_reads_json_data() -> None:
    assert SSEEvent("x", b'{"a": [1, 2]}').json() == {"a": [1, 2]}


def test_it_encodes_events() -> None:
    assert SSEEvent("message_stop", b'{"type":"message_stop"}').encode() == (
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    assert encode_event("error", {"type": "error", "error": {"type": "api_error"}}) == (
        b'event: error\ndata: {"type":"error","error":{"type":"api_error"}}\n\n'
    )


def test_it_round_trips_encoded_events() -> None:
    events = [
        *EXPECTED[:3],
        SSEEvent("multi", b"line 1\nline 2\n\nline 4"),
        SSEEvent("empty", b""),
    ]
    assert parse(b"".join(e.encode() for e in events)) == events
    encoded = encode_event("content_block_delta", {"type": "x", "text": "a\nb \u00e9"})
    (event,) = parse(encoded)
    assert event.name == "content_block_delta"
    assert event.json() == {"type": "x", "text": "a\nb \u00e9"}


def test_it_keeps_utf8_split_across_chunks() -> None:
    data = 'data: {"t":"\u00e9\u4e2d\U0001f600"}\n\n'.encode()
    for split in range(len(data) + 1):
        (event,) = parse(data[:split], data[split:])
        assert event.json() == {"t": "\u00e9\u4e2d\U0001f600"}
