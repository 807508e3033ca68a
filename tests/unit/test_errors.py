from __future__ import annotations

import orjson
import pytest

from claude_api.errors import (
    AllCoolingDown,
    AuthenticationFailed,
    InvalidRequest,
    MethodNotAllowed,
    NoCredentialAvailable,
    NotFound,
    PermissionDenied,
    ProxyError,
    RequestTooLarge,
    UpstreamError,
    envelope_from_upstream,
)

# envelope_from_upstream -------------------------------------------------------------------


def test_it_reads_an_anthropic_envelope() -> None:
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    assert envelope_from_upstream(529, body) == ("overloaded_error", "Overloaded", "")


def test_it_keeps_the_upstream_type_and_message_of_a_400() -> None:
    body = (
        b'{"error":{"message":"Your input exceeds the context window",'
        b'"type":"invalid_request_error","code":"context_too_large"}}'
    )
    assert envelope_from_upstream(400, body) == (
        "invalid_request_error",
        "Your input exceeds the context window",
        "context_too_large",
    )


def test_it_keeps_rate_limit_error_on_a_429() -> None:
    body = b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'
    assert envelope_from_upstream(429, body) == ("rate_limit_error", "slow down", "")


def test_it_reads_an_openai_error() -> None:
    body = (
        b'{"error":{"message":"This model\'s maximum context length is 8192 tokens",'
        b'"type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}'
    )
    assert envelope_from_upstream(400, body) == (
        "invalid_request_error",
        "This model's maximum context length is 8192 tokens",
        "context_length_exceeded",
    )


def test_it_reads_an_openai_error_without_a_type() -> None:
    body = b'{"error":{"message":"Rate limit reached","type":null,"code":null}}'
    assert envelope_from_upstream(429, body) == ("rate_limit_error", "Rate limit reached", "")


def test_it_reads_a_google_error() -> None:
    body = orjson.dumps(
        {
            "error": {
                "code": 429,
                "message": "Resource has been exhausted (e.g. check quota).",
                "status": "RESOURCE_EXHAUSTED",
            }
        }
    )
    assert envelope_from_upstream(429, body) == (
        "rate_limit_error",
        "Resource has been exhausted (e.g. check quota).",
        "",
    )


def test_it_reads_a_list_wrapped_google_error() -> None:
    body = b'[{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}]'
    assert envelope_from_upstream(400, body) == (
        "invalid_request_error",
        "API key not valid.",
        "",
    )


def test_it_reads_a_top_level_type_and_message() -> None:
    body = b'{"type":"overloaded_error","message":"busy"}'
    assert envelope_from_upstream(529, body) == ("overloaded_error", "busy", "")
    generic = b'{"type":"error","message":"nope"}'
    assert envelope_from_upstream(503, generic) == ("api_error", "nope", "")


def test_it_reads_a_detail_field() -> None:
    assert envelope_from_upstream(404, b'{"detail":"Not Found"}') == (
        "not_found_error",
        "Not Found",
        "",
    )


def test_it_reads_a_string_error_field() -> None:
    assert envelope_from_upstream(401, b'{"error":"Invalid API key"}') == (
        "authentication_error",
        "Invalid API key",
        "",
    )


def test_it_uses_the_code_when_there_is_no_message() -> None:
    body = b'{"error":{"code":"model_not_found"}}'
    assert envelope_from_upstream(404, body) == (
        "not_found_error",
        "model_not_found",
        "model_not_found",
    )


def test_it_uses_the_status_phrase_for_an_empty_error_object() -> None:
    assert envelope_from_upstream(503, b'{"error":{}}') == ("api_error", "Service unavailable", "")


def test_it_passes_plain_text_through() -> None:
    assert envelope_from_upstream(502, b"boom") == ("api_error", "boom", "")
    assert envelope_from_upstream(502, "  boom \n") == ("api_error", "boom", "")


def test_it_truncates_long_plain_text() -> None:
    error_type, message, _ = envelope_from_upstream(500, b"x" * 5000)
    assert error_type == "api_error"
    assert message == "x" * 2000


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        b"  <!DOCTYPE html><html><head><title>Error</title></head></html>",
    ],
)
def test_it_does_not_echo_html(body: bytes) -> None:
    assert envelope_from_upstream(502, body) == ("api_error", "Bad gateway", "")


@pytest.mark.parametrize("body", [b"", None, "", b"   "])
def test_it_uses_the_status_phrase_for_an_empty_body(body: bytes | str | None) -> None:
    assert envelope_from_upstream(503, body) == ("api_error", "Service unavailable", "")


def test_it_names_an_unknown_status_without_a_phrase() -> None:
    assert envelope_from_upstream(418, b"") == (
        "invalid_request_error",
        "Upstream returned HTTP 418",
        "",
    )


def test_it_survives_invalid_utf8() -> None:
    error_type, message, _ = envelope_from_upstream(500, b"bad \xff\xfe bytes")
    assert error_type == "api_error"
    assert message.startswith("bad ")


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
        (599, "api_error"),
    ],
)
def test_it_derives_the_type_from_the_status(status: int, error_type: str) -> None:
    assert envelope_from_upstream(status, b"whatever")[0] == error_type
    assert envelope_from_upstream(status, b'{"error":{"message":"m"}}')[0] == error_type


# The proxy's own errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "error_type"),
    [
        (InvalidRequest("m"), 400, "invalid_request_error"),
        (AuthenticationFailed("m"), 401, "authentication_error"),
        (PermissionDenied("m"), 403, "permission_error"),
        (NotFound("m"), 404, "not_found_error"),
        (MethodNotAllowed("m"), 405, "invalid_request_error"),
        (RequestTooLarge("m"), 413, "request_too_large"),
        (NoCredentialAvailable("m"), 503, "api_error"),
        (ProxyError("m"), 500, "api_error"),
    ],
)
def test_it_gives_each_error_its_status_and_type(
    error: ProxyError, status: int, error_type: str
) -> None:
    assert (error.status, error.error_type) == (status, error_type)
    assert orjson.loads(error.body()) == {
        "type": "error",
        "error": {"type": error_type, "message": "m"},
    }


def test_it_adds_the_request_id_to_the_envelope() -> None:
    assert InvalidRequest("m").envelope("req_1")["request_id"] == "req_1"
    assert "request_id" not in InvalidRequest("m").envelope()


def test_it_overrides_status_and_type() -> None:
    error = ProxyError("m", status=418, error_type="teapot", headers={"x-a": "1"})
    assert (error.status, error.error_type) == (418, "teapot")
    assert error.response_headers() == {"x-a": "1"}


def test_it_tells_clients_not_to_retry_a_401() -> None:
    error = AuthenticationFailed("Invalid API key", headers={"x-a": "1"})
    assert error.response_headers() == {"x-a": "1", "x-should-retry": "false"}
    assert error.headers == {"x-a": "1"}  # not mutated


@pytest.mark.parametrize(
    ("seconds", "header"), [(59.2, "60"), (60.0, "60"), (0.2, "1"), (0, "1"), (-5, "1")]
)
def test_it_rounds_the_all_cooling_down_retry_after_up(seconds: float, header: str) -> None:
    error = AllCoolingDown("claude-x", seconds)
    assert error.response_headers() == {"retry-after": header}
    assert error.retry_after == int(header)
    assert (error.status, error.error_type) == (429, "rate_limit_error")


def test_it_names_the_model_and_the_wait_when_all_are_cooling_down() -> None:
    error = AllCoolingDown("claude-sonnet-4-6", 59.5, "rate_limited")
    assert "All credentials for model claude-sonnet-4-6 are cooling down" in error.message
    assert "(rate_limited)" in error.message
    assert "60 s" in error.message


# UpstreamError ----------------------------------------------------------------------------


def test_it_keeps_the_upstream_status_and_type() -> None:
    error = UpstreamError("slow down", status=429, error_type="rate_limit_error")
    assert (error.status, error.upstream_status, error.error_type) == (
        429,
        429,
        "rate_limit_error",
    )
    assert not error.request_fault


def test_it_derives_the_upstream_error_type_from_the_status() -> None:
    assert UpstreamError("x", status=529).error_type == "overloaded_error"


def test_it_answers_502_when_there_was_no_upstream_answer() -> None:
    error = UpstreamError("connection refused", status=0)
    assert (error.status, error.upstream_status, error.error_type) == (502, 0, "api_error")


def test_it_answers_504_for_an_upstream_timeout() -> None:
    error = UpstreamError("read timeout", status=0, error_type="timeout_error")
    assert (error.status, error.upstream_status, error.error_type) == (504, 0, "timeout_error")


@pytest.mark.parametrize("status", [429, 503, 529])
def test_it_passes_the_upstream_retry_after_on(status: int) -> None:
    error = UpstreamError("x", status=status, upstream_headers={"retry-after": "30"})
    assert error.response_headers() == {"retry-after": "30"}


@pytest.mark.parametrize("status", [400, 500, 502])
def test_it_does_not_pass_retry_after_on_other_statuses(status: int) -> None:
    error = UpstreamError("x", status=status, upstream_headers={"retry-after": "30"})
    assert error.response_headers() == {}


def test_it_turns_a_body_retry_delay_into_a_retry_after() -> None:
    assert UpstreamError("x", status=429, retry_after=12.3).response_headers() == {
        "retry-after": "13"
    }
    assert UpstreamError("x", status=429, retry_after=0.0).response_headers() == {
        "retry-after": "1"
    }
    assert UpstreamError("x", status=503, retry_after=12.3).response_headers() == {}


def test_it_prefers_the_upstream_header_over_the_body_delay() -> None:
    error = UpstreamError("x", status=429, upstream_headers={"retry-after": "5"}, retry_after=99.0)
    assert error.response_headers() == {"retry-after": "5"}


def test_it_keeps_what_the_cooldown_policy_needs() -> None:
    error = UpstreamError(
        "x", status=400, code="context_length_exceeded", raw_body=b"{}", retry_after=3.0
    )
    assert (error.code, error.raw_body, error.body_retry_after) == (
        "context_length_exceeded",
        b"{}",
        3.0,
    )
    assert error.upstream_headers == {}
