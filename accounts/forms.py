"""Admin forms for the secret-bearing models.

Secrets only ever travel inwards: the credential form has a write-only ``secret`` field that is
never rendered back, and a client key's plaintext is generated server-side after its form is
valid (see ``ClientKeyAdmin.save_model``), so no form ever holds it.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.views.decorators.debug import sensitive_variables

from accounts.models import ClientKey, Credential

SECRET_HELP_ADD = "The upstream API key or OAuth token. Stored encrypted; never shown again."
SECRET_HELP_CHANGE = "Leave blank to keep the current secret. A new value replaces it."


class CredentialForm(forms.ModelForm):
    secret = forms.CharField(
        label="Secret",
        required=False,
        strip=True,
        # render_value=False: a re-rendered form (after a validation error, or on the change
        # page) must not echo the secret into the HTML.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=SECRET_HELP_CHANGE,
    )

    reset_learned_omissions = forms.BooleanField(
        label="Forget learned omissions",
        required=False,
        help_text="Send every field again: for a server that was upgraded or replaced. A field "
        "it still refuses is learned again on the next request (one retried call).",
    )

    class Meta:
        model = Credential
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "secret" in self.fields and self.instance.pk is None:
            self.fields["secret"].required = True
            self.fields["secret"].help_text = SECRET_HELP_ADD

    @sensitive_variables("secret")
    def clean_secret(self) -> str:
        secret = self.cleaned_data.get("secret", "")
        if any(ch.isspace() for ch in secret):
            # A pasted key with an inner newline or space would fail upstream with a 401 that
            # looks like a revoked key; refuse it here where the operator can see why.
            raise forms.ValidationError("The secret cannot contain spaces or line breaks.")
        return secret

    def clean_extra_headers(self) -> Any:
        # An emptied textarea means "no extra headers", not JSON null (which the model refuses).
        value = self.cleaned_data.get("extra_headers")
        return {} if value in (None, "") else value

    @sensitive_variables("secret")
    def save(self, commit: bool = True) -> Credential:
        credential = super().save(commit=False)
        secret = self.cleaned_data.get("secret")
        if secret:
            credential.set_secret(secret)
        if self.cleaned_data.get("reset_learned_omissions"):
            credential.learned_omissions = {}
        if commit:
            credential.save()
            self.save_m2m()
        return credential


class ClientKeyForm(forms.ModelForm):
    """Name, allow list, switch and limits; the key itself is generated on save, never typed in."""

    class Meta:
        model = ClientKey
        fields = [
            "name",
            "allowed_models",
            "enabled",
            "rpm_limit",
            "tpm_limit",
            "max_concurrent",
            "budget_period",
            "budget_tokens",
            "budget_usd",
        ]
        widgets = {"allowed_models": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Only meaningful with a budget; a form posted without it keeps the month.
        self.fields["budget_period"].required = False

    def clean_budget_period(self) -> str:
        return self.cleaned_data.get("budget_period") or "month"
