"""The compatibility matrix's fake upstreams refuse what the real services refuse.

A fake that accepts a request the real service rejects hides the bug a user would hit, so the
strict rules are pinned here, each with the service's own message.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from tests.fakes import brain
from tests.fakes.anthropic_api import AnthropicFake
from tests.fakes.gemini_api import GeminiFake
from tests.fakes.openai_api import OpenAIFake
from tests.fakes.responses_brain import (
    CODEX_BACKEND_PATH,
    CODEX_CLIENT_ID,
    CODEX_TOKEN_PATH,
    ResponsesFake,
    codex_access_token,
)
from tests.fakes.upstream import Recorded, Respond

BASH = {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}
RUN = "Please run the shell command `echo hi`"


def post(fake, path: str, body: dict[str, Any], headers: dict[str, str], query=None) -> Respond:
    return fake.handle(Recorded("POST", path, query or {}, headers, json.dumps(body).encode()))


def body_of(response: Respond) -> Any:
    if response.chunks is None:
        return json.loads(response.body)
    return b"".join(c for c in response.chunks if isinstance(c, bytes)).decode()


# Anthropic ---------------------------------------------------------------------------------

KEY = {"x-api-key": "sk-a", "anthropic-version": "2023-06-01"}


def anthropic_body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-opus-4-8",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


def test_anthropic_rejects_unknown_fields_with_the_apis_message():
    response = post(AnthropicFake(["sk-a"]), "/v1/messages", anthropic_body(foo=1), KEY)
    assert response.status == 400
    assert body_of(response)["error"]["message"] == "foo: Extra inputs are not permitted"


def test_anthropic_beta_fields_need_their_beta():
    body = anthropic_body(context_management={"edits": []})
    refused = post(AnthropicFake(["sk-a"]), "/v1/messages", body, KEY)
    assert (
        body_of(refused)["error"]["message"] == "context_management: Extra inputs are not permitted"
    )
    beta = {**KEY, "anthropic-beta": "context-management-2025-06-27"}
    assert post(AnthropicFake(["sk-a"]), "/v1/messages", body, beta).status == 200


def test_anthropic_oauth_takes_only_bearer_with_the_oauth_beta():
    fake = AnthropicFake(["sk-ant-oat01-x"], oauth=True)
    version = {"anthropic-version": "2023-06-01"}
    assert (
        post(
            fake, "/v1/messages", anthropic_body(), {**version, "x-api-key": "sk-ant-oat01-x"}
        ).status
        == 401
    )
    no_beta = post(
        fake,
        "/v1/messages",
        anthropic_body(),
        {**version, "authorization": "Bearer sk-ant-oat01-x"},
    )
    assert no_beta.status == 401
    assert "OAuth authentication is currently not supported" in body_of(no_beta)["error"]["message"]
    ok = {**version, "authorization": "Bearer sk-ant-oat01-x", "anthropic-beta": "oauth-2025-04-20"}
    assert post(fake, "/v1/messages", anthropic_body(), ok).status == 200


def test_anthropic_tool_use_needs_its_tool_result_next():
    messages = [
        {"role": "user", "content": RUN},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}],
        },
        {"role": "user", "content": "go on"},
    ]
    response = post(AnthropicFake(["sk-a"]), "/v1/messages", anthropic_body(messages=messages), KEY)
    assert response.status == 400
    assert (
        "`tool_use` ids were found without `tool_result` blocks"
        in body_of(response)["error"]["message"]
    )


def test_anthropic_refuses_a_thinking_signature_it_did_not_issue():
    fake = AnthropicFake(["sk-a"])
    forged = {"type": "thinking", "thinking": "x", "signature": "gemini.abc"}
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [forged, {"type": "text", "text": "hello"}]},
        {"role": "user", "content": "again"},
    ]
    response = post(fake, "/v1/messages", anthropic_body(messages=messages), KEY)
    assert (
        body_of(response)["error"]["message"]
        == "messages.1.content.0: Invalid `signature` in `thinking` block"
    )
    forged["signature"] = fake.sign("x")
    assert post(fake, "/v1/messages", anthropic_body(messages=messages), KEY).status == 200


def test_anthropic_streams_a_signed_thinking_block_and_the_bash_call():
    body = anthropic_body(
        stream=True,
        thinking={"type": "adaptive"},
        tools=[{"name": "Bash", "description": "shell", "input_schema": BASH}],
        messages=[{"role": "user", "content": RUN}],
    )
    text = body_of(post(AnthropicFake(["sk-a"]), "/v1/messages", body, KEY))
    assert "signature_delta" in text and '"name": "Bash"' in text and "echo hi" in text


# Gemini ------------------------------------------------------------------------------------

GEMINI = {"x-goog-api-key": "g-key"}
STREAM = "/v1beta/models/gemini-3-pro-preview:streamGenerateContent"


def gemini_request(contents: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    declaration = {"name": "Bash", "parametersJsonSchema": BASH}
    return {"contents": contents, "tools": [{"functionDeclarations": [declaration]}], **extra}


def test_gemini_rejects_unknown_names_like_the_proto_parser():
    fake = GeminiFake(["g-key"], model="gemini-3-pro-preview")
    contents = [{"role": "user", "parts": [{"text": "hi", "cache_control": {}}]}]
    response = post(fake, STREAM, gemini_request(contents), GEMINI, {"alt": ["sse"]})
    assert response.status == 400
    assert body_of(response)["error"]["message"] == (
        'Invalid JSON payload received. Unknown name "cache_control" at '
        "'contents[0].parts[0]': Cannot find field."
    )


def test_gemini_3_wants_its_signature_on_the_current_turns_function_call():
    fake = GeminiFake(["g-key"], model="gemini-3-pro-preview")
    call = {"name": "Bash", "args": {"command": "echo hi"}}
    contents = [
        {"role": "user", "parts": [{"text": RUN}]},
        {"role": "model", "parts": [{"functionCall": call}]},
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "Bash", "response": {"output": "hi"}}}],
        },
    ]
    response = post(fake, STREAM, gemini_request(contents), GEMINI, {"alt": ["sse"]})
    assert response.status == 400
    assert "Function call is missing a thought_signature" in body_of(response)["error"]["message"]
    contents[1]["parts"][0]["thoughtSignature"] = "forged"
    assert post(fake, STREAM, gemini_request(contents), GEMINI, {"alt": ["sse"]}).status == 400
    contents[1]["parts"][0]["thoughtSignature"] = fake.sign('Bash:{"command": "echo hi"}')
    assert post(fake, STREAM, gemini_request(contents), GEMINI, {"alt": ["sse"]}).status == 200
    # A later turn (a new user prompt) makes that call history: no signature needed there.
    del contents[1]["parts"][0]["thoughtSignature"]
    contents += [
        {"role": "model", "parts": [{"text": "done"}]},
        {"role": "user", "parts": [{"text": "hi"}]},
    ]
    assert post(fake, STREAM, gemini_request(contents), GEMINI, {"alt": ["sse"]}).status == 200


def test_gemini_3_ends_a_streamed_answer_with_an_empty_signed_part():
    fake = GeminiFake(["g-key"], model="gemini-3-pro-preview")
    response = post(
        fake,
        STREAM,
        {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        GEMINI,
        {"alt": ["sse"]},
    )
    last = json.loads(body_of(response).strip().split("\r\n\r\n")[-1][6:])
    assert last["candidates"][0]["content"]["parts"] == [
        {"text": "", "thoughtSignature": fake.sign(brain.HELLO)}
    ]


def test_gemini_2_5_pro_refuses_thinking_levels_and_a_zero_budget():
    fake = GeminiFake(["g-key"], model="gemini-2.5-pro")
    path = "/v1beta/models/gemini-2.5-pro:generateContent"
    contents = [{"role": "user", "parts": [{"text": "hi"}]}]
    for config, message in (
        ({"thinkingLevel": "HIGH"}, "Thinking level is not supported for this model."),
        ({"thinkingBudget": 0}, "Budget 0 is invalid. This model only works in thinking mode."),
    ):
        body = {"contents": contents, "generationConfig": {"thinkingConfig": config}}
        assert body_of(post(fake, path, body, GEMINI))["error"]["message"] == message


# OpenAI ------------------------------------------------------------------------------------

BEARER = {"authorization": "Bearer o-key"}


def openai_loop(reasoning_field: str | None) -> dict[str, Any]:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "Bash", "arguments": '{"command":"echo hi"}'},
    }
    assistant: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
    if reasoning_field:
        assistant[reasoning_field] = "thought"
    return {
        "model": "deepseek-reasoner",
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": RUN},
            assistant,
            {"role": "tool", "tool_call_id": "call_1", "content": "hi"},
        ],
    }


def test_openai_rejects_reasoning_content_in_history_with_openais_message():
    fake = OpenAIFake(["o-key"], model="deepseek-reasoner", reasoning=True)
    response = post(fake, "/v1/chat/completions", openai_loop("reasoning_content"), BEARER)
    assert response.status == 400
    assert body_of(response)["error"]["message"] == (
        "Additional properties are not allowed (['reasoning_content'] were unexpected) - 'messages[2]'"
    )
    ok = post(fake, "/v1/chat/completions", openai_loop(None), BEARER)
    assert brain.TOOL_OUTPUT + "hi" in body_of(ok)["choices"][0]["message"]["content"]


def test_openai_tool_calls_need_a_tool_message_for_each_id():
    body = openai_loop(None)
    body["messages"].pop()
    response = post(
        OpenAIFake(["o-key"], model="deepseek-reasoner", reasoning=True),
        "/v1/chat/completions",
        body,
        BEARER,
    )
    assert "did not have response messages: call_1" in body_of(response)["error"]["message"]


def test_openai_strict_reasoning_model_refuses_max_tokens_and_unknown_arguments():
    fake = OpenAIFake(["o-key"], model="gpt-5")
    base = {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}
    assert (
        "max_completion_tokens"
        in body_of(post(fake, "/v1/chat/completions", {**base, "max_tokens": 5}, BEARER))["error"][
            "message"
        ]
    )
    unknown = post(fake, "/v1/chat/completions", {**base, "thinking": {}}, BEARER)
    assert (
        body_of(unknown)["error"]["message"] == "Unrecognized request argument supplied: thinking"
    )


# Responses (OpenAI API key; ChatGPT Codex account) -----------------------------------------

SK = {"authorization": "Bearer sk-r"}


def responses_body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-5",
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": RUN}]}
        ],
        "tools": [{"type": "function", "name": "Bash", "parameters": BASH, "strict": False}],
        "reasoning": {"effort": "medium", "summary": "auto"},
        "include": ["reasoning.encrypted_content"],
        "store": False,
        "stream": False,
        **extra,
    }


def test_responses_rejects_unknown_fields_with_openais_message():
    refused = post(ResponsesFake(["sk-r"], model="gpt-5"), "/v1/responses", responses_body(x=1), SK)
    assert refused.status == 400
    assert body_of(refused)["error"] == {
        "message": "Unknown parameter: 'x'.",
        "type": "invalid_request_error",
        "param": "x",
        "code": "unknown_parameter",
    }


def test_responses_wants_each_call_answered_and_its_reasoning_sent_back():
    fake = ResponsesFake(["sk-r"], model="gpt-5")
    first = body_of(post(fake, "/v1/responses", responses_body(), SK))
    reasoning, call = first["output"]
    assert reasoning["type"] == "reasoning" and reasoning["encrypted_content"]
    assert call["type"] == "function_call" and json.loads(call["arguments"])["command"] == "echo hi"
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "hi"}
    sent_call = {k: call[k] for k in ("type", "call_id", "name", "arguments")}
    sent_reasoning = {k: reasoning[k] for k in ("type", "summary", "encrypted_content")}
    history = responses_body()["input"]
    ok = post(
        fake,
        "/v1/responses",
        responses_body(input=[*history, sent_reasoning, sent_call, output]),
        SK,
    )
    assert body_of(ok)["output"][-1]["content"][0]["text"] == brain.TOOL_OUTPUT + "hi"
    without = post(fake, "/v1/responses", responses_body(input=[*history, sent_call, output]), SK)
    assert "without its required 'reasoning' item" in body_of(without)["error"]["message"]
    unanswered = post(fake, "/v1/responses", responses_body(input=[*history, output]), SK)
    assert "No tool call found for function call output" in body_of(unanswered)["error"]["message"]
    # Each key is its own organisation: the other cannot verify this key's reasoning.
    other = ResponsesFake(["sk-r", "sk-s"], model="gpt-5")
    issued = body_of(post(other, "/v1/responses", responses_body(), SK))["output"][0]
    moved = {k: issued[k] for k in ("type", "summary", "encrypted_content")}
    refused = post(
        other,
        "/v1/responses",
        responses_body(input=[*history, moved]),
        {"authorization": "Bearer sk-s"},
    )
    assert "could not be verified" in body_of(refused)["error"]["message"]


def test_responses_counts_input_tokens_with_only_the_counters_fields():
    fake = ResponsesFake(["sk-r"], model="gpt-5")
    body = {k: v for k, v in responses_body().items() if k in ("model", "input", "tools")}
    counted = body_of(post(fake, "/v1/responses/input_tokens", body, SK))
    assert counted["object"] == "response.input_tokens" and counted["input_tokens"] > 0
    refused = post(fake, "/v1/responses/input_tokens", {**body, "stream": True}, SK)
    assert body_of(refused)["error"]["code"] == "unknown_parameter"


CODEX_ACCESS = [codex_access_token(0, "first"), codex_access_token(1, "second")]


def codex_refresh(fake: ResponsesFake, token: str, **form: str) -> Respond:
    fields = {
        "grant_type": "refresh_token",
        "refresh_token": token,
        "client_id": CODEX_CLIENT_ID,
        **form,
    }
    return fake.handle(
        Recorded(
            "POST",
            CODEX_TOKEN_PATH,
            {},
            {"content-type": "application/x-www-form-urlencoded"},
            urlencode(fields).encode(),
        )
    )


def codex_headers(token: str, workspace: str) -> dict[str, str]:
    return {
        "authorization": f"Bearer {token}",
        "chatgpt-account-id": workspace,
        "accept": "text/event-stream",
    }


def test_codex_serves_only_refreshed_tokens_with_their_workspace_and_rotates_refresh_tokens():
    fake = ResponsesFake(CODEX_ACCESS, model="gpt-5-codex", codex=True)
    seed = fake.account_seed(0)
    body = responses_body(model="gpt-5-codex", stream=True, instructions="")
    expired = post(fake, CODEX_BACKEND_PATH, body, codex_headers(seed["access_token"], "x"))
    assert expired.status == 401
    answer = body_of(codex_refresh(fake, seed["refresh_token"]))
    assert answer["access_token"] == CODEX_ACCESS[0] and fake.refreshes == 1
    reused = codex_refresh(fake, seed["refresh_token"])
    assert reused.status == 401 and body_of(reused)["error"]["code"] == "refresh_token_reused"
    assert codex_refresh(fake, answer["refresh_token"]).status == 200  # the rotated one works
    wrong = post(
        fake, CODEX_BACKEND_PATH, body, codex_headers(CODEX_ACCESS[0], seed["account_id"] + "x")
    )
    assert wrong.status == 403
    ok = post(fake, CODEX_BACKEND_PATH, body, codex_headers(CODEX_ACCESS[0], seed["account_id"]))
    assert ok.status == 200 and "response.completed" in body_of(ok)
    assert ok.headers["x-codex-primary-used-percent"]


def test_codex_wants_store_false_stream_true_and_no_output_limit():
    fake = ResponsesFake(CODEX_ACCESS, model="gpt-5-codex", codex=True)
    codex_refresh(fake, "rt_compat-seed-0")
    headers = codex_headers(CODEX_ACCESS[0], fake.account_seed(0)["account_id"])
    base = responses_body(model="gpt-5-codex", stream=True, instructions="")
    for change, detail in (
        ({"store": True}, "Store must be set to false"),
        ({"stream": False}, "Stream must be set to true"),
        ({"max_output_tokens": 100}, "Unsupported parameter: max_output_tokens"),
    ):
        refused = post(fake, CODEX_BACKEND_PATH, {**base, **change}, headers)
        assert refused.status == 400 and body_of(refused) == {"detail": detail}


def test_codex_answers_a_spent_account_with_usage_limit_reached():
    fake = ResponsesFake(CODEX_ACCESS, model="gpt-5-codex", codex=True)
    limited = fake.rate_limit_response()
    error = body_of(limited)["error"]
    assert limited.status == 429 and error["type"] == "usage_limit_reached"
    assert error["resets_in_seconds"] == 3600 and error["resets_at"] > 0
    assert limited.headers["x-codex-primary-used-percent"] == "100"


def test_the_brain_runs_one_command_a_step_then_answers_with_every_output():
    tools = [brain.Tool("Bash", BASH)]
    prompt = brain.Turn(
        "user", [brain.Part("text", text="run the shell command `a` then the shell command `b`")]
    )
    first = brain.think([prompt], tools, thinking=False)
    assert first.tool_input == {"command": "a"}
    call = brain.Turn("assistant", [brain.Part("tool_call", name="Bash")])
    turns = [prompt, call, brain.Turn("user", [brain.Part("tool_result", text="A")])]
    assert brain.think(turns, tools, thinking=False).tool_input == {"command": "b"}
    turns += [call, brain.Turn("user", [brain.Part("tool_result", text="B")])]
    assert brain.think(turns, tools, thinking=False).text == brain.TOOL_OUTPUT + "A | B"
