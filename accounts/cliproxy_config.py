"""CLIProxyAPI's config.yaml, read into what this proxy stores: the pure half of import_config.

``parse(text)`` checks every key it knows (types, ranges) and returns an ``ImportPlan``: client
keys, credentials (one per config entry) and ``ProxySettings`` values, plus warnings for keys that
are unknown or known-but-ignored. It touches no database; ``manage.py import_config`` applies the
plan in one transaction. Errors name the key path: ``claude-api-key[1].priority: expected an
integer, got 'high'``.

Value semantics follow CLIProxyAPI (reference-behaviour.md §6): ``transient-error-cooldown-seconds``
0 means 60 s and below 0 means none; per-entry ``request-retry`` below 0 inherits the global value;
counts and intervals below 0 mean 0 ("off").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from accounts.models import Provider, RoutingStrategy

IGNORED = "not applicable to this proxy"
REQUEST_SCOPED = "request-scoped error rules are not supported by this proxy"

# Top-level keys CLIProxyAPI knows that mean nothing here: its server, logging, management API,
# OAuth and other providers, payload rewriting and cloaking.
IGNORED_TOP_LEVEL: dict[str, str] = dict.fromkeys(
    """
    host port tls remote-management auth-dir debug pprof credential-concurrency
    credential-in-flight plugins commercial-mode logging-to-file logs-max-total-size-mb
    error-logs-max-files usage-statistics-enabled redis-usage-queue-retention-seconds request-log
    disable-claude-cloak-mode claude-code disable-image-generation gpt-image-2-base-model
    video-result-auth-cache-ttl auth-auto-refresh-workers quota-exceeded codex antigravity
    antigravity-signature-cache-enabled antigravity-signature-bypass-strict xai ws-auth
    claude-header-defaults codex-header-defaults oauth-model-alias oauth-excluded-models
    oauth-request-scoped-errors payload allow-localhost-unauthenticated
    """.split(),
    IGNORED,
) | {
    "save-cooldown-status": "cooldown state is always kept in the database",
    "xai-api-key": "this proxy has no xAI provider",
    "vertex-api-key": "this proxy has no Vertex provider",
    "interactions-api-key": "this proxy has no Gemini Interactions provider",
    "generative-language-api-key": "legacy key: move these keys to gemini-api-key",
}

# claude-api-key[] and gemini-api-key[] entries.
ENTRY_KEYS = frozenset(
    """
    api-key base-url proxy-url priority weight prefix headers models excluded-models
    disable-cooling request-retry
    """.split()
)
IGNORED_CLAUDE_ENTRY = {
    "request-scoped-errors": REQUEST_SCOPED,
    "rebuild-mid-system-message": IGNORED,
    "cloak": "this proxy never cloaks requests",
    "fingerprint-profile": "this proxy never rewrites the client fingerprint",
    "experimental-cch-signing": IGNORED,
}
IGNORED_GEMINI_ENTRY = {"request-scoped-errors": REQUEST_SCOPED}
# codex-api-key[] entries are API keys for a server that speaks the Responses API (CLIProxyAPI's
# Codex executor with a key instead of an account): they become openai-responses credentials.
IGNORED_CODEX_ENTRY = {
    "request-scoped-errors": REQUEST_SCOPED,
    "websockets": "this proxy calls the Responses API over HTTP",
}

# openai-compatibility[] providers; "api-keys" is the older spelling of api-key-entries.
OPENAI_KEYS = frozenset(
    """
    name disabled priority prefix base-url api-key-entries api-keys models headers
    disable-cooling request-retry
    """.split()
)
IGNORED_OPENAI = {"request-scoped-errors": REQUEST_SCOPED, "support-prompt-cache-key": IGNORED}
OPENAI_ENTRY_KEYS = frozenset({"api-key", "proxy-url", "weight"})

# Credential field -> the config key it comes from, to name it in validation errors.
FIELD_KEYS = {
    "base_url": "base-url",
    "proxy_url": "proxy-url",
    "priority": "priority",
    "weight": "weight",
    "prefix": "prefix",
    "extra_headers": "headers",
    "excluded_models": "excluded-models",
    "disable_cooling": "disable-cooling",
    "request_retry": "request-retry",
    "enabled": "disabled",
    "label": "name",
    "models": "models",
}

MODEL_KEYS = frozenset({"name", "alias", "display-name", "max-context-length"})
IGNORED_MODEL = dict.fromkeys(
    "force-mapping is-compat thinking image input-modalities output-modalities".split(), IGNORED
)

STRATEGIES = {
    "": RoutingStrategy.ROUND_ROBIN,
    "round-robin": RoutingStrategy.ROUND_ROBIN,
    "roundrobin": RoutingStrategy.ROUND_ROBIN,
    "rr": RoutingStrategy.ROUND_ROBIN,
    "fill-first": RoutingStrategy.FILL_FIRST,
    "fillfirst": RoutingStrategy.FILL_FIRST,
    "ff": RoutingStrategy.FILL_FIRST,
    "weighted-round-robin": RoutingStrategy.WEIGHTED_ROUND_ROBIN,
    "weightedroundrobin": RoutingStrategy.WEIGHTED_ROUND_ROBIN,
    "wrr": RoutingStrategy.WEIGHTED_ROUND_ROBIN,
}
MAX_WEIGHT = 1_000_000
DEFAULT_SESSION_TTL = 3600
DEFAULT_TRANSIENT_COOLDOWN = 60
DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


class ConfigError(Exception):
    """The config cannot be imported; ``path`` names the offending key."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


@dataclass(frozen=True)
class ModelSpec:
    name: str
    alias: str = ""
    display_name: str = ""
    max_input_tokens: int | None = None


@dataclass
class ClientKeySpec:
    path: str
    name: str
    key: str = field(repr=False)


@dataclass
class CredentialSpec:
    """One credential to create or update, identified by ``identity`` (hashed before storing)."""

    kind: str  # claude-api-key, gemini-api-key, codex-api-key, openai-compatibility
    path: str  # where it came from, for messages: "claude-api-key[1]"
    label: str
    provider: str
    fields: dict[str, Any]  # Credential field -> value; the fields an import manages
    paths: dict[str, str]  # Credential field -> key path, for validation errors
    models: list[ModelSpec]
    api_key: str = field(repr=False)
    identity: str = field(repr=False)  # "<kind>|<base-url>|<api-key>"


@dataclass
class ImportPlan:
    client_keys: list[ClientKeySpec] = field(default_factory=list)
    credentials: list[CredentialSpec] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # ProxySettings field -> value
    settings_paths: dict[str, str] = field(default_factory=dict)  # field -> config key path
    warnings: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)  # the credential/key sections present


def parse(text: str) -> ImportPlan:
    return _Reader().read(load_yaml(text))


class _StrictLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice in one mapping is an error (as in CLIProxyAPI)."""

    def construct_mapping(self, node, deep=False):
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor`: its keys may be overridden, that is the point
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} appears twice", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no Python objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        if mark is None:
            raise ConfigError("", f"invalid YAML: {problem}") from None
        lines = text.splitlines()
        message = f"invalid YAML at {_where(mark, lines)}: {problem}"
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None and context_mark.line != mark.line:
            # e.g. an unclosed [ or quote: the problem shows at the end, the cause is earlier.
            message += f" ({context} at {_where(context_mark, lines)})"
        raise ConfigError("", message) from None


def _where(mark: Any, lines: list[str]) -> str:
    source = lines[mark.line].strip() if mark.line < len(lines) else ""
    return f"line {mark.line + 1}, column {mark.column + 1}" + (f": {source!r}" if source else "")


def describe(value: Any) -> str:
    """A value as the error message shows it: YAML spelling for scalars, a kind for the rest."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def parse_duration(value: Any, path: str) -> int:
    """A Go duration ("1h", "30m", "1h30m", "90s") or a number of seconds → whole seconds."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(path, f"expected a duration such as '1h' or '90s', got {describe(value)}")
    if isinstance(value, int):
        return value
    text = value.strip().lower()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if not body or DURATION_PART.sub("", body):
        raise ConfigError(path, f"expected a duration such as '1h' or '90s', got {describe(value)}")
    seconds = sum(
        float(number) * DURATION_UNITS[unit] for number, unit in DURATION_PART.findall(body)
    )
    return sign * math.ceil(seconds)


class _Reader:
    def __init__(self) -> None:
        self.plan = ImportPlan()
        self.identities: dict[str, str] = {}  # identity -> path of its first entry

    def warn(self, path: str, message: str) -> None:
        self.plan.warnings.append(f"{path}: {message}")

    # Typed getters. A key given as null counts as absent, as CLIProxyAPI's decoder treats it.

    def mapping(self, value: Any, path: str) -> dict:
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a mapping, got {describe(value)}")
        return value

    def sequence(self, value: Any, path: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(path, f"expected a list, got {describe(value)}")
        return value

    def integer(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"expected an integer, got {describe(value)}")
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected true or false, got {describe(value)}")
        return value

    def string(self, value: Any, path: str) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, got {describe(value)}")
        return value.strip()

    def strings(self, value: Any, path: str) -> list[str]:
        items = [
            self.string(item, f"{path}[{i}]") for i, item in enumerate(self.sequence(value, path))
        ]
        return [item for item in items if item]

    def headers(self, value: Any, path: str) -> dict[str, str]:
        if value is None:
            return {}
        result = {}
        for name, header in self.mapping(value, path).items():
            where = f"{path}.{name}"
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(where, f"expected a header name, got {describe(name)}")
            header = self.string(header, where)
            if header.startswith("$"):
                # CLIProxyAPI copies the client's header of that name; sending "$X" would be wrong.
                self.warn(where, "copying a client header ('$Name') is not supported; skipped")
                continue
            result[name.strip()] = header
        return result

    def check_keys(
        self, entry: dict, path: str, known: frozenset[str], ignored: dict[str, str]
    ) -> dict:
        for key in entry:
            where = f"{path}.{key}" if path else str(key)
            if key in ignored:
                self.warn(where, f"ignored: {ignored[key]}")
            elif key not in known:
                self.warn(where, "unknown key, ignored")
        return {key: value for key, value in entry.items() if key in known and value is not None}

    # The document.

    def read(self, document: Any) -> ImportPlan:
        if document is None:
            return self.plan
        if not isinstance(document, dict):
            raise ConfigError(
                "", f"expected a mapping of settings at the top level, got {describe(document)}"
            )
        readers = {
            "api-keys": self.read_api_keys,
            "claude-api-key": self.read_claude,
            "gemini-api-key": self.read_gemini,
            "codex-api-key": self.read_codex,
            "openai-compatibility": self.read_openai,
            "streaming": self.read_streaming,
            "routing": self.read_routing,
        }
        known = frozenset(readers) | frozenset(TOP_LEVEL_SETTINGS)
        document = self.check_keys(document, "", known, IGNORED_TOP_LEVEL)
        for key, value in document.items():
            if key in readers:
                readers[key](value, key)
            else:
                setting, convert = TOP_LEVEL_SETTINGS[key]
                self.setting(setting, convert(self, value, key), key)
        return self.plan

    def setting(self, name: str, value: Any, path: str) -> None:
        self.plan.settings[name] = value
        self.plan.settings_paths[name] = path

    def read_streaming(self, value: Any, path: str) -> None:
        known = frozenset({"keepalive-seconds", "bootstrap-retries"})
        section = self.check_keys(self.mapping(value, path), path, known, {})
        if "keepalive-seconds" in section:
            where = f"{path}.keepalive-seconds"
            seconds = max(0, self.integer(section["keepalive-seconds"], where))
            self.setting("stream_keepalive_seconds", seconds, where)
        if "bootstrap-retries" in section:
            where = f"{path}.bootstrap-retries"
            self.setting(
                "bootstrap_retries",
                max(0, self.integer(section["bootstrap-retries"], where)),
                where,
            )

    def read_routing(self, value: Any, path: str) -> None:
        known = frozenset({"strategy", "session-affinity", "session-affinity-ttl"})
        ignored = {"session-affinity-subagents": IGNORED}
        section = self.check_keys(self.mapping(value, path), path, known, ignored)
        if "strategy" in section:
            where = f"{path}.strategy"
            name = self.string(section["strategy"], where).lower()
            if name not in STRATEGIES:
                raise ConfigError(
                    where,
                    f"unknown strategy {describe(section['strategy'])} (expected round-robin, "
                    "fill-first or weighted-round-robin)",
                )
            self.setting("routing_strategy", STRATEGIES[name].value, where)
        if "session-affinity" in section:
            where = f"{path}.session-affinity"
            self.setting(
                "session_affinity", self.boolean(section["session-affinity"], where), where
            )
        if "session-affinity-ttl" in section:
            where = f"{path}.session-affinity-ttl"
            seconds = parse_duration(section["session-affinity-ttl"], where)
            # CLIProxyAPI falls back to its default (1 h) for a zero or negative TTL.
            self.setting(
                "session_affinity_ttl", seconds if seconds > 0 else DEFAULT_SESSION_TTL, where
            )

    def read_api_keys(self, value: Any, path: str) -> None:
        self.plan.sections.append(path)
        seen: set[str] = set()
        for index, item in enumerate(self.sequence(value, path)):
            where = f"{path}[{index}]"
            key = self.string(item, where)
            if not key:
                self.warn(where, "empty key, skipped")
            elif key in seen:
                self.warn(where, "the same key appears earlier, skipped")
            else:
                seen.add(key)
                self.plan.client_keys.append(ClientKeySpec(where, f"imported-{index + 1}", key))

    def read_claude(self, value: Any, path: str) -> None:
        self.read_key_entries(value, path, Provider.ANTHROPIC, "claude", IGNORED_CLAUDE_ENTRY)

    def read_gemini(self, value: Any, path: str) -> None:
        self.read_key_entries(value, path, Provider.GEMINI, "gemini", IGNORED_GEMINI_ENTRY)

    def read_codex(self, value: Any, path: str) -> None:
        self.read_key_entries(
            value, path, Provider.OPENAI_RESPONSES, "responses", IGNORED_CODEX_ENTRY
        )

    def read_key_entries(
        self, value: Any, path: str, provider: str, label: str, ignored: dict[str, str]
    ) -> None:
        self.plan.sections.append(path)
        for index, item in enumerate(self.sequence(value, path)):
            where = f"{path}[{index}]"
            entry = self.check_keys(self.mapping(item, where), where, ENTRY_KEYS, ignored)
            api_key = self.string(entry.get("api-key"), f"{where}.api-key")
            base_url = self.string(entry.get("base-url"), f"{where}.base-url")
            if not api_key and not base_url:
                self.warn(where, "neither api-key nor base-url, skipped")
                continue
            excluded = self.strings(entry.get("excluded-models"), f"{where}.excluded-models")
            fields = self.credential_fields(entry, where) | {
                "base_url": base_url,
                "proxy_url": self.string(entry.get("proxy-url"), f"{where}.proxy-url"),
                "weight": self.weight(entry.get("weight"), f"{where}.weight"),
                "excluded_models": "\n".join(excluded),
            }
            self.add_credential(
                CredentialSpec(
                    kind=path,
                    path=where,
                    label=f"{label} #{index + 1}",
                    provider=provider,
                    fields=fields,
                    paths=key_paths(where),
                    models=self.models(entry.get("models"), f"{where}.models"),
                    api_key=api_key,
                    identity=f"{path}|{base_url}|{api_key}",
                )
            )

    def read_openai(self, value: Any, path: str) -> None:
        self.plan.sections.append(path)
        for index, item in enumerate(self.sequence(value, path)):
            where = f"{path}[{index}]"
            provider = self.check_keys(
                self.mapping(item, where), where, OPENAI_KEYS, IGNORED_OPENAI
            )
            name = self.string(provider.get("name"), f"{where}.name")
            base_url = self.string(provider.get("base-url"), f"{where}.base-url")
            if not name:
                self.warn(where, "no name, skipped")
                continue
            if not base_url:
                self.warn(where, "no base-url, skipped")
                continue
            disabled = self.boolean(provider.get("disabled", False), f"{where}.disabled")
            shared = self.credential_fields(provider, where) | {
                "base_url": base_url,
                "enabled": not disabled,
            }
            models = self.models(provider.get("models"), f"{where}.models")
            entries = self.openai_entries(provider, where)
            if not entries:
                # A server that needs no key (a local vLLM or Ollama): one key-less credential.
                entries = [("", "", 1, where)]
            for number, (api_key, proxy_url, weight, entry_path) in enumerate(entries, start=1):
                paths = key_paths(where)
                paths["proxy_url"], paths["weight"] = (
                    f"{entry_path}.proxy-url",
                    f"{entry_path}.weight",
                )
                self.add_credential(
                    CredentialSpec(
                        kind=f"{path}:{name}",
                        path=entry_path,
                        label=f"{name} #{number}" if api_key else name,
                        provider=Provider.OPENAI,
                        fields=shared | {"proxy_url": proxy_url, "weight": weight},
                        paths=paths,
                        models=models,
                        api_key=api_key,
                        identity=f"{path}:{name}|{base_url}|{api_key}",
                    )
                )

    def openai_entries(self, provider: dict, path: str) -> list[tuple[str, str, int, str]]:
        """(api key, proxy url, weight, key path) per api-key-entries item."""
        entries = []
        items = self.sequence(provider.get("api-key-entries"), f"{path}.api-key-entries")
        for index, item in enumerate(items):
            where = f"{path}.api-key-entries[{index}]"
            entry = self.check_keys(self.mapping(item, where), where, OPENAI_ENTRY_KEYS, {})
            api_key = self.string(entry.get("api-key"), f"{where}.api-key")
            proxy_url = self.string(entry.get("proxy-url"), f"{where}.proxy-url")
            weight = self.weight(entry.get("weight"), f"{where}.weight")
            entries.append((api_key, proxy_url, weight, where))
        # The older spelling: a plain list of keys.
        legacy = self.sequence(provider.get("api-keys"), f"{path}.api-keys")
        for index, item in enumerate(legacy):
            where = f"{path}.api-keys[{index}]"
            entries.append((self.string(item, where), "", 1, where))
        return entries

    def credential_fields(self, entry: dict, path: str) -> dict[str, Any]:
        """The fields claude, gemini and openai-compatibility entries share."""
        retry = entry.get("request-retry")
        if retry is not None:
            retry = self.integer(retry, f"{path}.request-retry")
            retry = retry if retry >= 0 else None  # below 0: inherit the global setting
        cooling = entry.get("disable-cooling")
        if cooling is not None:
            cooling = self.boolean(cooling, f"{path}.disable-cooling")
        prefix = self.string(entry.get("prefix"), f"{path}.prefix").strip("/").strip()
        if "/" in prefix:
            raise ConfigError(
                f"{path}.prefix", f"a prefix cannot contain '/', got {describe(prefix)}"
            )
        return {
            "priority": self.integer(entry.get("priority", 0), f"{path}.priority"),
            "prefix": prefix,
            "extra_headers": self.headers(entry.get("headers"), f"{path}.headers"),
            "disable_cooling": cooling,
            "request_retry": retry,
        }

    def weight(self, value: Any, path: str) -> int:
        if value is None:
            return 1
        return min(self.integer(value, path), MAX_WEIGHT)

    def models(self, value: Any, path: str) -> list[ModelSpec]:
        models = []
        for index, item in enumerate(self.sequence(value, path)):
            where = f"{path}[{index}]"
            entry = self.check_keys(self.mapping(item, where), where, MODEL_KEYS, IGNORED_MODEL)
            name = self.string(entry.get("name"), f"{where}.name")
            alias = self.string(entry.get("alias"), f"{where}.alias")
            if not name:
                self.warn(where, "no name, skipped")
                continue
            context = entry.get("max-context-length")
            if context is not None:
                context = self.integer(context, f"{where}.max-context-length")
                if context < 0:
                    raise ConfigError(
                        f"{where}.max-context-length",
                        f"expected a positive integer, got {context}",
                    )
            models.append(
                ModelSpec(
                    name=name,
                    alias=alias if alias != name else "",
                    display_name=self.string(entry.get("display-name"), f"{where}.display-name"),
                    max_input_tokens=context or None,
                )
            )
        return models

    def add_credential(self, spec: CredentialSpec) -> None:
        first = self.identities.get(spec.identity)
        if first is not None:
            self.warn(spec.path, f"the same key and base-url as {first}, skipped")
            return
        self.identities[spec.identity] = spec.path
        self.plan.credentials.append(spec)


def key_paths(path: str) -> dict[str, str]:
    return {name: f"{path}.{key}" for name, key in FIELD_KEYS.items()}


# Top-level scalar settings: config key -> (ProxySettings field, converter).


def _count(reader: _Reader, value: Any, path: str) -> int:
    return max(0, reader.integer(value, path))  # below 0 means 0 ("off" / "all")


def _transient(reader: _Reader, value: Any, path: str) -> int:
    seconds = reader.integer(value, path)
    if seconds == 0:
        return DEFAULT_TRANSIENT_COOLDOWN  # CLIProxyAPI keeps its legacy 60 s for 0
    return -1 if seconds < 0 else seconds


def _boolean(reader: _Reader, value: Any, path: str) -> bool:
    return reader.boolean(value, path)


def _string(reader: _Reader, value: Any, path: str) -> str:
    return reader.string(value, path)


TOP_LEVEL_SETTINGS = {
    "nonstream-keepalive-interval": ("nonstream_keepalive_interval", _count),
    "request-retry": ("request_retry", _count),
    "max-retry-credentials": ("max_retry_credentials", _count),
    "max-retry-interval": ("max_retry_interval", _count),
    "disable-cooling": ("disable_cooling", _boolean),
    "transient-error-cooldown-seconds": ("transient_error_cooldown_seconds", _transient),
    "passthrough-headers": ("passthrough_headers", _boolean),
    "proxy-url": ("proxy_url", _string),
    "force-model-prefix": ("force_model_prefix", _boolean),
}
