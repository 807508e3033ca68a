"""The Claude Messages API surface: thin async views that authenticate, validate, delegate."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseBase, JsonResponse
from ninja import Router

from accounts.pool import pool
from claude_api import auth, limits, models_list, streaming
from claude_api.dispatch import Dispatch
from claude_api.errors import NotFound, PermissionDenied, ProxyError, RequestTooLarge
from claude_api.request import (
    COUNT_TOKENS,
    MESSAGES,
    ClientRequest,
    is_streaming,
    parse_body,
    validate,
)

router = Router()


@router.post("/messages")
async def create_message(request: HttpRequest) -> HttpResponseBase:
    dispatch = await _dispatch(request, MESSAGES)
    if dispatch.request.stream:
        return await streaming.stream_response(dispatch)
    return await streaming.reply_response(dispatch)


@router.post("/messages/count_tokens")
async def count_tokens(request: HttpRequest) -> HttpResponseBase:
    return await streaming.reply_response(await _dispatch(request, COUNT_TOKENS))


@router.get("/models")
async def list_models(request: HttpRequest) -> HttpResponseBase:
    snapshot = await pool.current()
    client_key = await auth.authenticate(request, snapshot)
    page = models_list.page(
        snapshot,
        client_key,
        limit=request.GET.get("limit"),
        after_id=request.GET.get("after_id"),
        before_id=request.GET.get("before_id"),
    )
    return JsonResponse(page)


@router.get("/models/{path:model_id}")
async def get_model(request: HttpRequest, model_id: str) -> HttpResponseBase:
    snapshot = await pool.current()
    client_key = await auth.authenticate(request, snapshot)
    return JsonResponse(models_list.one(snapshot, client_key, model_id))


async def _dispatch(request: HttpRequest, endpoint: str) -> Dispatch:
    snapshot = await pool.current()
    client_key = await auth.authenticate(request, snapshot)
    limit = snapshot.config.max_request_body_bytes
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if (declared.isdigit() and int(declared) > limit) or len(request.body) > limit:
        raise RequestTooLarge(f"The request body exceeds the {limit}-byte limit.")
    body = parse_body(request.body)
    validate(body, endpoint)
    model = body["model"]
    if not client_key.may_use(model):
        raise PermissionDenied(f"This API key may not use model {model}.")
    client_request = ClientRequest(
        endpoint=endpoint,
        raw=request.body,
        body=body,
        model=model,
        stream=endpoint == MESSAGES and is_streaming(body),
        headers=request.headers,
        beta_query=request.GET.get("beta") == "true",
        request_id=request.request_id,
        client_key_name=client_key.name,
        client_key_id=client_key.key_id,
    )
    dispatch = Dispatch(client_request, snapshot)
    if not dispatch.routes:
        raise NotFound(f"model: {model} is not served by any enabled credential.")
    try:
        await limits.admit(dispatch, client_key)
    except ProxyError as exc:
        # Refused at the door: in the ledger, and nothing was sent upstream.
        dispatch.finish(exc.status, error_type=exc.error_type)
        raise
    return dispatch
