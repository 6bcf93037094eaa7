"""The params schema (``params.schema.yaml`` beside this module, shipped in the package): loading it,
validating a document against it with ONE-line error messages, and filling its defaults.

Every error reads ``<source>: <key path> = <value>: <what is allowed>``. The schema holds
types, ranges, enums and defaults; what it cannot say (rate ranges per dataset, CIFAR-N
label sets, the protocol's cross-field rules) is checked by ``grid`` and ``protocol``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().with_name("params.schema.yaml")  # shipped inside the package


_SCHEMA_CACHE: dict[Path, dict] = {}


def load_schema(path: str | Path | None = None) -> dict:
    """The params schema as the file has it. Its method part (``$defs.method``,
    ``$defs.method_grid``) is generated from the method registry and its model part
    (``$defs.model``, ``$defs.model_args_NAME``, ``$defs.model_choice``) from the model
    registry: ``engine.protocol.schema_root`` adds the model part, ``study.grid.study_schema``
    both (the whole schema)."""
    import yaml

    p = Path(path).resolve() if path is not None else SCHEMA_PATH
    if p not in _SCHEMA_CACHE:
        with open(p, encoding="utf-8") as f:
            _SCHEMA_CACHE[p] = yaml.safe_load(f)
    return _SCHEMA_CACHE[p]


def check(instance: Any, source: str | None, node: dict | None = None, base: tuple = (),
          root: dict | None = None) -> None:
    """Validate ``instance`` against the schema (or its sub-schema ``node``, e.g.
    ``root["$defs"]["protocol"]``, whose instance sits at key path ``base``); on the first
    problem raise ``ValueError``: ``"<source>: <key path> = <value>: <what is allowed>"``
    (without ``"<source>: "`` when ``source`` is None)."""
    import jsonschema

    root = root if root is not None else load_schema()
    schema = root if node is None else {**node, "$defs": root.get("$defs", {})}
    validator = jsonschema.validators.validator_for(root)(schema)
    errors = list(validator.iter_errors(instance))
    if errors:
        err, forms = _pick_error(errors)
        text = error_text(err, root, base)
        if forms and err.validator == "type":   # a value of the wrong type inside one form of several
            text += f" (a setting is {forms})"
        raise ValueError(text if source is None else f"{source}: {text}")


def fill_defaults(node: dict, instance: Any, root: dict | None = None) -> None:
    """Fill ``default`` values of missing keys in place, recursively along ``properties`` only
    (per-dataset protocol overrides, under ``additionalProperties``, stay partial)."""
    root = root if root is not None else load_schema()
    node = resolve(node, root)
    if not isinstance(instance, dict):
        return
    for key, sub in node.get("properties", {}).items():
        sub_r = resolve(sub, root)
        if key not in instance and "default" in sub_r:
            instance[key] = copy.deepcopy(sub_r["default"])
        if key in instance:
            fill_defaults(sub_r, instance[key], root)


def defaults(node: dict, root: dict | None = None) -> dict:
    """The document made of ``node``'s defaults alone."""
    out: dict = {}
    fill_defaults(node, out, root)
    return out

# ---------------------------------------------------------------- schema error messages


def keypath(parts: Any) -> str:
    text = ""
    for p in parts:
        text += f"[{p}]" if isinstance(p, int) else (f".{p}" if text else str(p))
    return text or "(top level)"


def value_text(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _pick_error(errors: list) -> tuple[Any, str | None]:
    """The error to report: the first in document order, descending into anyOf/oneOf; with the
    forms the value could take (the ``x-allowed`` text of the alternatives it descended from),
    None when it descended from none."""
    import jsonschema

    err = sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])[0]
    forms = None
    while err.context and err.validator != "propertyNames":
        alts = err.validator_value if isinstance(err.validator_value, list) else []
        typed_alts = [a for a in alts if isinstance(a, dict) and "type" in a]
        if "x-allowed" in err.schema and not any(_fits(err.instance, a["type"]) for a in typed_alts) and not any(
                a.get("const") == err.instance for a in alts if isinstance(a, dict)):
            # no alternative of the instance's type: say what the alternatives are
            return jsonschema.exceptions.ValidationError(
                err.schema["x-allowed"], validator="x-allowed", validator_value=err.schema["x-allowed"],
                instance=err.instance, path=err.path, schema={}), None
        # exactly one alternative of the instance's own type (a mapping of parameters, say): what
        # is wrong inside it, not that the instance is none of the others
        own_type = [i for i, a in enumerate(alts) if a in typed_alts and _fits(err.instance, a["type"])]
        inside = [e for e in err.context if e.relative_schema_path and e.relative_schema_path[0] in own_type]
        if len(own_type) == 1 and inside:
            forms = err.schema.get("x-allowed", forms)
            err = jsonschema.exceptions.best_match(inside)
            continue
        matching = [e for e in err.context if _fits(e.instance, e.schema.get("type")) and e.validator != "type"]
        if matching:
            err = jsonschema.exceptions.best_match(matching)
            continue
        if all(e.validator == "type" and not e.relative_path for e in err.context):
            # no alternative's type fits (null or an integer): name them all, not the first
            types = [t for e in err.context for t in (e.validator_value if isinstance(e.validator_value, list)
                                                      else [e.validator_value])]
            return jsonschema.exceptions.ValidationError(
                "type", validator="type", validator_value=list(dict.fromkeys(types)), instance=err.instance,
                path=err.path, schema={}), forms
        fitting = [e for e in err.context if e.validator != "type"]  # the alternative whose type fits
        err = jsonschema.exceptions.best_match(fitting or err.context)
    return err, forms


def _fits(instance: Any, kind: Any) -> bool:
    """Whether ``instance`` is of JSON-schema type ``kind`` (a name or a list of names)."""
    kinds = kind if isinstance(kind, list) else [kind]
    checks = {"number": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
              "integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
              "object": lambda x: isinstance(x, dict), "array": lambda x: isinstance(x, list),
              "string": lambda x: isinstance(x, str), "boolean": lambda x: isinstance(x, bool),
              "null": lambda x: x is None}
    return any(k in checks and checks[k](instance) for k in kinds)


def resolve(node: dict, root: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"params schema: only local $ref supported, got {ref}")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part]
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = {**target, **extra}
    return node


def _allowed_names(schema_node: dict, root: dict) -> list[str]:
    node = resolve(schema_node, root)
    if "enum" in node:
        return [str(v) for v in node["enum"]]
    if "const" in node:
        return [str(node["const"])]
    names: list[str] = []
    for sub in node.get("anyOf", []) + node.get("oneOf", []):
        names += _allowed_names(sub, root)
    return names


def error_text(err: Any, root: dict, base: tuple = ()) -> str:
    path = list(base) + list(err.absolute_path)
    where = keypath(path)
    schema = err.schema if isinstance(err.schema, dict) else {}
    v = err.validator
    if v == "additionalProperties" and isinstance(err.instance, dict):
        known = set(schema.get("properties", {}))
        unknown = sorted(k for k in err.instance if k not in known)
        allowed = ", ".join(sorted(known)) or "none"
        key = unknown[0] if unknown else "?"
        return f"{keypath(path + [key])}: unknown key; allowed: {allowed}"
    if v == "propertyNames" or "propertyNames" in err.absolute_schema_path:
        # jsonschema reports the offending key as the instance, at the mapping's path
        names_schema = resolve(err.validator_value, root) if v == "propertyNames" else _property_names_schema(err, root)
        names_schema = resolve(names_schema or {}, root)
        key = err.instance
        if isinstance(key, dict):  # the mapping itself: find the first key the names schema rejects
            import jsonschema

            names_check = jsonschema.validators.validator_for(root)({**names_schema, "$defs": root.get("$defs", {})})
            key = next((k for k in key if not names_check.is_valid(k)), "?")
        if v == "not":  # a name the schema reserves (a dataset of your own named like a registered one)
            taken = ", ".join(_allowed_names(err.validator_value, root))
            return f"{keypath(path + [str(key)])}: key {value_text(key)} is taken; it must not be one of {taken}"
        if "pattern" in names_schema:
            return f"{keypath(path + [str(key)])}: key {value_text(key)} must match {names_schema['pattern']}"
        allowed = ", ".join(_allowed_names(names_schema, root))
        return f"{keypath(path + [str(key)])}: unknown key" + (f"; allowed: {allowed}" if allowed else "")
    if v == "enum":
        return f"{where} = {value_text(err.instance)}: allowed: {', '.join(str(x) for x in err.validator_value)}"
    if v == "const":
        return f"{where} = {value_text(err.instance)}: allowed: {err.validator_value}"
    if v == "type":
        wants = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        words = [str(w) if w == "null" else f"{'an' if str(w)[:1] in 'aeiou' else 'a'} {w}" for w in wants]
        return f"{where} = {value_text(err.instance)}: must be {' or '.join(words)}"
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if v in bounds:
        bound = err.validator_value
        return f"{where} = {value_text(err.instance)}: must be {bounds[v]} {bound:g}" if isinstance(bound, float) \
            else f"{where} = {value_text(err.instance)}: must be {bounds[v]} {bound}"
    if v == "required":
        missing = [k for k in err.validator_value if k not in (err.instance or {})]
        return f"{keypath(path + [missing[0]]) if missing else where}: missing; this key is required"
    if v == "minLength":
        return f"{where} = {value_text(err.instance)}: must not be empty"
    if v == "minItems":
        return f"{where} = {value_text(err.instance)}: must list at least one value (leave the key out to leave it out)"
    if v == "x-allowed":
        return f"{where} = {value_text(err.instance)}: must be {err.validator_value}"
    if v == "pattern":
        return f"{where} = {value_text(err.instance)}: must match {err.validator_value}"
    return f"{where} = {value_text(err.instance)}: {err.message}"


def _property_names_schema(err: Any, root: dict) -> dict | None:
    """The ``propertyNames`` schema of the mapping an error was raised in, if any."""
    node: Any = root
    for part in err.absolute_schema_path:
        node = resolve(node, root) if isinstance(node, dict) else node
        if part == "propertyNames":
            return node.get("propertyNames")
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return None

