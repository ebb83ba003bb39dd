"""Custom resources checked against their CustomResourceDefinition the way the API server
checks them with strict field validation: the CRD's openAPIV3Schema with unknown fields
rejected (outside x-kubernetes-preserve-unknown-fields), types, enums, bounds and list
uniqueness checked, and the x-kubernetes-validations CEL rules evaluated (cel-python).

Not covered: CEL transition rules (those using oldSelf: there is no old object) and the
root metadata, which the API server checks as an ObjectMeta (documents.py does that)."""

import copy

import celpy
import jsonschema
import yaml

INT32 = {"minimum": -(2**31), "maximum": 2**31 - 1}


def strict_schema(node):
    """An OpenAPI v3 structural schema as a JSON Schema (draft 4, whose booleans
    exclusiveMinimum/Maximum match OpenAPI 3.0) that rejects unknown fields."""
    if isinstance(node, list):
        return [strict_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: strict_schema(value)
        for key, value in node.items()
        if key not in ("x-kubernetes-validations", "description", "default")
    }
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("format") == "int32":
        out.update(INT32)
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    is_object = node.get("type") == "object"
    if (
        is_object
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
        if node.get("x-kubernetes-embedded-resource"):
            out.setdefault("properties", {})
            for field in ("apiVersion", "kind", "metadata"):
                out["properties"].setdefault(field, {})
    return out


class Crd:
    """One served version of a CustomResourceDefinition, ready to check documents."""

    def __init__(self, crd, version):
        self.kind = crd["spec"]["names"]["kind"]
        self.api_version = f"{crd['spec']['group']}/{version['name']}"
        self.raw = version["schema"]["openAPIV3Schema"]
        schema = strict_schema(copy.deepcopy(self.raw))
        properties = schema.setdefault("properties", {})
        properties["apiVersion"] = {"enum": [self.api_version]}
        properties["kind"] = {"enum": [self.kind]}
        # The root metadata is an ObjectMeta, checked on its own (documents.py).
        properties["metadata"] = {"type": "object"}
        schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
        self.validator = jsonschema.Draft4Validator(schema)
        self.cel = celpy.Environment()
        self.programs = {}

    def errors(self, doc):
        """Every reason the API server would refuse `doc`, as 'path: message' lines."""
        found = [
            f"{path_of(e.absolute_path)}: {e.message}"
            for e in sorted(self.validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
        ]
        found += list(self.rule_errors(self.raw, doc, ""))
        return found

    def rule_errors(self, schema, value, path):
        """The failing x-kubernetes-validations rules and duplicate list-map keys."""
        if value is None or not isinstance(schema, dict):
            return
        for rule in schema.get("x-kubernetes-validations", []):
            if "oldSelf" in rule["rule"]:
                continue
            if not self.rule_holds(rule["rule"], value):
                yield f"{path or '<root>'}: {rule.get('message', rule['rule'])}"
        if isinstance(value, dict):
            for key, sub in schema.get("properties", {}).items():
                if key in value:
                    yield from self.rule_errors(sub, value[key], child(path, key))
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                for key, sub_value in value.items():
                    yield from self.rule_errors(extra, sub_value, child(path, key))
        if isinstance(value, list):
            keys = schema.get("x-kubernetes-list-map-keys")
            if schema.get("x-kubernetes-list-type") == "map" and keys:
                seen = set()
                for item in value:
                    key = tuple(item.get(k) for k in keys) if isinstance(item, dict) else item
                    if key in seen:
                        yield f"{path}: duplicate entries for list-map keys {keys} = {list(key)}"
                    seen.add(key)
            for index, item in enumerate(value):
                yield from self.rule_errors(schema.get("items", {}), item, child(path, index))

    def rule_holds(self, rule, value):
        """Evaluates one CEL rule with `self` bound to `value`; an evaluation error fails."""
        if rule not in self.programs:
            self.programs[rule] = self.cel.program(self.cel.compile(rule))
        try:
            result = self.programs[rule].evaluate({"self": celpy.json_to_cel(value)})
        except celpy.CELEvalError:
            return False
        return isinstance(result, celpy.celtypes.BoolType) and bool(result)


def child(path, key):
    """The path of a field or item below `path`, spelt as path_of spells it."""
    return f"{path}.{key}" if path else str(key)


def path_of(parts):
    """A JSON path as dotted text ('spec.triggers.0.metadata'), '<root>' when empty."""
    return ".".join(map(str, parts)) or "<root>"


def load_crds(paths):
    """Every served version of the CRDs in `paths`, keyed by (apiVersion, kind)."""
    crds = {}
    for path in paths:
        with open(path, encoding="utf-8") as file:
            crd = yaml.safe_load(file)
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                checker = Crd(crd, version)
                crds[(checker.api_version, checker.kind)] = checker
    return crds
