"""Rules on single values that the schema and the operator's later steps must apply alike.

Every rule exists once, here: the models enforce it (pydantic and, through the generated CRD,
the apiserver), and the code that later relies on it (the prober, the child renderer) imports
the same predicate instead of keeping its own. Whatever the apiserver admits therefore cannot
fail further down, where the only symptoms would be a log traceback or a child the apiserver
refuses.

Patterns use explicit ASCII classes and no shorthand (`\\s`, `\\w`, `\\d`): Go's RE2 (OpenAPI
`pattern`, CEL `matches`), Rust's regex (pydantic `pattern`) and Python's `re` (the `check`
functions) disagree on what those shorthands cover outside ASCII, and the rule must not.
Python matches with `re.fullmatch`, since `$` alone would also accept a trailing newline.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import Field, StrictStr

from modeldeploy.api.base import CelRule, Checked


def cel_matches(pattern: str, subject: str = "self") -> str:
    """`subject.matches(pattern)` in CEL, the pattern as a raw string so RE2 sees its backslashes."""
    quote = "'" if "'" not in pattern else '"'
    if quote in pattern:
        raise ValueError(f"pattern {pattern!r} needs both quote characters")
    return f"{subject}.matches(r{quote}{pattern}{quote})"


# ---- ports -------------------------------------------------------------------------------------

MIN_PORT = 1
MAX_PORT = 65535

# ---- HTTP paths the prober and the kubelet request ---------------------------------------------

_PCHAR = r"[A-Za-z0-9\-._~!$&'()*+,;=:@?]"
"""RFC 3986 path characters plus '?' (a query); '%' only as part of a %XX escape."""
_ESCAPE = r"%[0-9A-Fa-f]{2}"
HTTP_PATH_PATTERN = rf"^/(({_PCHAR}|{_ESCAPE})({_PCHAR}|/|{_ESCAPE})*)?$"
"""An absolute path, appended to http://<pod IP>:<port>, that cannot change where it goes.

'//' at the start would make the rest an authority (another host), '#', '\\', spaces and
control characters would be cut off or re-read by one HTTP client and not another.
"""
HTTP_PATH_MAX_LENGTH = 1024
HTTP_PATH_MESSAGE = (
    "must be an absolute URL path such as /healthz: one leading '/' (not '//', which would name another host), "
    "then only letters, digits, %XX escapes and -._~!$&'()*+,;=:@/? (no spaces, '#' or '\\')"
)


def is_http_path(value: str) -> bool:
    """Whether `value` passes HTTP_PATH_PATTERN and HTTP_PATH_MAX_LENGTH: the one test of a probe path."""
    return len(value) <= HTTP_PATH_MAX_LENGTH and re.fullmatch(HTTP_PATH_PATTERN, value) is not None


HTTP_PATH_RULE = CelRule(rule=cel_matches(HTTP_PATH_PATTERN), message=HTTP_PATH_MESSAGE)

HttpPath = Annotated[StrictStr, Field(max_length=HTTP_PATH_MAX_LENGTH), Checked(HTTP_PATH_RULE, is_http_path)]

# ---- the ModelDeployment's own name, which its children take unchanged --------------------------

CHILD_NAME_MAX_LENGTH = 63
"""A Service name is a DNS-1035 label: at most 63 characters."""
DNS_1035_LABEL_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


def is_dns_1035_label(value: str) -> bool:
    """Whether `value` can name a Service (and so the Deployment and HPA next to it) as it is."""
    return len(value) <= CHILD_NAME_MAX_LENGTH and re.fullmatch(DNS_1035_LABEL_PATTERN, value) is not None


# Names are immutable, so the rules only ever need to run on create. `oldSelf.hasValue() ||`
# (with optionalOldSelf) keeps objects created before the rules existed updatable, status
# writes included: their children keep the shortened names modeldeploy.render.names gave them.
METADATA_NAME_LENGTH = CelRule(
    rule=f"oldSelf.hasValue() || size(self.metadata.name) <= {CHILD_NAME_MAX_LENGTH}",
    message=(
        f"metadata.name must be at most {CHILD_NAME_MAX_LENGTH} characters, because it also names the "
        "Deployment, the Service (a DNS-1035 label) and the HorizontalPodAutoscaler; choose a shorter name"
    ),
    optional_old_self=True,
)
METADATA_NAME_FORMAT = CelRule(
    rule="oldSelf.hasValue() || " + cel_matches(DNS_1035_LABEL_PATTERN, "self.metadata.name"),
    message=(
        "metadata.name must start with a lowercase letter and contain only lowercase letters, digits and '-' "
        "(no '.'), because it also names the Service, whose name is a DNS-1035 label; e.g. iris-v1 for iris.v1"
    ),
    optional_old_self=True,
)


def metadata_name_problem(name: str) -> str | None:
    """The message of the first metadata.name rule `name` breaks, or None."""
    if len(name) > CHILD_NAME_MAX_LENGTH:
        return METADATA_NAME_LENGTH.message
    if re.fullmatch(DNS_1035_LABEL_PATTERN, name) is None:
        return METADATA_NAME_FORMAT.message
    return None


# ---- names of other objects --------------------------------------------------------------------

DNS_SUBDOMAIN_MAX_LENGTH = 253
_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
DNS_SUBDOMAIN_PATTERN = f"^{_SUBDOMAIN}$"


def is_dns_subdomain(value: str) -> bool:
    return len(value) <= DNS_SUBDOMAIN_MAX_LENGTH and re.fullmatch(DNS_SUBDOMAIN_PATTERN, value) is not None


OBJECT_NAME_RULE = CelRule(
    rule=cel_matches(DNS_SUBDOMAIN_PATTERN),
    message=(
        "must be the name of an object in the namespace: lowercase letters, digits, '-' and '.', "
        "starting and ending with a letter or digit"
    ),
)
ObjectName = Annotated[
    StrictStr,
    Field(min_length=1, max_length=DNS_SUBDOMAIN_MAX_LENGTH),
    Checked(OBJECT_NAME_RULE, is_dns_subdomain),
]
"""The name of a ServiceAccount or Secret: a DNS-1123 subdomain, as the Pod requires."""

# ---- labels and annotations, which end up on the pods -------------------------------------------

LABEL_VALUE_MAX_LENGTH = 63
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
"""A label value, possibly empty; the bounded repeat also caps it at 63 characters."""
LABEL_VALUE_RULE = CelRule(
    rule=cel_matches(LABEL_VALUE_PATTERN),
    message=(
        "must be a label value: at most 63 letters, digits, '-', '_' and '.', "
        "starting and ending with a letter or digit (or empty)"
    ),
)


def is_label_value(value: str) -> bool:
    return re.fullmatch(LABEL_VALUE_PATTERN, value) is not None


LabelValue = Annotated[StrictStr, Field(max_length=LABEL_VALUE_MAX_LENGTH), Checked(LABEL_VALUE_RULE, is_label_value)]

_SUBDOMAIN_ANY_CASE = r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*"
_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
LABEL_KEY_PATTERN = rf"^({_SUBDOMAIN}/)?{_NAME}$"
"""A qualified name: an optional DNS-subdomain prefix and '/', then a name of at most 63 characters."""
ANNOTATION_KEY_PATTERN = rf"^({_SUBDOMAIN_ANY_CASE}/)?{_NAME}$"
"""Like a label key, but Kubernetes checks annotation keys after lowercasing them."""
QUALIFIED_NAME_MAX_LENGTH = DNS_SUBDOMAIN_MAX_LENGTH + 1 + 63
_PREFIX_FITS = f"(!k.contains('/') || k.indexOf('/') <= {DNS_SUBDOMAIN_MAX_LENGTH})"


def _is_qualified(key: str, pattern: str) -> bool:
    prefix, slash, _ = key.partition("/")
    return re.fullmatch(pattern, key) is not None and (not slash or len(prefix) <= DNS_SUBDOMAIN_MAX_LENGTH)


def is_label_key(key: str) -> bool:
    return _is_qualified(key, LABEL_KEY_PATTERN)


def is_annotation_key(key: str) -> bool:
    return _is_qualified(key, ANNOTATION_KEY_PATTERN)


def _keys(rule: CelRule, check: Callable[[str], bool]) -> Checked:
    def all_keys(value: Mapping[str, Any]) -> bool:
        return all(check(key) for key in value)

    return Checked(rule, all_keys)


LABEL_KEYS = _keys(
    CelRule(
        rule=f"self.all(k, {cel_matches(LABEL_KEY_PATTERN, 'k')} && {_PREFIX_FITS})",
        message=(
            "keys must be label keys like team or example.com/team: an optional DNS subdomain and '/', then at "
            "most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ),
    ),
    is_label_key,
)
ANNOTATION_KEYS = _keys(
    CelRule(
        rule=f"self.all(k, {cel_matches(ANNOTATION_KEY_PATTERN, 'k')} && {_PREFIX_FITS})",
        message=(
            "keys must be annotation keys like example.com/note: an optional DNS subdomain and '/', then at "
            "most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ),
    ),
    is_annotation_key,
)

# ---- container image ---------------------------------------------------------------------------

IMAGE_MAX_LENGTH = 1024
"""Longest useful reference: a 255-character repository name (the distribution spec's limit,
registry included), ':' and a 128-character tag, '@' and a sha512 digest (135) make 520; 1024
leaves room and still stops a pasted blob."""

_DOMAIN_COMPONENT = r"([A-Za-z0-9]|[A-Za-z0-9][-A-Za-z0-9]*[A-Za-z0-9])"
_DOMAIN = rf"({_DOMAIN_COMPONENT}(\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:]+\])(:[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*"
_TAG = r"[A-Za-z0-9_][-A-Za-z0-9_.]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}"
IMAGE_PATTERN = rf"^({_DOMAIN}/)?{_PATH_COMPONENT}(/{_PATH_COMPONENT})*(:{_TAG})?(@{_DIGEST})?$"
"""The reference grammar of github.com/distribution/reference, which the kubelet parses images with.

A reference it rejects (uppercase in the repository path, a space, a tag over 128 characters)
is an InvalidImageName that would leave the rollout stuck with no end.
"""
IMAGE_RULE = CelRule(
    rule=cel_matches(IMAGE_PATTERN),
    message=(
        "must be a container image reference such as ghcr.io/org/server:1.0 or registry.example.com:5000/"
        "team/server@sha256:<64 hex digits>: a lowercase repository path, an optional tag of at most 128 "
        "letters, digits, '_', '.' and '-', an optional digest, no spaces"
    ),
)


def is_image_reference(value: str) -> bool:
    return re.fullmatch(IMAGE_PATTERN, value) is not None


ImageReference = Annotated[
    StrictStr, Field(min_length=1, max_length=IMAGE_MAX_LENGTH), Checked(IMAGE_RULE, is_image_reference)
]

# ---- environment ---------------------------------------------------------------------------------

ENV_NAME_MAX_LENGTH = 256
"""Kubernetes sets none; no real variable name comes close."""
ENV_NAME_PATTERN = r"^[ -<>-~]+$"
"""Printable ASCII except '=', what Pods accept since Kubernetes 1.34 (RelaxedEnvironmentVariableValidation)."""
ENV_NAME_RULE = CelRule(
    rule=cel_matches(ENV_NAME_PATTERN),
    message="must be an environment variable name such as LOG_LEVEL: printable ASCII characters other than '='",
)


def is_env_name(value: str) -> bool:
    return re.fullmatch(ENV_NAME_PATTERN, value) is not None


EnvName = Annotated[StrictStr, Field(min_length=1, max_length=ENV_NAME_MAX_LENGTH), Checked(ENV_NAME_RULE, is_env_name)]


MODEL_URI_PATTERN = r"^((s3|gs|azure|az|https?|pvc|oci)://[^\x00-\x20\x7f]+|/[^\x00-\x20\x7f]*)$"
"""A model artifact's location: an object store, a web server, a PersistentVolumeClaim
(`pvc://claim/path`), an OCI image (`oci://registry/repo:tag`), or an absolute path inside the
image. A typo such as `s4://` is refused here rather than becoming a pod that starts without its
model (`modeldeploy.storage.location` checks the parts a pattern cannot)."""
SHA256_PATTERN = r"^[A-Fa-f0-9]{64}$"
