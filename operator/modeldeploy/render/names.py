"""Child names and label values that are valid for any legal ModelDeployment name.

A ModelDeployment name is a DNS subdomain (up to 253 characters, dots allowed), while a
Service name must be a DNS-1035 label (63 characters, starts with a letter, no dots) and a
label value is at most 63 characters. Long or awkward names are shortened with a hash of
the full name. Two ModelDeployments map to the same child only if one name is crafted to
equal the other's shortened form; the reconciler then finds a child controlled by someone
else and reports ChildNameConflict (Stalled), so a clash is never merged or taken over.
"""

from __future__ import annotations

import hashlib
import re

MAX_LABEL = 63
_HASH_LEN = 8


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:_HASH_LEN]


def child_name(resource_name: str) -> str:
    """The name shared by the Deployment, Service and HPA of one ModelDeployment."""
    candidate = resource_name.lower()
    if len(candidate) <= MAX_LABEL and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", candidate):
        return candidate
    cleaned = re.sub(r"[^a-z0-9-]+", "-", candidate).strip("-")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = f"md-{cleaned}"
    keep = MAX_LABEL - _HASH_LEN - 1
    return f"{cleaned[:keep].rstrip('-')}-{_digest(resource_name)}"


def label_value(value: str) -> str:
    """A valid label value carrying as much of `value` as fits (hash-suffixed when cut)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", value)
    cleaned = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)
    if cleaned == value and len(value) <= MAX_LABEL:
        return value
    keep = MAX_LABEL - _HASH_LEN - 1
    head = re.sub(r"[^A-Za-z0-9]+$", "", cleaned[:keep])
    return f"{head}-{_digest(value)}" if head else _digest(value)
