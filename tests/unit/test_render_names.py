"""Child names and label values: valid for any legal ModelDeployment name, and collision-free.

The CRD admits only names the children can carry unchanged; the shortening below is for objects
created before that rule (and for names Kubernetes itself would refuse).
"""

from __future__ import annotations

import hashlib
import itertools
import re

import pytest
import yaml
from pydantic import ValidationError

from modeldeploy.api import ModelDeployment
from modeldeploy.render.names import MAX_LABEL, child_name, label_value
from tests.fixtures.invalid import MINIMAL_EXAMPLE

DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
HASH_SUFFIX = re.compile(r"-[0-9a-f]{8}$")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:8]


def _assert_service_name(name: str) -> None:
    assert len(name) <= MAX_LABEL, (name, len(name))
    assert DNS_1035_LABEL.fullmatch(name), name


def _assert_label_value(value: str) -> None:
    assert len(value) <= MAX_LABEL, (value, len(value))
    assert LABEL_VALUE.fullmatch(value), value


# ---- child_name --------------------------------------------------------------------------------

SUBDOMAIN_253 = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # a legal 253-character name

NAME_CASES = [
    "iris",
    "a",
    "iris-full",
    "a" * 63,
    "a" * 64,
    "a" * 100,
    "a" * 253,
    SUBDOMAIN_253,
    "iris.v1",
    "iris.v1.prod",
    "a.b",
    "a-b",
    "1abc",
    "123",
    "9-lives",
    "0.1.0",
    "a" * 62 + "1",
    "a" * 62 + ".",
    "x" * 54 + "-" + "y" * 20,  # a dash right at the cut point
    "x" * 53 + "." + "y" * 20,  # a dot right before the cut point
    "Iris",  # not legal in Kubernetes, but must not produce an invalid child name
    "IRIS.V1",
    "-",
    ".",
    "a--b",
]


@pytest.mark.parametrize("name", NAME_CASES)
def test_child_name_is_always_a_dns_1035_label(name: str) -> None:
    _assert_service_name(child_name(name))


@pytest.mark.parametrize("name", ["iris", "a", "iris-full", "model-1", "a" * 63, "a--b", "a" * 62 + "1"])
def test_short_valid_names_are_unchanged(name: str) -> None:
    assert child_name(name) == name


def _admitted(name: str) -> bool:
    manifest = yaml.safe_load(MINIMAL_EXAMPLE.read_text())
    manifest["metadata"]["name"] = name
    try:
        ModelDeployment.model_validate(manifest)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("name", NAME_CASES)
def test_a_name_the_api_admits_is_never_shortened(name: str) -> None:
    """Admission and the renderer share one rule: no name that can still be created is shortened."""
    if _admitted(name):
        assert child_name(name) == name
    else:
        assert child_name(name) != name


def test_the_api_refuses_every_name_that_would_be_shortened() -> None:
    shortened = [name for name in NAME_CASES if child_name(name) != name]
    assert len(shortened) >= 15
    assert [name for name in shortened if _admitted(name)] == []
    assert _admitted("a" * 63)
    assert not _admitted("a" * 64)
    assert not _admitted(SUBDOMAIN_253)


@pytest.mark.parametrize(
    "name",
    ["a" * 64, "a" * 253, SUBDOMAIN_253, "iris.v1", "1abc", "123", "0.1.0", "a" * 62 + "."],
)
def test_names_that_do_not_fit_are_hash_suffixed(name: str) -> None:
    result = child_name(name)
    assert result != name
    assert result.endswith("-" + _digest(name))
    _assert_service_name(result)


def test_long_name_keeps_as_much_of_the_prefix_as_fits() -> None:
    result = child_name("a" * 64)
    assert len(result) == MAX_LABEL
    assert result == "a" * 54 + "-" + _digest("a" * 64)


def test_dots_become_dashes_and_keep_the_name_readable() -> None:
    result = child_name("iris.v1")
    assert result == "iris-v1-" + _digest("iris.v1")


@pytest.mark.parametrize("name", ["1abc", "123", "9-lives", "0.1.0"])
def test_names_starting_with_a_digit_get_a_letter_prefix(name: str) -> None:
    result = child_name(name)
    assert result[0].isalpha()
    assert result.startswith("md-")
    _assert_service_name(result)


def test_dash_at_the_cut_point_is_not_left_dangling() -> None:
    name = "x" * 54 + "-" + "y" * 20
    result = child_name(name)
    assert "--" not in result
    _assert_service_name(result)


def test_uppercase_is_lowered() -> None:
    assert child_name("Iris") == "iris"
    _assert_service_name(child_name("IRIS.V1"))


def test_child_name_is_deterministic() -> None:
    assert child_name(SUBDOMAIN_253) == child_name(SUBDOMAIN_253)


def test_names_differing_only_after_the_cut_point_get_different_children() -> None:
    first, second = "a" * 60 + "-one", "a" * 60 + "-two"
    assert child_name(first)[:54] == child_name(second)[:54]
    assert child_name(first) != child_name(second)


def test_names_differing_only_in_dots_versus_dashes_get_different_children() -> None:
    assert child_name("a.b") != child_name("a-b")
    assert child_name("iris.v1.prod") != child_name("iris-v1.prod") != child_name("iris-v1-prod")


def test_no_collisions_across_many_legal_names() -> None:
    alphabet = "ab1.-"
    names = {"".join(p) for n in range(1, 5) for p in itertools.product(alphabet, repeat=n)}
    legal = [n for n in names if re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", n)]
    legal += ["a" * 60 + suffix for suffix in ("-x", ".x", "xx", "-y", ".y", "yy", "x.y", "x-y")]
    legal += [SUBDOMAIN_253, SUBDOMAIN_253[:-1] + "e"]
    children = [child_name(n) for n in legal]
    for child in children:
        _assert_service_name(child)
    assert len(set(children)) == len(legal)


def test_a_name_shaped_like_a_hashed_child_is_the_one_known_collision() -> None:
    """Only a name crafted to equal another's shortened form collides; the reconciler reports
    that as ChildNameConflict (tests/integration/test_reconciler.py), never a takeover."""
    crafted = "a-b-" + _digest("a.b")
    assert child_name(crafted) == child_name("a.b")
    assert child_name("a-b") != child_name("a.b")


# ---- label_value -------------------------------------------------------------------------------

LABEL_CASES = [
    "1.0.0",
    "v1",
    "",
    "1.0.0+build.5",
    "org/model",
    "my model",
    "  padded  ",
    "x" * 63,
    "x" * 64,
    "x" * 100,
    "x" * 253,
    "+++",
    "///",
    "_leading",
    "trailing_",
    ".dotted.",
    "-dash-",
    "a" * 53 + "+" + "b" * 40,
    "a" * 54 + "." + "b" * 40,
    "émoji-🙂-model",
    "A_B.c-D",
]


@pytest.mark.parametrize("value", LABEL_CASES)
def test_label_value_is_always_valid(value: str) -> None:
    _assert_label_value(label_value(value))


@pytest.mark.parametrize("value", ["1.0.0", "v1", "", "A_B.c-D", "x" * 63, "iris", "1"])
def test_valid_label_values_are_unchanged(value: str) -> None:
    assert label_value(value) == value


@pytest.mark.parametrize(
    ("value", "readable"),
    [
        ("1.0.0+build.5", "1.0.0-build.5"),
        ("org/model", "org-model"),
        ("my model", "my-model"),
        ("  padded  ", "padded"),
        ("_leading", "leading"),
        ("x" * 100, "x" * 54),
    ],
)
def test_cleaned_label_values_keep_a_readable_head_and_a_hash(value: str, readable: str) -> None:
    assert label_value(value) == f"{readable}-{_digest(value)}"


@pytest.mark.parametrize("value", ["+++", "///", "   ", "🙂"])
def test_values_empty_after_cleaning_become_the_hash(value: str) -> None:
    result = label_value(value)
    assert result == _digest(value)
    _assert_label_value(result)


def test_cleaned_label_values_do_not_collide() -> None:
    values = ["a b", "a/b", "a+b", "a  b", "a-b ", "x" * 64, "x" * 65, "x" * 64 + "y"]
    results = [label_value(v) for v in values]
    assert len(set(results)) == len(values)


def test_long_label_value_uses_the_full_length() -> None:
    assert len(label_value("x" * 100)) == MAX_LABEL


def test_separator_at_the_cut_point_is_trimmed() -> None:
    result = label_value("a" * 53 + "+" + "b" * 40)
    assert result == "a" * 53 + "-" + _digest("a" * 53 + "+" + "b" * 40)
    assert HASH_SUFFIX.search(result)
