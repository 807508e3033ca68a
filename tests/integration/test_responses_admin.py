"""Adding a Responses API key in the admin, and what a Codex account's page says."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Credential
from accounts.oauth import store
from accounts.oauth.files import AccountData
from tests.integration.test_admin import credential_data

pytestmark = pytest.mark.django_db

KEY = "sk-proj-Admin-Canary-12345678-ABCD"


def test_it_adds_an_openai_responses_key_with_the_default_base_url(admin_client):
    data = credential_data(
        secret=KEY,
        provider="openai-responses",
        label="openai",
        **{"models-0-name": "gpt-5.2", "models-0-alias": "claude-opus-4-8"},
    )
    response = admin_client.post(reverse("admin:accounts_credential_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    credential = Credential.objects.get(label="openai")
    assert credential.provider == "openai-responses"
    assert credential.effective_base_url == "https://api.openai.com/v1"
    page = admin_client.get(reverse("admin:accounts_credential_change", args=[credential.pk]))
    assert b"OpenAI Responses API" in page.content and KEY.encode() not in page.content


def test_it_says_how_a_codex_account_serves(admin_client):
    result = store.save_account(
        AccountData(
            provider="codex",
            access_token="eyJa.eyJb.c",
            refresh_token="rt_codex-admin-0001",
            expires_at=None,
            email="c@example.com",
            account_id="ws-admin",
        )
    )
    page = admin_client.get(
        reverse("admin:accounts_credential_change", args=[result.credential_id])
    )
    assert page.status_code == 200
    assert b"Served through the Responses API" in page.content
    assert b"does not route" not in page.content
