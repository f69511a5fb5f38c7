"""Does a live object already hold everything we would apply?

Server-side apply of an unchanged object is a no-op for etcd but still a write request;
the operator skips it when the live object already contains the desired fields. The
apiserver adds defaults and normalises some values (quantities), so the comparison is a
semantic subset check: extra live fields are fine, missing or different desired ones are not.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_SUFFIX = {
    None: Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_LIST_KEYS = ("name", "containerPort", "port")
_EXPONENT = re.compile(r"^[eE][+-]?[0-9]+$")
# Quantities are only normalised where Kubernetes stores quantities: container resources and
# HPA metric targets. Elsewhere "1.10" and "1.1" are different strings (a version, say).
_QUANTITY_PARENTS = frozenset({"requests", "limits", "target", "current", "sizeLimit"})
# Plain bools the apiserver drops when false (Go's omitempty), in the pod parts users pass through:
# volumeMounts[].readOnly, and a volume source's (persistentVolumeClaim, configMap...). Not
# automountServiceAccountToken, a pointer whose false is kept, and whose removal is a hand edit.
_OMITTED_WHEN_FALSE = frozenset({"readOnly"})


def quantity(value: object) -> Decimal | None:
    """The numeric value of a Kubernetes quantity string, or None when it is not one."""
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value)
    if not match:
        return None
    number, suffix = match.groups()
    try:
        if suffix and _EXPONENT.match(suffix):
            return Decimal(number + suffix)
        return Decimal(number) * _SUFFIX[suffix]
    except (InvalidOperation, KeyError):
        return None


def _empty(value: object) -> bool:
    return value is None or value == "" or value == {} or value == []


def _scalar_equal(desired: object, live: object, in_quantity: bool) -> bool:
    if desired == live:
        return True
    if in_quantity and not isinstance(desired, bool) and isinstance(desired, str | int | float):
        left, right = quantity(str(desired)), quantity(str(live))
        return left is not None and left == right
    return False


def _list_key(items: Sequence[Any]) -> str | None:
    """A field that names each item uniquely (containers by name, ports by number), if any."""
    for key in _LIST_KEYS:
        if items and all(isinstance(i, Mapping) and key in i for i in items):
            values = [i[key] for i in items]
            if len(set(map(str, values))) == len(values):
                return key
    return None


def contains(live: object, desired: object, *, in_quantity: bool = False) -> bool:
    """True when every field of `desired` is present, with an equal value, in `live`."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return _empty(desired) and live is None
        return all(
            (_empty(value) and _empty(live.get(key)))
            or (value is False and key in _OMITTED_WHEN_FALSE and key not in live)
            or (key in live and contains(live[key], value, in_quantity=in_quantity or key in _QUANTITY_PARENTS))
            for key, value in desired.items()
        )
    if isinstance(desired, list):
        if not isinstance(live, list):
            return _empty(desired) and live is None
        key = _list_key(desired)
        if key is not None and _list_key(live) == key:
            by_key = {item[key]: item for item in live}
            # items other managers added (an injected sidecar) are theirs, not a difference
            return all(item[key] in by_key and contains(by_key[item[key]], item) for item in desired)
        return len(live) == len(desired) and all(
            contains(a, b, in_quantity=in_quantity) for a, b in zip(live, desired, strict=True)
        )
    return _scalar_equal(desired, live, in_quantity)


def fingerprint(desired: Mapping[str, Any]) -> str:
    """A stable hash of what we apply; stored on the child to notice fields we stopped setting."""
    return hashlib.sha256(json.dumps(desired, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
