from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from accounts.models import ClientKey, Credential


class Command(BaseCommand):
    help = (
        "First-run help for `make serve`: creates a client key when there is none (printing it "
        "once) and says how to create an admin user and add an upstream credential."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8317")

    def handle(self, *args, host: str, port: str, **options) -> None:
        base = f"http://{host}:{port}"
        write = self.stdout.write
        if not get_user_model().objects.filter(is_superuser=True).exists():
            write(
                "No admin user yet. Create one (in another terminal) with:\n"
                "    .venv/bin/python manage.py createsuperuser\n"
                f"then sign in at {base}/admin/\n"
            )
        if not ClientKey.objects.exists():
            _, plaintext = ClientKey.issue(name="default")
            write(
                "Created a first client key. It is shown only this once; clients send it as "
                "x-api-key (or Authorization: Bearer):\n"
                f"    {plaintext}\n"
                "More keys: .venv/bin/python manage.py create_client_key NAME\n"
            )
        if not Credential.objects.exists():
            write(
                "No upstream credential yet. Add one in the admin, or:\n"
                "    ANTHROPIC_KEY=sk-ant-... .venv/bin/python manage.py add_credential "
                "--provider anthropic --label main --secret-env ANTHROPIC_KEY\n"
            )
        write(f"Serving the Claude API at {base} (ANTHROPIC_BASE_URL={base})")
