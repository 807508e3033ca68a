"""Tool input schemas for Gemini ``functionDeclarations``.

Two shapes, chosen by the caller (see ``gemini.build_request(schema_mode=…)``):

* ``json_schema_for_gemini`` feeds ``parametersJsonSchema``, which takes real JSON Schema. Only
  the root ``$schema`` is removed; everything else goes through unchanged.
* ``sanitize_schema`` feeds the legacy ``parameters`` field, an OpenAPI-3.0 subset whose proto
  parser rejects the whole request on the first keyword it does not know ("Unknown name …
  Cannot find field"). The output only ever contains ``ALLOWED_KEYWORDS``.

Both are pure. ``sanitize_schema`` results are cached and shared between requests: treat them
as read-only (the request body is only ever serialised).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import orjson

# The keywords the sanitised output may contain (protocol.md §6). ``default`` and ``example`` are
# in Google's Schema message too, but there are reports of the Developer API answering
# "Unknown name "default"", and they are only hints, so we never send them.
ALLOWED_KEYWORDS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "properties",
        "required",
        "propertyOrdering",
        "minProperties",
        "maxProperties",
        "items",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "anyOf",
    }
)

_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object"})
# Gemini: "only 'enum' and 'date-time' are supported for STRING type".
_STRING_FORMATS = frozenset({"enum", "date-time"})

# Recursion guards. A self-referencing $ref (a tree node whose children are the same type) is cut
# at its second visit; the depth and node budgets stop pathological but non-recursive schemas
# (deep nesting, diamond-shaped $ref fan-out) from growing without bound.
_MAX_DEPTH = 32
_MAX_NODES = 4000
_OBJECT_FALLBACK = {"type": "object"}
# Keywords that describe the whole value, not one branch of a type array.
_UNION_OUTER = frozenset({"type", "title", "description", "nullable"})

_CACHE_LIMIT = 512
_cache: dict[bytes, dict[str, Any] | None] = {}


def json_schema_for_gemini(schema: Any) -> dict[str, Any]:
    """``input_schema`` as ``parametersJsonSchema``: real JSON Schema minus the root ``$schema``."""
    if not isinstance(schema, dict):
        return {"type": "object", "properties": {}}
    if "$schema" not in schema:
        return schema
    return {key: value for key, value in schema.items() if key != "$schema"}


def sanitize_schema(schema: Any) -> dict[str, Any] | None:
    """``input_schema`` as an OpenAPI-subset ``parameters`` schema, or None for "no parameters".

    Gemini rejects an OBJECT root with empty ``properties``, so a tool without parameters must
    omit ``parameters`` altogether.
    """
    if not isinstance(schema, dict):
        return None
    try:
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        key = None
    if key is not None and key in _cache:
        return _cache[key]
    result = _sanitize_root(schema)
    if key is not None:
        if len(_cache) >= _CACHE_LIMIT:
            # Tool sets are small and stable (one per client version), so a full reset is rare
            # and cheaper than LRU bookkeeping on every hit.
            _cache.clear()
        _cache[key] = result
    return result


def _sanitize_root(schema: dict[str, Any]) -> dict[str, Any] | None:
    cleaned = _Cleaner(schema).clean(schema, 0, ("#",))
    if not cleaned.get("properties"):
        return None
    # Gemini requires the function-parameters root to be an OBJECT schema.
    cleaned["type"] = "object"
    cleaned.pop("anyOf", None)
    cleaned.pop("nullable", None)
    return cleaned


def _enum_value(value: Any) -> str:
    # JSON spelling rather than Python's str(): True -> "true", not "True".
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Cleaner:
    """One sanitising pass over one schema (holds the root for ``$ref`` resolution)."""

    __slots__ = ("root", "nodes")

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.nodes = 0

    def resolve(self, ref: str) -> dict[str, Any] | None:
        """A local JSON pointer (``#/$defs/X``, ``#/definitions/X``, ``#/properties/a``)."""
        if not ref.startswith("#"):
            return None  # remote refs are never fetched
        node: Any = self.root
        pointer = unquote(ref[1:])
        if pointer:
            if not pointer.startswith("/"):
                return None  # "#anchor" style; $anchor is not supported
            for token in pointer[1:].split("/"):
                token = token.replace("~1", "/").replace("~0", "~")
                if isinstance(node, dict) and token in node:
                    node = node[token]
                elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                    node = node[int(token)]
                else:
                    return None
        return node if isinstance(node, dict) else None

    def deref(
        self, node: dict[str, Any], refs: tuple[str, ...]
    ) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
        """Inline a ``$ref`` (siblings such as ``description`` win); None when it cannot be."""
        ref = node.get("$ref")
        if not isinstance(ref, str):
            return node, refs
        if ref in refs or len(refs) > _MAX_DEPTH:
            return None, refs
        target = self.resolve(ref)
        if target is None:
            return None, refs
        merged = dict(target)
        for key, value in node.items():
            if key != "$ref":
                merged[key] = value
        return merged, (*refs, ref)

    def merge_all_of(
        self, node: dict[str, Any], refs: tuple[str, ...], depth: int
    ) -> dict[str, Any]:
        """allOf -> one schema: properties merged, required unioned, other keywords first wins."""
        merged = {key: value for key, value in node.items() if key != "allOf"}
        properties = (
            dict(merged["properties"]) if isinstance(merged.get("properties"), dict) else {}
        )
        required = list(merged["required"]) if isinstance(merged.get("required"), list) else []
        for sub in node["allOf"]:
            if not isinstance(sub, dict):
                continue
            sub, sub_refs = self.deref(sub, refs)
            if sub is None:
                continue
            if isinstance(sub.get("allOf"), list) and depth < _MAX_DEPTH:
                sub = self.merge_all_of(sub, sub_refs, depth + 1)
            for key, value in sub.items():
                if key == "properties" and isinstance(value, dict):
                    for name, prop in value.items():
                        properties.setdefault(name, prop)
                elif key == "required" and isinstance(value, list):
                    required.extend(name for name in value if name not in required)
                elif key not in merged:
                    merged[key] = value
        if properties:
            merged["properties"] = properties
            merged.setdefault("type", "object")
        if required:
            merged["required"] = required
        return merged

    def clean(self, node: Any, depth: int, refs: tuple[str, ...]) -> dict[str, Any]:
        self.nodes += 1
        if not isinstance(node, dict):
            return {"type": "string"}  # `true` / garbage: unconstrained, typed like {} below
        if depth > _MAX_DEPTH or self.nodes > _MAX_NODES:
            return dict(_OBJECT_FALLBACK)
        if "$ref" in node:
            resolved, refs = self.deref(node, refs)
            if resolved is None:
                fallback = dict(_OBJECT_FALLBACK)
                if isinstance(node.get("description"), str):
                    fallback["description"] = node["description"]
                return fallback
            node = resolved
        if isinstance(node.get("allOf"), list):
            node = self.merge_all_of(node, refs, depth)

        out: dict[str, Any] = {}
        for key in ("title", "description"):
            if isinstance(node.get(key), str):
                out[key] = node[key]
        nullable = node.get("nullable") is True

        kind = node.get("type")
        if isinstance(kind, list):
            kinds = [k.lower() for k in kind if isinstance(k, str)]
            if "null" in kinds:
                nullable = True
                kinds = [k for k in kinds if k != "null"]
            if len(kinds) > 1:
                # ["string", "number"]: one branch per type, each keeping its own keywords.
                bare = {k: v for k, v in node.items() if k not in _UNION_OUTER}
                branches = [
                    self.clean({**bare, "type": k}, depth + 1, refs) for k in dict.fromkeys(kinds)
                ]
                return self.finish_union(out, branches, nullable)
            kind = kinds[0] if kinds else None
        elif isinstance(kind, str):
            kind = kind.lower()
            if kind == "null":
                kind, nullable = None, True
        else:
            kind = None
        if kind not in _TYPES:
            kind = None

        enum: list[str] | None = None
        if "const" in node:
            enum = [_enum_value(node["const"])]
        elif isinstance(node.get("enum"), list):
            values = node["enum"]
            if None in values:
                nullable = True
            enum = [_enum_value(v) for v in values if v is not None] or None
        if enum is not None:
            kind = "string"  # Gemini: "enum: only allowed for STRING type"

        if kind is None:
            if isinstance(node.get("properties"), dict):
                kind = "object"
            elif "items" in node or "prefixItems" in node:
                kind = "array"

        union = node.get("anyOf")
        if not isinstance(union, list):
            union = node.get("oneOf")
        has_structure = kind in ("object", "array") and (
            isinstance(node.get("properties"), dict) or "items" in node
        )
        if isinstance(union, list) and union and not has_structure:
            if kind is not None:
                # {"type": "integer", "anyOf": [{"minimum": 1}, …]}: the outer type applies to
                # every branch that does not name its own.
                union = [
                    {**sub, "type": kind}
                    if isinstance(sub, dict) and "type" not in sub and "$ref" not in sub
                    else sub
                    for sub in union
                ]
            branches = [self.clean(sub, depth + 1, refs) for sub in union]
            return self.finish_union(out, branches, nullable)

        if kind is not None:
            out["type"] = kind
        if nullable:
            out["nullable"] = True
        if enum is not None:
            out["enum"] = enum

        if kind == "string":
            fmt = node.get("format")
            if fmt in _STRING_FORMATS:
                out["format"] = fmt
            for key in ("minLength", "maxLength"):
                if _is_int(node.get(key)):
                    out[key] = node[key]
            if isinstance(node.get("pattern"), str) and enum is None:
                out["pattern"] = node["pattern"]
        elif kind in ("number", "integer"):
            for key in ("minimum", "maximum"):
                if _is_number(node.get(key)):
                    out[key] = node[key]
        elif kind == "array":
            items = node.get("items")
            if items is None or isinstance(items, bool):
                items = node.get("prefixItems")
            if isinstance(items, list):
                items = items[0] if len(items) == 1 else {"anyOf": items} if items else None
            # A missing or empty `items` is a 400 ("items: missing field").
            out["items"] = _typed(
                self.clean(items, depth + 1, refs) if isinstance(items, dict) else {}
            )
            for key in ("minItems", "maxItems"):
                if _is_int(node.get(key)):
                    out[key] = node[key]
        elif kind == "object":
            self.clean_object(out, node, depth, refs)
        elif kind is None and not nullable:
            # An untyped leaf ({} / description only). Gemini wants a type on every field it
            # validates; a string is the most permissive thing a model can always produce.
            out["type"] = "string"
        return out

    def clean_object(
        self, out: dict[str, Any], node: dict[str, Any], depth: int, refs: tuple[str, ...]
    ) -> None:
        properties = node.get("properties")
        # "properties: should be non-empty for OBJECT type": a free-form object (only
        # additionalProperties / propertyNames) stays a bare {"type": "object"}.
        if isinstance(properties, dict) and properties:
            cleaned = {
                str(name): _typed(self.clean(sub, depth + 1, refs))
                for name, sub in properties.items()
            }
            out["properties"] = cleaned
            required = node.get("required")
            if isinstance(required, list):
                kept = [
                    name
                    for name in dict.fromkeys(required)
                    if isinstance(name, str) and name in cleaned
                ]
                if kept:
                    out["required"] = kept
            ordering = node.get("propertyOrdering")
            if isinstance(ordering, list) and all(
                isinstance(name, str) and name in cleaned for name in ordering
            ):
                out["propertyOrdering"] = list(ordering)
            for key in ("minProperties", "maxProperties"):
                if _is_int(node.get(key)):
                    out[key] = node[key]

    def finish_union(
        self, out: dict[str, Any], branches: list[dict[str, Any]], nullable: bool
    ) -> dict[str, Any]:
        """anyOf/oneOf/type-array branches -> nullable, a merged enum, one hoisted branch, or anyOf."""
        kept = []
        for branch in branches:
            if "type" not in branch and "anyOf" not in branch:
                if branch.get("nullable"):
                    nullable = True  # the {"type": "null"} branch of Optional[X]
                continue  # (only null branches are untyped here; {} became a string)
            kept.append(branch)
        if not kept:
            result = dict(out)
            result["type"] = "string"
        elif len(kept) == 1:
            result = {**kept[0], **out}  # the outer description/title wins
        elif all(_is_plain_string_enum(b) for b in kept):
            values: list[str] = []
            for branch in kept:
                values.extend(v for v in branch["enum"] if v not in values)
            result = {**out, "type": "string", "enum": values}
        else:
            result = {**out, "anyOf": kept}
        if nullable:
            result["nullable"] = True
        return result


def _typed(schema: dict[str, Any]) -> dict[str, Any]:
    """A lone ``{"type": "null"}`` (-> ``{"nullable": true}``) still needs a type for Gemini."""
    if "type" not in schema and "anyOf" not in schema:
        schema["type"] = "string"
    return schema


def _is_plain_string_enum(schema: dict[str, Any]) -> bool:
    return (
        schema.get("type") == "string"
        and "enum" in schema
        and schema.keys() <= {"type", "enum", "description", "title", "nullable", "format"}
    )
