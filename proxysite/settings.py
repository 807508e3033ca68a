"""Settings for the Claude API proxy.

Every value comes from the environment with a development default, so a fresh checkout runs with
``make serve`` and nothing else: SQLite under ``data/``, secrets generated once into ``data/``.
Production sets DATABASE_URL (PostgreSQL), REDIS_URL, DJANGO_SECRET_KEY, FIELD_ENCRYPTION_KEYS
and CLIENT_KEY_PEPPER explicitly, identical on every machine that serves the API.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet

from proxysite.env import (
    envbool,
    envfloat,
    envint,
    envlist,
    envsecret,
    envstr,
    persistent_secret,
    token,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(envstr("DATA_DIR", str(BASE_DIR / "data"))).resolve()

SECRET_KEY = envsecret("DJANGO_SECRET_KEY") or persistent_secret(DATA_DIR, "secret_key", token)
DEBUG = envbool("DEBUG", False)
# A proxy is reached under whatever name or address clients were given; narrow this in production.
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "*")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

# Upstream secrets are encrypted with these Fernet keys (newest first; older ones still decrypt,
# which is how keys are rotated). Generated once for a dev install when unset.
FIELD_ENCRYPTION_KEYS = envlist("FIELD_ENCRYPTION_KEYS") or [
    persistent_secret(DATA_DIR, "encryption_key", lambda: Fernet.generate_key().decode())
]
# Client keys are stored as HMAC-SHA256(CLIENT_KEY_PEPPER, key). Kept apart from SECRET_KEY so
# rotating SECRET_KEY (sessions) does not invalidate every client key.
CLIENT_KEY_PEPPER = envsecret("CLIENT_KEY_PEPPER") or persistent_secret(
    DATA_DIR, "client_key_pepper", token
)

REDIS_URL = envstr("REDIS_URL")
# How often each worker checks whether credentials, settings or quota state changed elsewhere.
POOL_REFRESH_SECONDS = envfloat("POOL_REFRESH_SECONDS", 0.5)
# How often aggregated success counters and "last used" times are written to the database.
STATS_FLUSH_SECONDS = envfloat("STATS_FLUSH_SECONDS", 5.0)
# On SIGTERM a worker stops accepting and lets open requests (long generations included) finish
# for this long before it ends them.
SHUTDOWN_GRACE_SECONDS = envfloat("SHUTDOWN_GRACE_SECONDS", 60.0)
# Freeze the objects that exist when a worker starts serving out of the garbage collector's
# reach (proxysite.lifecycle); off only to measure what it saves (make bench).
GC_FREEZE = envbool("GC_FREEZE", True)
# Usage records (one per client request) older than this many days are pruned; 0 keeps them all.
USAGE_RETENTION_DAYS = envint("USAGE_RETENTION_DAYS", 90)
# The usage ledger (one record per request). Off only to measure what it costs (make bench).
USAGE_LEDGER = envbool("USAGE_LEDGER", True)
# /metrics: with a token, served to "Authorization: Bearer <token>"; without, to loopback only.
METRICS_TOKEN = envsecret("METRICS_TOKEN")

INSTALLED_APPS = [
    "daphne",
    # Django's admin with the overview as its front page (dashboard.site).
    "dashboard.apps.ProxyAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "accounts",
    "claude_api",
    "dashboard",
]

MIDDLEWARE = [
    "proxysite.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "proxysite.middleware.StoreStatusMiddleware",
]

ROOT_URLCONF = "proxysite.urls"
ASGI_APPLICATION = "proxysite.asgi.application"

# The admin overview's live view (dashboard.live): with Redis every worker's cooldowns and
# in-flight counts reach every open page; without it a page sees the worker it is connected to.
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "claude-proxy:channels"},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        # Django's docs: persistent connections should be disabled in async mode.
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database host that stops answering must not hold a worker's thread for minutes.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several daphne processes may share the file: WAL lets readers proceed during a write, and
    # IMMEDIATE transactions take the write lock up front instead of failing on upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file (not :memory:), so that daphne processes started by the live tests see the same data;
    # one per test run, so that concurrent runs on one machine do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-db-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# The proxy enforces its own (admin-editable) body limit and answers 413 in the Anthropic format;
# Django's own limit would answer with a bare 400 first.
DATA_UPLOAD_MAX_MEMORY_SIZE = None

# Messages must never carry a secret; keep them server-side anyway.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Extra upstream knobs that are deployment-wide rather than per operator decision.
UPSTREAM_MAX_CONNECTIONS = envint("UPSTREAM_MAX_CONNECTIONS", 1000)

# Subscription accounts (accounts.oauth). The real services by default; tests and gateways point
# these elsewhere. The upstream an account serves through stays its credential's base URL.
CLAUDE_OAUTH_AUTHORIZE_URL = envstr(
    "CLAUDE_OAUTH_AUTHORIZE_URL", "https://claude.ai/oauth/authorize"
)
CLAUDE_OAUTH_TOKEN_URL = envstr(
    "CLAUDE_OAUTH_TOKEN_URL", "https://platform.claude.com/v1/oauth/token"
)
# Profile (identity after login) and usage endpoints: <CLAUDE_API_URL>/api/oauth/profile.
CLAUDE_API_URL = envstr("CLAUDE_API_URL", "https://api.anthropic.com")
CODEX_OAUTH_AUTHORIZE_URL = envstr(
    "CODEX_OAUTH_AUTHORIZE_URL", "https://auth.openai.com/oauth/authorize"
)
CODEX_OAUTH_TOKEN_URL = envstr("CODEX_OAUTH_TOKEN_URL", "https://auth.openai.com/oauth/token")
# Seconds a token-endpoint call may take before it counts as a transient failure.
OAUTH_TIMEOUT_SECONDS = envfloat("OAUTH_TIMEOUT_SECONDS", 30.0)
# Refresh this long before expiry, in the background (the reference system's leads).
CLAUDE_REFRESH_LEAD_SECONDS = envint("CLAUDE_REFRESH_LEAD_SECONDS", 4 * 3600)
CODEX_REFRESH_LEAD_SECONDS = envint("CODEX_REFRESH_LEAD_SECONDS", 5 * 86400)
# How often each worker looks for accounts due for a background refresh.
OAUTH_SWEEP_SECONDS = envfloat("OAUTH_SWEEP_SECONDS", 60.0)
# Poll Claude's usage endpoint for accounts' 5-hour / 7-day windows (accounts.oauth.usage);
# 0 = off. Never more often than every 120 s.
CLAUDE_USAGE_POLL_SECONDS = envfloat("CLAUDE_USAGE_POLL_SECONDS", 0.0)

LOG_LEVEL = envstr("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "accounts": {"level": LOG_LEVEL},
        "claude_api": {"level": LOG_LEVEL},
        "django.request": {"level": "ERROR"},
    },
}
