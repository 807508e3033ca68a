from __future__ import annotations

from collections import Counter
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts import keys
from accounts.cliproxy_config import ConfigError, CredentialSpec, ImportPlan, ModelSpec, parse
from accounts.models import ClientKey, Credential, CredentialModel, ProxySettings

# Set by code, not by the file: left out of validation (a key-less credential has no secret).
UNVALIDATED_FIELDS = ["secret_encrypted", "secret_hint", "source_key"]
MODEL_KEYS = {"display_name": "display-name", "max_input_tokens": "max-context-length"}


class Command(BaseCommand):
    help = (
        "Import a CLIProxyAPI config.yaml: api-keys become client keys (only their HMAC is "
        "stored), claude-api-key / gemini-api-key / openai-compatibility entries become "
        "credentials, and the routing and retry knobs go to the proxy settings. Safe to re-run: "
        "entries already imported are updated in place, nothing is duplicated."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("config", help="Path to CLIProxyAPI's config.yaml.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Check the file and report; write nothing."
        )

    def handle(self, *args, config: str, dry_run: bool, **options) -> str:
        path = Path(config)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise CommandError(f"Cannot read {path}: {reason}") from None
        try:
            plan = parse(text)
        except ConfigError as exc:
            raise CommandError(f"{path}: {exc}") from None
        for warning in plan.warnings:
            self.stderr.write(f"warning: {warning}")
        try:
            with transaction.atomic():
                report = apply_plan(plan)
                if dry_run:
                    transaction.set_rollback(True)
        except CommandError as exc:
            raise CommandError(f"{path}: {exc}; nothing was imported") from None
        heading = f"Dry run of {path}: nothing was written." if dry_run else f"Imported {path}."
        return "\n".join([heading, *report])


def apply_plan(plan: ImportPlan) -> list[str]:
    """Write the plan; call inside a transaction. Returns the summary lines."""
    counts: dict[str, Counter] = {section: Counter() for section in plan.sections}
    for spec in plan.client_keys:
        counts["api-keys"][_sync_client_key(spec.name, spec.key)] += 1
    imported: set[str] = set()
    for spec in plan.credentials:
        source_key = keys.digest(spec.identity)
        imported.add(source_key)
        counts[spec.kind.partition(":")[0]][_sync_credential(spec, source_key)] += 1

    lines = []
    total: Counter = Counter()
    for section, count in counts.items():
        total.update(count)
        if section == "api-keys":
            lines.append(f"  {section}: {count['created']} created, {count['unchanged']} unchanged")
        else:
            lines.append(f"  {section}: {_counts(count)}")
    changed = _sync_settings(plan)
    if changed:
        lines.append(f"  settings: {len(changed)} changed ({', '.join(changed)})")
    elif plan.settings:
        lines.append("  settings: unchanged")
    lines.append(f"Total: {_counts(total)}; settings {'changed' if changed else 'unchanged'}.")
    stale = 0
    if set(plan.sections) - {"api-keys"}:
        stale = Credential.objects.exclude(source_key="").exclude(source_key__in=imported).count()
    if stale:
        lines.append(
            f"{stale} credential(s) imported earlier are not in this file; left as they are "
            "(delete or disable them in the admin if they are gone)."
        )
    return lines


def _counts(count: Counter) -> str:
    return f"{count['created']} created, {count['updated']} updated, {count['unchanged']} unchanged"


def _sync_client_key(name: str, plaintext: str) -> str:
    digest = keys.digest(plaintext)
    if ClientKey.objects.filter(digest=digest).exists():
        return "unchanged"
    # Keys from a config file can be short; never keep most of one in clear as its "prefix".
    prefix = keys.visible_prefix(plaintext)[: len(plaintext) // 3]
    ClientKey.objects.create(name=name, prefix=prefix, digest=digest)
    return "created"


def _sync_credential(spec: CredentialSpec, source_key: str) -> str:
    credential = Credential.objects.filter(source_key=source_key).order_by("id").first()
    if credential is None:
        credential = Credential(
            provider=spec.provider, label=spec.label, source_key=source_key, **spec.fields
        )
        if spec.api_key:
            credential.set_secret(spec.api_key)
        _validate(credential, spec)
        credential.save()
        _create_models(credential, spec)
        return "created"

    # Only the fields the file manages are compared. The label and the secret are written once,
    # at creation: an operator may rename a credential in the admin, and the secret is part of
    # the entry's identity, so it cannot differ here.
    changed = [name for name, value in spec.fields.items() if getattr(credential, name) != value]
    for name in changed:
        setattr(credential, name, spec.fields[name])
    if changed:
        _validate(credential, spec)
        credential.save()
    models_changed = _model_rows(credential) != [_model_row(model) for model in spec.models]
    if models_changed:
        credential.models.all().delete()
        _create_models(credential, spec)
    return "updated" if changed or models_changed else "unchanged"


def _model_row(model: ModelSpec) -> tuple:
    return (model.name, model.alias, model.display_name, model.max_input_tokens)


def _model_rows(credential: Credential) -> list[tuple]:
    return [
        tuple(row)
        for row in credential.models.order_by("id").values_list(
            "name", "alias", "display_name", "max_input_tokens"
        )
    ]


def _create_models(credential: Credential, spec: CredentialSpec) -> None:
    for index, model in enumerate(spec.models):
        row = CredentialModel(
            credential=credential,
            name=model.name,
            alias=model.alias,
            display_name=model.display_name,
            max_input_tokens=model.max_input_tokens,
        )
        path = f"{spec.paths['models']}[{index}]"
        try:
            row.full_clean(exclude=["credential"])
        except ValidationError as exc:
            message = _message(
                exc, lambda field, path=path: f"{path}.{MODEL_KEYS.get(field, field)}"
            )
            raise CommandError(message) from None
        row.save()


def _validate(credential: Credential, spec: CredentialSpec) -> None:
    try:
        credential.full_clean(exclude=UNVALIDATED_FIELDS)
    except ValidationError as exc:
        raise CommandError(_message(exc, lambda field: spec.paths.get(field, spec.path))) from None


def _sync_settings(plan: ImportPlan) -> list[str]:
    """Only the keys present in the file are written; returns their paths when they changed."""
    if not plan.settings:
        return []
    row = ProxySettings.load()
    changed = [name for name, value in plan.settings.items() if getattr(row, name) != value]
    if not changed:
        return []
    for name in changed:
        setattr(row, name, plan.settings[name])
    try:
        row.full_clean()
    except ValidationError as exc:
        message = _message(exc, lambda field: plan.settings_paths.get(field, field))
        raise CommandError(message) from None
    row.save()
    return [plan.settings_paths[name] for name in changed]


def _message(exc: ValidationError, path_of) -> str:
    return "; ".join(
        f"{path_of(field)}: {' '.join(messages)}" for field, messages in exc.message_dict.items()
    )
