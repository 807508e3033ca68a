"""The admin's ledger, price table and each client key's use against its limits."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from accounts import limiter, limits
from accounts.models import ClientKey, ModelPrice, UsageRecord

pytestmark = pytest.mark.django_db


def test_it_shows_a_keys_use_against_its_limits(admin_client):
    key, _ = ClientKey.issue("team")
    key.rpm_limit, key.max_concurrent, key.budget_tokens = 60, 4, 1_000_000
    key.budget_period = "day"
    key.save()
    now = datetime.now(tz=UTC).timestamp()
    admission = limiter.Admission(
        key.pk, "req_1", key.limits, limits.windows(now, "day"), tokens=1200, cost=0
    )
    assert limiter.admit_in_database(admission, now) == ""
    UsageRecord.objects.create(
        created_at=datetime.now(tz=UTC),
        request_id="req_0",
        endpoint="messages",
        client_key=key,
        model="claude-sonnet-4-6",
        status=200,
        input_tokens=700,
        output_tokens=300,
        cost=Decimal("0.0066"),
    )
    page = admin_client.get(reverse("admin:accounts_clientkey_change", args=[key.pk]))
    text = page.content.decode()
    assert "<th>requests this minute</th><td>1 of 60</td>" in text
    assert "<th>requests in flight</th><td>1 of 4</td>" in text
    assert "<th>tokens this day (counted)</th><td>1,200 of 1,000,000</td>" in text
    assert "1 requests, 1,000 tokens, $0.0066" in text
    listing = admin_client.get(reverse("admin:accounts_clientkey_changelist")).content.decode()
    assert "60 rpm, 4 at once, 1,000,000 tokens/day" in listing


def test_it_saves_limits_from_the_admin_form(admin_client):
    key, _ = ClientKey.issue("team")
    url = reverse("admin:accounts_clientkey_change", args=[key.pk])
    response = admin_client.post(
        url,
        {
            "name": "team",
            "allowed_models": "",
            "enabled": "on",
            "rpm_limit": "10",
            "tpm_limit": "",
            "max_concurrent": "2",
            "budget_period": "week",
            "budget_tokens": "",
            "budget_usd": "25.00",
        },
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.limits == limits.KeyLimits(
        rpm=10, concurrent=2, budget_period="week", budget_micro_usd=25_000_000
    )


def test_it_lists_prices_and_usage_records_read_only(admin_client):
    ModelPrice.objects.create(model="house-model", input=Decimal("1"))
    UsageRecord.objects.create(
        created_at=datetime.now(tz=UTC),
        request_id="req_x",
        endpoint="messages",
        model="house-model",
        status=200,
        cost=None,
    )
    prices = admin_client.get(reverse("admin:accounts_modelprice_changelist"))
    assert "house-model" in prices.content.decode()
    records = admin_client.get(reverse("admin:accounts_usagerecord_changelist"))
    assert records.status_code == 200 and "unknown" in records.content.decode()
    record = UsageRecord.objects.get()
    add = admin_client.get(reverse("admin:accounts_usagerecord_add"))
    assert add.status_code == 403
    change = admin_client.post(
        reverse("admin:accounts_usagerecord_change", args=[record.pk]), {"status": "500"}
    )
    assert change.status_code == 403
    record.refresh_from_db()
    assert record.status == 200
