"""Every change to the pool's configuration bumps the config version, so workers reload it."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts import versions
from accounts.models import ClientKey, Credential, CredentialModel, ModelPrice, ProxySettings

# Prices are part of the snapshot: workers price requests in memory (budgets in money).
CONFIG_MODELS = (Credential, CredentialModel, ClientKey, ModelPrice, ProxySettings)


def config_changed() -> None:
    # After commit: a worker that reloads on the bump must see the committed rows.
    transaction.on_commit(lambda: versions.bump(config=True))


@receiver(post_save)
@receiver(post_delete)
def bump_on_config_change(sender, **kwargs) -> None:
    if sender in CONFIG_MODELS:
        # ClientKey.last_used_at is bookkeeping written by the workers themselves.
        update_fields = kwargs.get("update_fields")
        if sender is ClientKey and update_fields and set(update_fields) <= {"last_used_at"}:
            return
        config_changed()
