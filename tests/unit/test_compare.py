"""`contains(live, desired)`: the semantic subset check that decides whether to apply at all."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from modeldeploy.render.compare import contains, fingerprint, quantity

# ---- quantities --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", Decimal(1)),
        ("1000m", Decimal(1)),
        ("500m", Decimal("0.5")),
        ("0.5", Decimal("0.5")),
        (".5", Decimal("0.5")),
        ("1Gi", Decimal(2**30)),
        ("1073741824", Decimal(2**30)),
        ("128Mi", Decimal(128 * 2**20)),
        ("1k", Decimal(1000)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("2M", Decimal(2_000_000)),
        ("100n", Decimal("1e-7")),
        ("5u", Decimal("5e-6")),
        ("+1", Decimal(1)),
        ("-1", Decimal(-1)),
        ("1Ki", Decimal(1024)),
        ("1Pi", Decimal(2**50)),
        ("1P", Decimal(10**15)),
    ],
)
def test_quantity_parses(text: str, value: Decimal) -> None:
    assert quantity(text) == value


@pytest.mark.parametrize(("text", "value"), [("1Ei", Decimal(2**60)), ("2E", Decimal(2 * 10**18))])
def test_quantity_parses_exa_suffixes(text: str, value: Decimal) -> None:
    assert quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "1Xi", "1 Gi", "Gi", "1.0.0-rc1", "v1", "25%", "12e", "1e2m"])
def test_quantity_rejects_non_quantities(text: str) -> None:
    """`1e2m` is why this is not `kubernetes.utils.parse_quantity`: that returns 0.1 for it, the
    apiserver refuses it ("quantities must match the regular expression ..."); and the pure
    modules import no `kubernetes` (533 ms of imports, measured with -X importtime)."""
    assert quantity(text) is None


@pytest.mark.parametrize("value", [1, 1.5, None, True, ["1"], {"a": "1"}])
def test_quantity_of_a_non_string_is_none(value: object) -> None:
    assert quantity(value) is None


@pytest.mark.parametrize(
    ("desired", "live"),
    [
        ("1", "1000m"),
        ("1000m", "1"),
        ("1Gi", "1073741824"),
        ("0.5", "500m"),
        ("128Mi", "134217728"),
        ("1k", "1000"),
        ("1e3", "1k"),
        ("100m", "0.1"),
    ],
)
def test_equal_quantities_in_different_notation_match(desired: str, live: str) -> None:
    assert contains({"resources": {"requests": {"cpu": live}}}, {"resources": {"requests": {"cpu": desired}}})


@pytest.mark.parametrize(
    ("desired", "live"),
    [("1", "999m"), ("1Gi", "1G"), ("0.5", "50m"), ("1Mi", "1M"), ("1k", "1Ki")],
)
def test_different_quantities_do_not_match(desired: str, live: str) -> None:
    assert not contains({"cpu": live}, {"cpu": desired})


def test_integer_quantity_matches_its_string_form_from_the_apiserver() -> None:
    assert contains({"resources": {"requests": {"cpu": "2"}}}, {"resources": {"requests": {"cpu": 2}}})


def test_version_strings_that_look_like_numbers_are_not_quantities() -> None:
    live = {"env": [{"name": "MODEL_VERSION", "value": "1.1"}]}
    desired = {"env": [{"name": "MODEL_VERSION", "value": "1.10"}]}
    assert not contains(live, desired)


# ---- maps --------------------------------------------------------------------------------------


def test_identical_objects_match() -> None:
    obj = {"a": 1, "b": {"c": [1, 2], "d": "x"}, "e": True}
    assert contains(obj, obj)


def test_extra_live_fields_are_fine() -> None:
    live = {"spec": {"replicas": 2, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}, "status": {"x": 1}}
    assert contains(live, {"spec": {"replicas": 2}})


def test_missing_desired_field_is_a_difference() -> None:
    assert not contains({"spec": {}}, {"spec": {"replicas": 2}})
    assert not contains({}, {"metadata": {"labels": {"a": "b"}}})


def test_different_scalar_is_a_difference() -> None:
    assert not contains({"spec": {"replicas": 3}}, {"spec": {"replicas": 2}})
    assert not contains({"image": "model:1"}, {"image": "model:2"})


def test_type_mismatch_is_a_difference() -> None:
    assert not contains({"spec": "x"}, {"spec": {"a": 1}})
    assert not contains({"spec": {"a": 1}}, {"spec": "x"})
    assert not contains({"ports": {"a": 1}}, {"ports": [1]})
    assert not contains({"port": "8080"}, {"port": 8080})


@pytest.mark.parametrize("empty", [None, "", {}, []])
def test_empty_desired_values_match_an_absent_live_field(empty: object) -> None:
    assert contains({}, {"annotations": empty})
    assert contains({"annotations": None}, {"annotations": empty})


@pytest.mark.parametrize("empty", [None, "", {}, []])
@pytest.mark.parametrize("live_empty", [None, "", {}, []])
def test_empty_desired_values_match_any_empty_live_value(empty: object, live_empty: object) -> None:
    assert contains({"x": live_empty}, {"x": empty})


def test_empty_map_desired_is_a_subset_of_anything() -> None:
    assert contains({"labels": {"a": "b"}}, {"labels": {}})


def test_empty_list_desired_does_not_match_a_non_empty_live_list() -> None:
    assert not contains({"args": ["--x"]}, {"args": []})


def test_false_is_not_empty() -> None:
    assert not contains({}, {"automountServiceAccountToken": False})
    assert contains({"automountServiceAccountToken": False}, {"automountServiceAccountToken": False})
    assert not contains({"automountServiceAccountToken": True}, {"automountServiceAccountToken": False})


def test_zero_is_not_empty() -> None:
    assert not contains({}, {"replicas": 0})
    assert contains({"replicas": 0}, {"replicas": 0})
    assert not contains({"replicas": 1}, {"replicas": 0})


def test_nested_map_against_absent_live() -> None:
    assert contains(None, {})
    assert not contains(None, {"a": 1})
    assert contains(None, [])
    assert not contains(None, [1])


# ---- lists -------------------------------------------------------------------------------------


def test_keyed_list_by_name_in_a_different_order() -> None:
    live = {"env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]}
    desired = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    assert contains(live, desired)


def test_keyed_list_item_with_a_different_value() -> None:
    live = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]}
    desired = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    assert not contains(live, desired)


def test_keyed_list_missing_a_desired_item() -> None:
    live = {"env": [{"name": "A", "value": "1"}]}
    desired = {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}
    assert not contains(live, desired)


def test_extra_keyed_items_in_live_are_fine() -> None:
    live = {
        "containers": [
            {"name": "istio-proxy", "image": "proxy"},
            {"name": "model-server", "image": "model:1", "terminationMessagePath": "/dev/termination-log"},
        ]
    }
    desired = {"containers": [{"name": "model-server", "image": "model:1"}]}
    assert contains(live, desired)


def test_keyed_items_with_extra_live_fields() -> None:
    live = {"ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP", "hostPort": 0}]}
    assert contains(live, {"ports": [{"name": "http", "containerPort": 8080}]})


def test_lists_keyed_by_container_port_and_port() -> None:
    live_container = [{"containerPort": 9090}, {"containerPort": 8080}]
    assert contains(live_container, [{"containerPort": 8080}, {"containerPort": 9090}])
    live_service = [{"port": 9090, "targetPort": "metrics"}, {"port": 8080, "targetPort": "http"}]
    assert contains(live_service, [{"port": 8080, "targetPort": "http"}])
    assert not contains(live_service, [{"port": 8080, "targetPort": "metrics"}])


def test_positional_lists_must_match_in_length() -> None:
    assert not contains({"args": ["a", "b", "c"]}, {"args": ["a", "b"]})
    assert not contains({"args": ["a"]}, {"args": ["a", "b"]})
    assert contains({"args": ["a", "b"]}, {"args": ["a", "b"]})


def test_positional_lists_are_ordered() -> None:
    assert not contains({"command": ["python", "-m"]}, {"command": ["-m", "python"]})


def test_positional_list_items_compare_as_subsets() -> None:
    live = {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]}
    assert contains(live, {"tolerations": [{"key": "dedicated", "value": "ml"}]})
    assert not contains(live, {"tolerations": [{"key": "other"}]})


def test_list_against_a_live_list_with_another_key_is_positional() -> None:
    desired = [{"name": "a", "x": 1}]
    assert contains([{"name": "a", "x": 1, "y": 2}], desired)
    assert not contains([{"other": "a"}], desired)


def test_quantities_inside_keyed_lists() -> None:
    live = {"containers": [{"name": "m", "resources": {"limits": {"memory": "268435456"}}}]}
    assert contains(live, {"containers": [{"name": "m", "resources": {"limits": {"memory": "256Mi"}}}]})


def _hpa_metric(resource: str, target: int) -> dict[str, Any]:
    return {
        "type": "Resource",
        "resource": {"name": resource, "target": {"type": "Utilization", "averageUtilization": target}},
    }


def test_hpa_metrics_with_two_resource_targets_contain_themselves() -> None:
    metrics = [_hpa_metric("cpu", 70), _hpa_metric("memory", 80)]
    assert contains({"spec": {"metrics": metrics}}, {"spec": {"metrics": [dict(m) for m in metrics]}})


def test_hpa_metrics_with_one_resource_target() -> None:
    live = {"spec": {"metrics": [_hpa_metric("cpu", 70)]}}
    assert contains(live, {"spec": {"metrics": [_hpa_metric("cpu", 70)]}})
    assert not contains(live, {"spec": {"metrics": [_hpa_metric("cpu", 80)]}})


# ---- a realistic Deployment --------------------------------------------------------------------


def _desired_deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "iris", "labels": {"a": "b"}, "annotations": {"h": "1"}},
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "model-server",
                            "image": "model:1",
                            "env": [{"name": "MODEL_NAME", "value": "iris"}, {"name": "EMPTY", "value": ""}],
                            "resources": {"requests": {"cpu": "0.5", "memory": "128Mi"}},
                        }
                    ],
                }
            },
        },
    }


def _live_deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "iris",
            "uid": "u",
            "resourceVersion": "7",
            "labels": {"a": "b"},
            "annotations": {"h": "1", "deployment.kubernetes.io/revision": "3"},
        },
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 600,
            "template": {
                "metadata": {"creationTimestamp": None},
                "spec": {
                    "automountServiceAccountToken": False,
                    "dnsPolicy": "ClusterFirst",
                    "containers": [
                        {
                            "name": "model-server",
                            "image": "model:1",
                            "imagePullPolicy": "IfNotPresent",
                            "env": [{"name": "EMPTY"}, {"name": "MODEL_NAME", "value": "iris"}],
                            "resources": {"requests": {"cpu": "500m", "memory": "134217728"}},
                        },
                        {"name": "sidecar", "image": "proxy"},
                    ],
                },
            },
        },
        "status": {"replicas": 2},
    }


def test_defaulted_and_normalised_live_deployment_contains_the_desired_one() -> None:
    assert contains(_live_deployment(), _desired_deployment())


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["spec"].__setitem__("replicas", 3),
        lambda d: d["metadata"]["annotations"].__setitem__("h", "2"),
        lambda d: d["metadata"]["labels"].pop("a"),
        lambda d: d["spec"]["template"]["spec"].pop("automountServiceAccountToken"),
        lambda d: d["spec"]["template"]["spec"]["containers"][0].__setitem__("image", "model:2"),
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["env"].pop(1),
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"].__setitem__("cpu", "1"),
        lambda d: d["spec"]["template"]["spec"]["containers"].pop(0),
    ],
)
def test_any_edit_of_a_desired_field_in_live_is_noticed(edit: Any) -> None:
    live = _live_deployment()
    edit(live)
    assert not contains(live, _desired_deployment())


# ---- fingerprint -------------------------------------------------------------------------------


def test_fingerprint_ignores_key_order() -> None:
    assert fingerprint({"a": 1, "b": {"c": 2, "d": 3}}) == fingerprint({"b": {"d": 3, "c": 2}, "a": 1})


def test_fingerprint_changes_with_any_value() -> None:
    base = fingerprint({"a": 1, "b": [1, 2]})
    assert fingerprint({"a": 2, "b": [1, 2]}) != base
    assert fingerprint({"a": 1, "b": [2, 1]}) != base
    assert fingerprint({"a": 1, "b": [1, 2], "c": None}) != base
    assert fingerprint({"a": "1", "b": [1, 2]}) != base


def test_fingerprint_is_short_hex() -> None:
    value = fingerprint({"a": 1})
    assert len(value) == 16
    int(value, 16)


@pytest.mark.parametrize(
    ("live", "desired", "held"),
    [
        ({"name": "data"}, {"name": "data", "readOnly": False}, True),  # omitempty dropped it
        ({"name": "data"}, {"name": "data", "readOnly": True}, False),
        ({"name": "data", "readOnly": True}, {"name": "data", "readOnly": False}, False),
        ({"emptyDir": {"sizeLimit": "1Gi"}}, {"emptyDir": {"sizeLimit": "1024Mi"}}, True),
        ({"emptyDir": {"sizeLimit": "1Gi"}}, {"emptyDir": {"sizeLimit": "1000Mi"}}, False),
    ],
)
def test_what_the_apiserver_leaves_out_or_rewrites_is_no_difference(live: object, desired: object, held: bool) -> None:
    assert contains(live, desired) is held
