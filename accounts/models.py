"""The proxy's state: credentials, client keys, settings, quota state, traces, usage, prices.

Nothing here knows HTTP or wire formats. Request-time code never reads these models directly: it
reads the in-process snapshot built by ``accounts.pool``, which is rebuilt when ``PoolVersion``
changes (every save below bumps it through ``accounts.signals``).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from accounts import crypto, keys, limits, patterns


class Provider(models.TextChoices):
    ANTHROPIC = "anthropic", "Anthropic"
    GEMINI = "gemini", "Gemini"
    OPENAI = "openai", "OpenAI-compatible"
    # The provider names the wire: Chat Completions above, the Responses API here (OpenAI API
    # keys, or any server that speaks POST {base}/responses).
    OPENAI_RESPONSES = "openai-responses", "OpenAI Responses API"
    # ChatGPT (Codex) subscription accounts: the Responses wire too, at the Codex backend, with
    # the account's OAuth token.
    CODEX = "codex", "Codex (ChatGPT account)"


class AuthKind(models.TextChoices):
    API_KEY = "api_key", "API key"
    OAUTH = "oauth", "OAuth account"


DEFAULT_BASE_URLS = {
    Provider.ANTHROPIC: "https://api.anthropic.com",
    Provider.GEMINI: "https://generativelanguage.googleapis.com",
    Provider.OPENAI: "",
    Provider.OPENAI_RESPONSES: "https://api.openai.com/v1",
    Provider.CODEX: "https://chatgpt.com/backend-api/codex",
}


class RoutingStrategy(models.TextChoices):
    ROUND_ROBIN = "round-robin", "Round-robin"
    FILL_FIRST = "fill-first", "Fill-first"
    WEIGHTED_ROUND_ROBIN = "weighted-round-robin", "Weighted round-robin"
    # Within a priority tier, the subscription account with the most left of its binding window.
    QUOTA_AWARE = "quota-aware", "Quota-aware (subscription accounts)"


class Credential(models.Model):
    """One upstream account: an API key or OAuth token for one provider."""

    provider = models.CharField(max_length=20, choices=Provider.choices, default=Provider.ANTHROPIC)
    # api_key: the secret below is sent as is. oauth: the secret is empty and the tokens live in
    # OAuthToken, outside the pool snapshot, because they change every few hours.
    auth_kind = models.CharField(max_length=10, choices=AuthKind.choices, default=AuthKind.API_KEY)
    label = models.CharField(max_length=100, help_text="A name operators recognise.")
    secret_encrypted = models.TextField(editable=False, default="")
    secret_hint = models.CharField(max_length=12, editable=False, default="")
    base_url = models.CharField(
        max_length=300,
        blank=True,
        help_text="Empty: the provider's default (api.anthropic.com, generativelanguage."
        "googleapis.com, api.openai.com/v1 for the Responses API, chatgpt.com/backend-api/codex "
        "for Codex accounts). Required for OpenAI-compatible providers, e.g. https://host/v1.",
    )
    extra_headers = models.JSONField(
        default=dict, blank=True, help_text='Sent with every upstream call, e.g. {"x-team": "a"}.'
    )
    proxy_url = models.CharField(
        max_length=300,
        blank=True,
        help_text="http://, https:// or socks5:// proxy for this credential. Empty: the global "
        "proxy from the settings; 'direct' bypasses it.",
    )
    priority = models.IntegerField(default=0, help_text="Higher is preferred.")
    weight = models.IntegerField(default=1, help_text="Weighted round-robin share; 0 excludes.")
    prefix = models.CharField(
        max_length=50,
        blank=True,
        help_text="Clients can address this credential's models as PREFIX/MODEL.",
    )
    excluded_models = models.TextField(
        blank=True,
        help_text="Models never routed here, one per line or comma-separated; * is a wildcard.",
    )
    enabled = models.BooleanField(default=True)
    disable_cooling = models.BooleanField(
        null=True, blank=True, help_text="Unknown = use the global setting."
    )
    request_retry = models.IntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Extra retry rounds for this credential. Empty = the global setting.",
    )
    # Per-provider knobs for OpenAI-compatible servers, which differ on these.
    openai_max_tokens_field = models.CharField(
        max_length=30,
        default="max_tokens",
        choices=[("max_tokens", "max_tokens"), ("max_completion_tokens", "max_completion_tokens")],
        verbose_name="OpenAI: max tokens field",
    )
    openai_include_usage = models.BooleanField(
        default=True, verbose_name="OpenAI: send stream_options.include_usage"
    )
    openai_reasoning_field = models.CharField(
        max_length=30,
        default="",
        blank=True,
        verbose_name="OpenAI: reasoning field echoed in history",
        help_text="Empty (the default): earlier reasoning is not sent back. reasoning_content "
        "for servers that want it back (DeepSeek's thinking mode with tools), reasoning for "
        "OpenRouter. Strict servers reject either with a 400.",
    )
    # Fields this credential's upstream was seen refusing, by their wire names:
    # {field: {"at": ISO time, "error": redacted excerpt}}. Provider-neutral (the OpenAI-compatible
    # provider is the first to learn; any provider may), written by the workers through
    # accounts.omissions, read into the pool snapshot, cleared by an operator in the admin.
    learned_omissions = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        verbose_name="fields learned to omit",
    )
    source_key = models.CharField(
        max_length=64,
        blank=True,
        db_index=True,
        editable=False,
        help_text="HMAC identity of the config entry this credential was imported from, so "
        "re-importing the same file updates it instead of adding a copy.",
    )
    openai_send_reasoning_effort = models.BooleanField(
        default=True,
        verbose_name="OpenAI: send reasoning_effort",
        help_text="Off for servers/models that reject it (OpenAI's non-reasoning models).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "id"]

    def __str__(self) -> str:
        # Never the secret: __str__ ends up in admin pages, logs and error messages.
        return f"{self.label} ({self.get_provider_display()})"

    def set_secret(self, plaintext: str) -> None:
        plaintext = plaintext.strip()
        self.secret_encrypted = crypto.encrypt(plaintext)
        self.secret_hint = crypto.hint(plaintext)

    def get_secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted) if self.secret_encrypted else ""

    @property
    def effective_base_url(self) -> str:
        return (self.base_url or DEFAULT_BASE_URLS.get(self.provider, "")).rstrip("/")

    def clean(self) -> None:
        if self.provider == Provider.OPENAI and not self.base_url:
            raise ValidationError({"base_url": "OpenAI-compatible credentials need a base URL."})
        if not isinstance(self.extra_headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.extra_headers.items()
        ):
            raise ValidationError({"extra_headers": "Use a JSON object of string values."})
        if self.prefix and ("/" in self.prefix or self.prefix != self.prefix.strip()):
            raise ValidationError({"prefix": "A prefix cannot contain '/' or spaces."})

    @property
    def excluded_list(self) -> list[str]:
        return patterns.split_list(self.excluded_models)


class CredentialModel(models.Model):
    """A model a credential serves, optionally under another client-visible name."""

    credential = models.ForeignKey(Credential, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=200, help_text="The upstream model name.")
    alias = models.CharField(
        max_length=200, blank=True, help_text="What clients ask for. Empty: the upstream name."
    )
    display_name = models.CharField(max_length=200, blank=True)
    max_input_tokens = models.PositiveIntegerField(null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "model"

    def __str__(self) -> str:
        return f"{self.name} → {self.alias}" if self.alias else self.name


class ClientKey(models.Model):
    """A key clients present to the proxy. Only an HMAC of it is stored (see accounts.keys)."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    enabled = models.BooleanField(default=True)
    allowed_models = models.TextField(
        blank=True,
        help_text="Empty: every model. Otherwise one pattern per line or comma-separated; "
        "* is a wildcard.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Limits and budgets (accounts.limits); empty = no limit. Enforced in every worker.
    rpm_limit = models.PositiveIntegerField(
        "requests per minute", null=True, blank=True, validators=[MinValueValidator(1)]
    )
    tpm_limit = models.PositiveIntegerField(
        "tokens per minute",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Input + output tokens.",
    )
    max_concurrent = models.PositiveIntegerField(
        "concurrent requests", null=True, blank=True, validators=[MinValueValidator(1)]
    )
    budget_period = models.CharField(
        max_length=8,
        choices=[("day", "Day (UTC)"), ("week", "Week (from Monday, UTC)"), ("month", "Month")],
        default="month",
    )
    budget_tokens = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Input + output tokens per period.",
    )
    budget_usd = models.DecimalField(
        "budget (USD)",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Dollars per period, at the price table's prices. Requests of models "
        "without a price are refused while a money budget is set.",
    )

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, name: str, allowed_models: str = "") -> tuple[ClientKey, str]:
        """Create a key; the plaintext is returned once and never stored."""
        plaintext = keys.generate()
        client_key = cls.objects.create(
            name=name,
            prefix=keys.visible_prefix(plaintext),
            digest=keys.digest(plaintext),
            allowed_models=allowed_models,
        )
        return client_key, plaintext

    @property
    def allowed_list(self) -> list[str]:
        return patterns.split_list(self.allowed_models)

    @property
    def limits(self) -> limits.KeyLimits:
        return limits.KeyLimits(
            rpm=self.rpm_limit,
            tpm=self.tpm_limit,
            concurrent=self.max_concurrent,
            budget_period=self.budget_period,
            budget_tokens=self.budget_tokens,
            budget_micro_usd=limits.micro_usd(self.budget_usd),
        )


class ProxySettings(models.Model):
    """Behaviour toggles, one row. Changes reach every worker within POOL_REFRESH_SECONDS."""

    nonstream_keepalive_interval = models.FloatField(
        default=0,
        validators=[MinValueValidator(0)],
        help_text="Seconds. When a non-streaming upstream call takes longer, write a newline "
        "every interval so idle timeouts do not cut the connection. 0 = off.",
    )
    stream_keepalive_seconds = models.FloatField(
        default=0,
        validators=[MinValueValidator(0)],
        help_text="Seconds without an event before ': keep-alive' is written to a stream. 0 = off.",
    )
    bootstrap_retries = models.PositiveIntegerField(
        default=0,
        help_text="Extra passes over the pool for a stream that failed before its first event.",
    )
    request_retry = models.PositiveIntegerField(
        default=3, help_text="Extra rounds over the pool after 403/408/429/5xx."
    )
    max_retry_credentials = models.PositiveIntegerField(
        default=0, help_text="Credentials tried per round. 0 = all."
    )
    max_retry_interval = models.FloatField(
        default=30,
        validators=[MinValueValidator(0)],
        help_text="Seconds one request may spend waiting for cooldowns to end, over all its "
        "retry rounds together; when no credential frees up within what is left, the client gets "
        "the upstream's error as it was (429 with Retry-After). 0 = never wait.",
    )
    routing_strategy = models.CharField(
        max_length=30, choices=RoutingStrategy.choices, default=RoutingStrategy.ROUND_ROBIN
    )
    session_affinity = models.BooleanField(
        default=False, help_text="Keep one session on one credential so prompt caches hit."
    )
    session_affinity_ttl = models.PositiveIntegerField(default=3600, help_text="Seconds.")
    disable_cooling = models.BooleanField(default=False)
    transient_error_cooldown_seconds = models.IntegerField(
        default=60, help_text="Cooldown after 408/5xx/529/connection errors. -1 or 0 = none."
    )
    passthrough_headers = models.BooleanField(
        default=False, help_text="Forward the upstream's response headers (filtered)."
    )
    force_model_prefix = models.BooleanField(
        default=False,
        help_text="Credentials with a prefix are only reachable as PREFIX/MODEL.",
    )
    proxy_url = models.CharField(
        max_length=300, blank=True, help_text="Global outbound proxy for upstream calls."
    )
    upstream_connect_timeout = models.FloatField(
        default=10, validators=[MinValueValidator(0.1)], help_text="Seconds."
    )
    upstream_read_timeout = models.FloatField(
        default=600,
        validators=[MinValueValidator(1)],
        help_text="Seconds without a byte from the upstream (generations can take minutes).",
    )
    max_request_body_bytes = models.PositiveIntegerField(
        default=32 * 1024 * 1024, help_text="Larger requests get 413 request_too_large."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "proxy settings"
        verbose_name_plural = "proxy settings"

    def __str__(self) -> str:
        return "Proxy settings"

    def save(self, *args, **kwargs) -> None:
        self.pk = 1  # a singleton
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> ProxySettings:
        settings, _ = cls.objects.get_or_create(pk=1)
        return settings


class QuotaStatus(models.TextChoices):
    OK = "ok", "OK"
    COOLING = "cooling", "Cooling down"
    ATTENTION = "attention", "Needs attention"


class QuotaState(models.Model):
    """Availability of one credential for one upstream model ('' = the whole credential)."""

    credential = models.ForeignKey(Credential, on_delete=models.CASCADE, related_name="quota")
    model = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=12, choices=QuotaStatus.choices, default=QuotaStatus.OK)
    reason = models.CharField(max_length=40, blank=True)
    last_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    next_retry_at = models.DateTimeField(null=True, blank=True)
    backoff_level = models.PositiveIntegerField(default=0)
    reset_source = models.CharField(
        max_length=60, blank=True, help_text="Where next_retry_at came from."
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["credential", "model"], name="quota_unique_model")
        ]
        ordering = ["credential_id", "model"]

    def __str__(self) -> str:
        return f"{self.credential_id}:{self.model or '*'} {self.status}"


class CredentialStats(models.Model):
    """Request outcomes per credential per hour, aggregated in memory and flushed periodically."""

    credential = models.ForeignKey(Credential, on_delete=models.CASCADE, related_name="stats")
    hour = models.DateTimeField()
    successes = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    # Requests that passed this credential by while it cooled down (summarised, not traced).
    skips = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["credential", "hour"], name="stats_unique_hour")
        ]


class RoutingTrace(models.Model):
    """How one failed or retried request travelled through the pool."""

    request_id = models.CharField(max_length=40, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    endpoint = models.CharField(max_length=40)
    client_key_name = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200)
    stream = models.BooleanField(default=False)
    status = models.PositiveIntegerField()
    attempts = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    steps = models.JSONField(default=list)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} → {self.status}"


class PoolVersion(models.Model):
    """Change counters every worker polls; a bump makes them reload what changed."""

    config = models.PositiveBigIntegerField(default=0)
    quota = models.PositiveBigIntegerField(default=0)
    tokens = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"config v{self.config}, quota v{self.quota}, tokens v{self.tokens}"


class AccountState(models.TextChoices):
    ACTIVE = "active", "Active"
    # Terminal: the refresh token was refused. Not selected, not refreshed, until a new login or
    # import replaces the tokens.
    NEEDS_LOGIN = "needs_login", "Needs login"


class OAuthToken(models.Model):
    """The token set of one subscription account (a Credential with auth_kind=oauth).

    Kept apart from Credential so that a refresh (every few hours per account) bumps only the
    ``tokens`` counter and never makes the workers reload and decrypt the whole pool. Every token
    is encrypted at rest; only a SHA-256 fingerprint of the refresh token is stored in the clear,
    to refuse a second account holding the same token family.
    """

    credential = models.OneToOneField(Credential, on_delete=models.CASCADE, related_name="oauth")
    # "<provider>:<account id or email>": one account per provider identity.
    identity = models.CharField(max_length=300, unique=True, editable=False)
    access_encrypted = models.TextField(editable=False, default="")
    refresh_encrypted = models.TextField(editable=False, default="")
    id_token_encrypted = models.TextField(editable=False, default="")
    refresh_fingerprint = models.CharField(max_length=64, editable=False, default="")
    expires_at = models.DateTimeField(null=True, blank=True)
    last_refresh_at = models.DateTimeField(null=True, blank=True)
    # +1 on every new token set; a worker that saw version N and got a 401 refreshes only if the
    # row still holds N (otherwise another worker already did).
    token_version = models.PositiveBigIntegerField(default=1)
    email = models.CharField(max_length=254, blank=True)
    account_id = models.CharField(max_length=200, blank=True)
    organization_id = models.CharField(max_length=200, blank=True)
    organization_name = models.CharField(max_length=200, blank=True)
    plan = models.CharField(max_length=60, blank=True)
    state = models.CharField(
        max_length=12, choices=AccountState.choices, default=AccountState.ACTIVE
    )
    state_reason = models.TextField(blank=True)
    refresh_backoff_until = models.DateTimeField(null=True, blank=True)
    refresh_failures = models.PositiveIntegerField(default=0)
    last_refresh_error = models.TextField(blank=True)
    # The cross-worker refresh lock: a worker takes it with a conditional UPDATE and gives it
    # back when done; a crashed holder's lease simply runs out.
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    lease_owner = models.CharField(max_length=40, blank=True, editable=False)
    extras = models.JSONField(default=dict, blank=True, editable=False)
    # The latest 5-hour / 7-day windows a response showed (accounts.windows), for the admin and
    # proxy_status; written at most every 30 s per account, never bumping a counter.
    quota_windows = models.JSONField(default=list, blank=True, editable=False)
    windows_observed_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["refresh_fingerprint"],
                condition=~models.Q(refresh_fingerprint=""),
                name="oauth_unique_refresh_token",
            )
        ]
        verbose_name = "OAuth token set"

    def __str__(self) -> str:
        return f"{self.identity} ({self.get_state_display()})"

    __repr__ = __str__

    def get_access_token(self) -> str:
        return crypto.decrypt(self.access_encrypted) if self.access_encrypted else ""

    def get_refresh_token(self) -> str:
        return crypto.decrypt(self.refresh_encrypted) if self.refresh_encrypted else ""

    def get_id_token(self) -> str:
        return crypto.decrypt(self.id_token_encrypted) if self.id_token_encrypted else ""


class LoginStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    EXCHANGING = "exchanging", "Exchanging the code"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class OAuthLogin(models.Model):
    """A login in progress. In the database because the paste may reach another worker."""

    state = models.CharField(max_length=64, unique=True)
    provider = models.CharField(max_length=20, choices=Provider.choices)
    verifier_encrypted = models.TextField(editable=False)
    status = models.CharField(
        max_length=12, choices=LoginStatus.choices, default=LoginStatus.PENDING
    )
    error = models.TextField(blank=True)
    credential = models.ForeignKey(
        Credential, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        verbose_name = "OAuth login"

    def __str__(self) -> str:
        return f"{self.provider} login {self.state[:6]}… ({self.status})"


class ModelPrice(models.Model):
    """Dollars per million tokens for one model; seeded with published prices (accounts.prices)."""

    model = models.CharField(
        max_length=200,
        unique=True,
        help_text="The upstream model name (or the name clients use). A trailing * prices every "
        "model starting with the rest.",
    )
    input = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    output = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    cache_read = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    cache_write = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]
        verbose_name = "model price"

    def __str__(self) -> str:
        return self.model


class UsageRecord(models.Model):
    """One client request: who, through which credential, what it cost and how it ended.

    Buffered in each worker and written in batches (accounts.usage); names are copied beside the
    foreign keys so a record outlives the key or credential it names.
    """

    created_at = models.DateTimeField(db_index=True)
    request_id = models.CharField(max_length=40)
    endpoint = models.CharField(max_length=40)
    client_key = models.ForeignKey(
        ClientKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage"
    )
    client_key_name = models.CharField(max_length=100, blank=True)
    credential = models.ForeignKey(
        Credential, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage"
    )
    credential_label = models.CharField(max_length=100, blank=True)
    provider = models.CharField(max_length=20, blank=True)
    model = models.CharField(max_length=200)
    upstream_model = models.CharField(max_length=200, blank=True)
    stream = models.BooleanField(default=False)
    status = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=60, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(
        max_digits=16, decimal_places=8, null=True, blank=True, help_text="Empty: unknown."
    )
    latency_ms = models.PositiveIntegerField(default=0)
    ttfb_ms = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    cut_off = models.BooleanField(
        default=False, help_text="A stream that ended before its final event (tokens so far)."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["client_key", "created_at"], name="usage_key_time")]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} → {self.status}"


class LimitCounter(models.Model):
    """Shared limit counters when there is no Redis (accounts.limiter): one row per key, limit
    and window; in-flight requests are rows named ``inflight:<request id>``."""

    client_key = models.ForeignKey(ClientKey, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=60)
    window = models.BigIntegerField(help_text="Epoch seconds the window starts.")
    value = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["client_key", "name", "window"], name="limit_counter_unique"
            )
        ]
