"""A small JSON Schema (2020-12 subset) validator.

The same schema values validate request bodies and appear in the OpenAPI
document, so the documentation cannot drift from what the server accepts.
Supported: type (one or a list), properties, required,
additionalProperties (false or a schema), items, minItems, maxItems,
minLength, maxLength, pattern, enum, minimum, maximum. Every problem is
collected with its JSON path, as octoDNS reports every reason at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Union

JsonValue = Union[None, bool, int, float, str, list["JsonValue"], dict[str, "JsonValue"]]  # noqa: UP007
JsonObject = dict[str, JsonValue]
Schema = Mapping[str, object]

MAX_ERRORS = 50


def _is_type(value: object, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "array":
        return isinstance(value, list)
    if name == "object":
        return isinstance(value, dict)
    raise ValueError(f"unknown JSON type {name}")


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def validate(schema: Schema, value: object, path: str = "$") -> list[str]:
    """Every way `value` breaks `schema`, as "path: reason" lines."""
    errors: list[str] = []
    _check(schema, value, path, errors)
    return errors[:MAX_ERRORS]


def _check(schema: Schema, value: object, path: str, errors: list[str]) -> None:
    if len(errors) >= MAX_ERRORS:
        return
    kind = schema.get("type")
    if kind is not None:
        kinds = [kind] if isinstance(kind, str) else list(kind)  # type: ignore[call-overload]
        if not any(_is_type(value, k) for k in kinds):
            errors.append(f"{path}: expected {' or '.join(kinds)}")
            return
    enum = schema.get("enum")
    if isinstance(enum, list | tuple) and value not in enum:
        shown = ", ".join(repr(e) for e in enum)
        errors.append(f"{path}: must be one of {shown}")
        return
    if isinstance(value, str):
        _check_string(schema, value, path, errors)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        minimum, maximum = schema.get("minimum"), schema.get("maximum")
        if isinstance(minimum, int | float) and value < minimum:
            errors.append(f"{path}: must be at least {minimum}")
        if isinstance(maximum, int | float) and value > maximum:
            errors.append(f"{path}: must be at most {maximum}")
    elif isinstance(value, list):
        _check_array(schema, value, path, errors)
    elif isinstance(value, dict):
        _check_object(schema, value, path, errors)


def _check_string(schema: Schema, value: str, path: str, errors: list[str]) -> None:
    min_len, max_len = schema.get("minLength"), schema.get("maxLength")
    if isinstance(min_len, int) and len(value) < min_len:
        errors.append(f"{path}: at least {min_len} characters")
    if isinstance(max_len, int) and len(value) > max_len:
        errors.append(f"{path}: at most {max_len} characters")
        return
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and not _pattern(pattern).search(value):
        errors.append(f"{path}: does not match {pattern}")


def _check_array(schema: Schema, value: list[object], path: str, errors: list[str]) -> None:
    min_items, max_items = schema.get("minItems"), schema.get("maxItems")
    if isinstance(min_items, int) and len(value) < min_items:
        errors.append(f"{path}: at least {min_items} items")
    if isinstance(max_items, int) and len(value) > max_items:
        errors.append(f"{path}: at most {max_items} items")
        return
    items = schema.get("items")
    if isinstance(items, Mapping):
        for i, item in enumerate(value):
            _check(items, item, f"{path}[{i}]", errors)


def _check_object(schema: Schema, value: dict[object, object], path: str,
                  errors: list[str]) -> None:
    props = schema.get("properties")
    properties: Mapping[str, Schema] = props if isinstance(props, Mapping) else {}
    required = schema.get("required")
    for name in required if isinstance(required, list | tuple) else ():
        if name not in value:
            errors.append(f"{path}.{name}: required")
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        sub = f"{path}.{key}"
        if key in properties:
            _check(properties[str(key)], item, sub, errors)
        elif extra is False:
            errors.append(f"{sub}: unknown field")
        elif isinstance(extra, Mapping):
            _check(extra, item, sub, errors)


# Builders, to keep schema literals short and uniform.

def obj(properties: Mapping[str, Schema], required: tuple[str, ...] = (),
        description: str | None = None) -> dict[str, object]:
    """A closed object: unknown fields are refused."""
    schema: dict[str, object] = {
        "type": "object", "properties": dict(properties), "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    if description:
        schema["description"] = description
    return schema


def string(max_length: int = 1000, *, min_length: int = 0, nullable: bool = False,
           enum: tuple[str, ...] | None = None, pattern: str | None = None,
           description: str | None = None) -> dict[str, object]:
    schema: dict[str, object] = {"type": ["string", "null"] if nullable else "string",
                                 "maxLength": max_length}
    if min_length:
        schema["minLength"] = min_length
    if enum is not None:
        schema["enum"] = [*enum, None] if nullable else list(enum)
    if pattern is not None:
        schema["pattern"] = pattern
    if description:
        schema["description"] = description
    return schema


def integer(minimum: int | None = None, maximum: int | None = None, *,
            nullable: bool = False, description: str | None = None) -> dict[str, object]:
    schema: dict[str, object] = {"type": ["integer", "null"] if nullable else "integer"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    if description:
        schema["description"] = description
    return schema


def boolean(description: str | None = None) -> dict[str, object]:
    schema: dict[str, object] = {"type": "boolean"}
    if description:
        schema["description"] = description
    return schema


def array(items: Schema, max_items: int = 1000, *, min_items: int = 0,
          nullable: bool = False) -> dict[str, object]:
    schema: dict[str, object] = {"type": ["array", "null"] if nullable else "array",
                                 "items": dict(items), "maxItems": max_items}
    if min_items:
        schema["minItems"] = min_items
    return schema


def open_object(description: str | None = None) -> dict[str, object]:
    """Response objects: documented loosely (fields may be added)."""
    schema: dict[str, object] = {"type": "object"}
    if description:
        schema["description"] = description
    return schema
