"""The admin says when a store is away, instead of a server error."""

from __future__ import annotations

import pytest
from django.db import OperationalError

from accounts import versions
from accounts.admin import CredentialAdmin
from tests.live.conftest import free_port

pytestmark = pytest.mark.django_db


def test_it_shows_a_database_unreachable_page_instead_of_a_server_error(admin_client, monkeypatch):
    def unreachable(self, request):
        raise OperationalError('connection to server at "db" (10.0.0.5), port 5432 failed')

    monkeypatch.setattr(CredentialAdmin, "get_queryset", unreachable)
    response = admin_client.get("/admin/accounts/credential/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    page = response.content.decode()
    assert "The database is unreachable" in page
    assert "OperationalError" in page
    assert "The API keeps serving" in page


def test_it_warns_on_admin_pages_while_redis_does_not_answer(admin_client, settings):
    # A port where nothing listens: a real connection refusal, not a stub.
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    versions._sync_redis.cache_clear()
    try:
        response = admin_client.get("/admin/", follow=True)
    finally:
        versions._sync_redis.cache_clear()
    assert response.status_code == 200
    assert "Redis is unreachable (ConnectionError)" in response.content.decode()


def test_it_says_nothing_about_redis_when_it_is_not_configured(admin_client, settings):
    settings.REDIS_URL = ""
    response = admin_client.get("/admin/")
    assert "Redis is unreachable" not in response.content.decode()
