"""Child names and label values that are valid for any legal ModelDeployment name.

The children (Deployment, Service, HPA) take the ModelDeployment's name unchanged. The CRD
admits only names that can be used so (`modeldeploy.api.rules`: a DNS-1035 label, as a Service
name must be), and `child_name` tests a name with the same predicate.

Kubernetes itself allows any DNS subdomain (up to 253 characters, dots allowed), and objects
created before the CRD had that rule may carry such a name; they keep working, their children
named with as much of the name as fits plus a hash of the full name. Two ModelDeployments map
to the same child only if one name is crafted to equal the other's shortened form; the
reconciler then finds a child controlled by someone else and reports ChildNameConflict
(Stalled), so a clash is never merged or taken over.
"""

from __future__ import annotations

import hashlib
import re

from modeldeploy.api.rules import CHILD_NAME_MAX_LENGTH, is_dns_1035_label

MAX_LABEL = CHILD_NAME_MAX_LENGTH
_HASH_LEN = 8


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:_HASH_LEN]


def child_name(resource_name: str) -> str:
    """The name shared by the Deployment, Service and HPA of one ModelDeployment.

    The ModelDeployment's own name whenever the CRD admits it today; shortened only for names
    from before that rule (or not legal in Kubernetes at all, such as uppercase ones).
    """
    candidate = resource_name.lower()
    if is_dns_1035_label(candidate):
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
