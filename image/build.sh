#!/usr/bin/env bash
# `make image`: operator/Dockerfile built with buildah on a Python base image made from Debian
# packages (image/base.sh), tagged $1 (default localhost/modeldeploy:dev). No Docker engine and no
# container registry: the base comes from Debian's mirror, the Python packages from PyPI.
#
# Nothing is rebuilt while the image exists with the same inputs: a digest of the build context
# (pyproject.toml, README*, operator/ less caches, as .dockerignore keeps them), the Dockerfile,
# this script and the base image's id, stored as a label on the image.
#
# Build settings, and why:
#   --isolation chroot  RUN steps run without an OCI runtime or cgroups (crun 1.8 refuses this
#                       machine's hybrid cgroup v1/v2 hierarchy; chroot isolation needs neither).
#   --network host      pip in the build stage reaches PyPI the way this machine does.
#   --volume <CA file>  this machine's CA bundle over the image's during RUN steps only, for an
#                       egress proxy that re-signs TLS; it is not stored in any layer.
set -euo pipefail
cd "$(dirname "$0")/.."

tag=${1:-localhost/modeldeploy:dev}
ca_bundle=${MODELDEPLOY_BUILD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
label=io.modeldeploy.inputs

missing=()
for tool in buildah podman debootstrap; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "make image: ${missing[*]} not found. The image is built without Docker, with Debian's packages:" >&2
  echo "  apt-get install --no-install-recommends buildah podman runc debootstrap" >&2
  exit 1
fi

started=$(date +%s)
base=$(bash image/base.sh)
base_id=$(podman image inspect --format '{{.Id}}' "$base")

inputs=$(
  {
    sha256sum operator/Dockerfile image/build.sh
    echo "base $base_id"
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
      --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' --exclude=.import_linter_cache \
      --exclude=operator/Dockerfile -cf - pyproject.toml README* operator | sha256sum
  } | sha256sum | cut -c1-16
)

if podman image exists "$tag" \
  && [ "$(podman image inspect --format "{{ index .Labels \"$label\" }}" "$tag")" = "$inputs" ]; then
  echo "[image] up to date: $tag (inputs $inputs)" >&2
else
  flags=(--isolation chroot --network host)
  if [ -f "$ca_bundle" ]; then
    flags+=(--volume "$ca_bundle:/etc/ssl/certs/ca-certificates.crt:ro")
  fi
  echo "[image] buildah build -f operator/Dockerfile --build-arg PYTHON_IMAGE=$base -t $tag" >&2
  build_started=$(date +%s)
  previous=$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
  buildah build "${flags[@]}" \
    --build-arg "PYTHON_IMAGE=$base" \
    --label "$label=$inputs" \
    -f operator/Dockerfile -t "$tag" .
  echo "[image] built $tag in $(($(date +%s) - build_started))s" >&2
  if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect --format '{{.Id}}' "$tag")" ]; then
    # the image this tag named before, now untagged: removed unless a container still uses it
    podman rmi "$previous" >/dev/null 2>&1 || true
  fi
fi

size=$(podman image inspect --format '{{.Size}}' "$tag")
echo "[image] $tag: $size bytes ($((size / 1000000)) MB) on $base; $(($(date +%s) - started))s in all" >&2
