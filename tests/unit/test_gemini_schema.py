"""The tool-schema sanitiser behind Gemini's ``parameters`` fallback mode."""

from __future__ import annotations

from typing import Any

from claude_api.translate.gemini.schema import (
    ALLOWED_KEYWORDS,
    json_schema_for_gemini,
    sanitize_schema,
)


def params(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, **extra}


def prop(schema: dict[str, Any]) -> Any:
    """Sanitise ``schema`` as the single property ``p`` of a tool and return what became of it."""
    result = sanitize_schema(params({"p": schema}))
    assert result is not None
    return result["properties"]["p"]


def keywords(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        found |= set(schema)
        for sub in schema.get("properties", {}).values():
            found |= keywords(sub)
        found |= keywords(schema.get("items"))
        for branch in schema.get("anyOf", []):
            found |= keywords(branch)
    return found


def test_it_strips_only_the_root_schema_keyword_for_parameters_json_schema():
    schema = {
        "$schema": "x",
        "type": "object",
        "properties": {"a": {"$schema": "y"}},
        "additionalProperties": False,
    }
    assert json_schema_for_gemini(schema) == {
        "type": "object",
        "properties": {"a": {"$schema": "y"}},
        "additionalProperties": False,
    }
    plain = {"type": "object", "properties": {}}
    assert json_schema_for_gemini(plain) is plain  # nothing to strip: no copy
    assert json_schema_for_gemini(None) == {"type": "object", "properties": {}}


def test_it_omits_parameters_when_there_are_none():
    assert sanitize_schema({"type": "object", "properties": {}}) is None
    assert sanitize_schema({"type": "object", "additionalProperties": {"type": "string"}}) is None
    assert sanitize_schema("garbage") is None


def test_it_forces_an_object_root():
    assert sanitize_schema({"properties": {"a": {"type": "string"}}, "nullable": True}) == params(
        {"a": {"type": "string"}}
    )


def test_it_caches_per_schema_content():
    schema = params({"a": {"type": "string", "format": "email"}})
    first = sanitize_schema(schema)
    assert sanitize_schema(dict(schema)) is first  # equal content, same cached result
    assert sanitize_schema(params({"b": {"type": "string"}})) is not first


def test_it_cuts_recursive_refs():
    schema = params({"name": {"type": "string"}, "parent": {"$ref": "#"}})
    assert sanitize_schema(schema) == params(
        {"name": {"type": "string"}, "parent": {"type": "object"}}
    )


def test_it_falls_back_for_unresolvable_refs():
    assert prop({"$ref": "#/$defs/Missing", "description": "Gone"}) == {
        "type": "object",
        "description": "Gone",
    }
    assert prop({"$ref": "https://example.com/schema.json"}) == {"type": "object"}


def test_it_resolves_definitions_and_escaped_pointers():
    schema = params(
        {
            "a": {"$ref": "#/definitions/a~1b"},
            "b": {"$ref": "#/properties/c"},
            "c": {"type": "integer"},
        },
        definitions={"a/b": {"type": "boolean"}},
    )
    assert sanitize_schema(schema) == params(
        {"a": {"type": "boolean"}, "b": {"type": "integer"}, "c": {"type": "integer"}}
    )


def test_it_survives_deep_nesting_and_ref_fan_out():
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(200):
        deep = params({"x": deep})
    assert sanitize_schema(deep) is not None

    defs = {
        f"D{i}": params({"l": {"$ref": f"#/$defs/D{i + 1}"}, "r": {"$ref": f"#/$defs/D{i + 1}"}})
        for i in range(30)
    }
    defs["D30"] = {"type": "string"}
    fan_out = params({"root": {"$ref": "#/$defs/D0"}}, **{"$defs": defs})
    result = sanitize_schema(fan_out)  # 2**30 paths without the node budget
    assert result is not None and keywords(result) <= ALLOWED_KEYWORDS


def test_it_stringifies_enums_and_turns_null_into_nullable():
    assert prop({"enum": [True, False, None]}) == {
        "type": "string",
        "nullable": True,
        "enum": ["true", "false"],
    }
    assert prop({"type": "number", "enum": [1.5, 2]}) == {"type": "string", "enum": ["1.5", "2"]}
    assert prop({"const": 3}) == {"type": "string", "enum": ["3"]}
    assert prop({"type": "STRING", "enum": ["a"], "pattern": "^a$"}) == {
        "type": "string",
        "enum": ["a"],
    }


def test_it_splits_multi_type_arrays_into_any_of():
    assert prop({"type": ["string", "integer", "null"], "description": "Id", "minimum": 0}) == {
        "description": "Id",
        "anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}],
        "nullable": True,
    }
    assert prop({"type": ["null"]}) == {"nullable": True, "type": "string"}
    assert prop({"type": "array", "items": {"type": "null"}}) == {
        "type": "array",
        "items": {"nullable": True, "type": "string"},
    }


def test_it_handles_tuple_items_and_bare_arrays():
    assert prop({"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}) == {
        "type": "array",
        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
    }
    assert prop(
        {"type": "array", "prefixItems": [{"type": "number"}], "minItems": 1, "uniqueItems": True}
    ) == {
        "type": "array",
        "items": {"type": "number"},
        "minItems": 1,
    }
    assert prop({"type": "array", "items": {}}) == {"type": "array", "items": {"type": "string"}}


def test_it_types_unconstrained_leaves():
    result = sanitize_schema(params({"any": {}, "yes": True, "desc": {"description": "Anything"}}))
    assert result == params(
        {
            "any": {"type": "string"},
            "yes": {"type": "string"},
            "desc": {"type": "string", "description": "Anything"},
        }
    )


def test_it_applies_the_outer_type_to_any_of_branches():
    assert prop({"type": "integer", "anyOf": [{"minimum": 10}, {"maximum": -10}]}) == {
        "anyOf": [{"type": "integer", "minimum": 10}, {"type": "integer", "maximum": -10}]
    }


def test_it_keeps_the_object_when_any_of_only_constrains_required():
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        "anyOf": [{"required": ["a"]}, {"required": ["b"]}],
    }
    assert prop(schema) == {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
    }


def test_it_merges_nested_all_of():
    schema = {
        "allOf": [
            {"allOf": [params({"a": {"type": "string"}}, required=["a"])]},
            params({"b": {"type": "integer"}}, required=["b", "a"]),
        ],
        "description": "Merged",
    }
    assert prop(schema) == {
        "description": "Merged",
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    }


def test_it_cleans_required_and_property_ordering():
    schema = params(
        {"a": {"type": "string"}, "b": {"type": "string"}},
        required=["a", "a", "ghost", 3],
        propertyOrdering=["b", "a"],
    )
    assert sanitize_schema(schema) == params(
        {"a": {"type": "string"}, "b": {"type": "string"}},
        required=["a"],
        propertyOrdering=["b", "a"],
    )
    bad_ordering = params({"a": {"type": "string"}}, propertyOrdering=["zzz"])
    assert sanitize_schema(bad_ordering) == params({"a": {"type": "string"}})


def test_it_only_keeps_keywords_that_fit_the_type():
    assert prop(
        {"type": "string", "minimum": 1, "items": {"type": "string"}, "properties": {"x": {}}}
    ) == {"type": "string"}
    assert prop({"type": "integer", "minLength": 1, "minimum": 0, "maximum": True}) == {
        "type": "integer",
        "minimum": 0,
    }
    assert prop({"type": "boolean", "default": True, "examples": [True], "title": "Flag"}) == {
        "type": "boolean",
        "title": "Flag",
    }
