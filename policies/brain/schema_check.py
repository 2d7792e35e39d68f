"""A small JSON-schema validator for the subset of keywords the brain's schemas use.

Keywords: ``type`` (a name or a list of names), ``enum``, ``anyOf``, ``properties``,
``required``, ``additionalProperties`` (false only), ``items``, ``minItems``, ``maxItems``,
``minimum``, ``maximum``. Annotations (``title``, ``description``) are ignored; any other keyword
raises, so that a schema never passes an answer it was meant to reject. (The ``jsonschema``
package is not a dependency of kinema; this covers what the plan and verdict schemas need.)

Example:
    >>> schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}},
    ...           "required": ["n"], "additionalProperties": False}
    >>> schema_errors({"n": -1}, schema)
    ['$.n: -1 is less than the minimum 0']
"""

from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "null": (type(None),),
}
_CHECKED = {
    "type",
    "enum",
    "anyOf",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
}
_ANNOTATIONS = {"title", "description"}


def _is_type(value: Any, name: str) -> bool:
    if name not in _TYPES:
        raise ValueError(f"schema_errors: unknown JSON type {name!r}; known: {list(_TYPES)}")
    if isinstance(value, bool) and name != "boolean":
        return False  # JSON true/false are not numbers, though Python's bool is an int
    return isinstance(value, _TYPES[name])


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Every way ``value`` (parsed JSON) breaks ``schema``, one message each, naming the path
    (``$.subtasks[1].object``); empty when it conforms.

    Raises:
        ValueError: if the schema uses a keyword outside the supported subset.
    """
    unsupported = set(schema) - _CHECKED - _ANNOTATIONS
    if unsupported:
        raise ValueError(f"schema_errors: unsupported schema keywords {sorted(unsupported)}")
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, name) for name in names):
            return [f"{path}: expected {' or '.join(names)}, got {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} is not one of {schema['enum']}"]
    if "anyOf" in schema:
        branches = [schema_errors(value, branch, path) for branch in schema["anyOf"]]
        if all(branches):
            return [" or ".join(errors[0] for errors in branches)]
    errors: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        required = schema.get("required", ())
        errors += [f"{path}: missing {key!r}" for key in required if key not in value]
        if schema.get("additionalProperties", True) is False:
            errors += [f"{path}: unexpected key {key!r}" for key in value if key not in properties]
        for key, subschema in properties.items():
            if key in value:
                errors += schema_errors(value[key], subschema, f"{path}.{key}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: needs at least {schema['minItems']} items, got {len(value)}")
        if len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{path}: allows at most {schema['maxItems']} items, got {len(value)}")
        if "items" in schema:
            for index, item in enumerate(value):
                errors += schema_errors(item, schema["items"], f"{path}[{index}]")
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: {value!r} is less than the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: {value!r} is more than the maximum {schema['maximum']}")
    return errors
