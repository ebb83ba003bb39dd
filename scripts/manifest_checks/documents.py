"""Kubernetes documents checked offline: core kinds against the bundled schemas of
kubernetes-validate (strict: unknown fields and wrong types are errors, and a kind it
does not know is an error too), custom resources against their CRDs (crd.py)."""

import kubernetes_validate
import yaml

from .crd import path_of


def load(path):
    """The YAML documents of one file, empty ones left out."""
    with open(path, encoding="utf-8") as file:
        return [doc for doc in yaml.safe_load_all(file) if doc is not None]


def describe(doc):
    """'Kind/name' of a document, for the report."""
    if not isinstance(doc, dict):
        return "<not a mapping>"
    name = (doc.get("metadata") or {}).get("name", "<unnamed>")
    return f"{doc.get('kind', '<no kind>')}/{name}"


def errors(doc, versions, crds):
    """Every reason a Kubernetes API server of each of `versions` (with the add-ons of
    `crds` installed) would refuse `doc` under strict field validation."""
    if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
        return ["not a Kubernetes object: apiVersion and kind are required"]
    crd = crds.get((doc["apiVersion"], doc["kind"]))
    if crd is not None:
        found = crd.errors(doc)
        for version in versions:
            found += [f"{version}: {e}" for e in object_meta_errors(doc, version)]
        return found
    found = []
    for version in versions:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError as unknown:
            found.append(f"{version}: {unknown.message} (nor is it a kind of the CRDs given)")
        except kubernetes_validate.ValidationError as invalid:
            found.append(f"{version}: {path_of(invalid.absolute_path)}: {invalid.message}")
    return found


def object_meta_errors(doc, version):
    """A custom resource's metadata checked as the ObjectMeta the API server reads it as
    (the CRD's own schema leaves it open)."""
    probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc.get("metadata")}
    try:
        kubernetes_validate.validate(probe, version, strict=True)
    except kubernetes_validate.ValidationError as invalid:
        return [f"{path_of(invalid.absolute_path)}: {invalid.message}"]
    return []
