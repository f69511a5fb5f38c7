#!/usr/bin/env bash
# The Python base image for operator/Dockerfile, made from Debian packages (no registry needed).
#
# python:3.11-slim-bookworm cannot be pulled here, so this builds its stand-in with debootstrap:
# Debian bookworm (--variant=minbase) with python3 (3.11), pip and `python` (python-is-python3),
# without apt lists, docs, man pages or locales. It is imported into containers-storage as
#
#   localhost/modeldeploy-python-base:<release>-<python>     e.g. :bookworm-3.11
#
# and labelled with a digest of this script. The rootfs tarball is cached as
# $MODELDEPLOY_CACHE_DIR (default ~/.cache/modeldeploy)/python-base-<release>-<python>-<digest>.tar,
# so an empty containers-storage re-imports it without debootstrap. Nothing is rebuilt while the
# tag exists with the same digest. Prints the tag on stdout; progress goes to stderr.
#
# Debian marks its python3 "externally managed" (PEP 668): `pip install` outside a venv is refused
# so that pip cannot break apt's Python packages. This image is a Python runtime like the official
# one, whose pip installs into the system Python; the marker is removed, and pip installs into
# /usr/local/lib/python3.11/dist-packages, beside (never over) Debian's /usr/lib/python3/dist-packages.
set -euo pipefail

RELEASE=${DEBIAN_RELEASE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PODMAN=${PODMAN:-podman}
case "$RELEASE" in
  bookworm) PYTHON_VERSION=3.11 ;;
  trixie) PYTHON_VERSION=3.13 ;;
  *) echo "image/base.sh: unknown Python version of Debian $RELEASE" >&2; exit 2 ;;
esac
PACKAGES=python3,python3-pip,python-is-python3,ca-certificates

here=$(cd "$(dirname "$0")" && pwd)
digest=$(sha256sum "$here/base.sh" | cut -c1-12)
tag=localhost/modeldeploy-python-base:$RELEASE-$PYTHON_VERSION
cache=${MODELDEPLOY_CACHE_DIR:-$HOME/.cache/modeldeploy}
tarball=$cache/python-base-$RELEASE-$PYTHON_VERSION-$digest.tar
label=io.modeldeploy.base-recipe

log() { echo "[image/base] $*" >&2; }

for tool in "$PODMAN" debootstrap; do
  command -v "$tool" >/dev/null || {
    echo "image/base.sh: $tool not found; install it from Debian: apt-get install buildah podman crun debootstrap" >&2
    exit 1
  }
done

if "$PODMAN" image exists "$tag" \
  && [ "$("$PODMAN" image inspect --format "{{ index .Labels \"$label\" }}" "$tag")" = "$digest" ]; then
  log "cached: $tag (recipe $digest)"
  echo "$tag"
  exit 0
fi

if [ ! -f "$tarball" ]; then
  [ "$(id -u)" = 0 ] || { echo "image/base.sh: debootstrap needs root" >&2; exit 1; }
  mkdir -p "$cache"
  work=$(mktemp -d "$cache/python-base.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  rootfs=$work/rootfs
  log "debootstrap $RELEASE (minbase + $PACKAGES) from $MIRROR"
  started=$(date +%s)
  debootstrap --variant=minbase --include="$PACKAGES" "$RELEASE" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
  }
  log "debootstrap done in $(($(date +%s) - started))s"

  found=$(chroot "$rootfs" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  [ "$found" = "$PYTHON_VERSION" ] || { echo "image/base.sh: Debian $RELEASE has Python $found, not $PYTHON_VERSION" >&2; exit 1; }
  chroot "$rootfs" pip --version >&2

  rm -f "$rootfs/usr/lib/python$PYTHON_VERSION/EXTERNALLY-MANAGED"
  # Slim: what the official slim images drop too, and files a container runtime provides itself.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
    "$rootfs"/var/log/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/lintian "$rootfs"/tmp/* \
    "$rootfs"/etc/hostname "$rootfs"/etc/resolv.conf "$rootfs"/etc/machine-id
  # Packages installed later (apt-get in a derived image) leave their docs out as well.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CFG
  tar --numeric-owner --xattrs -C "$rootfs" -cf "$work/rootfs.tar" .
  mv "$work/rootfs.tar" "$tarball"
  log "rootfs cached: $tarball ($(du -h "$tarball" | cut -f1))"
fi

log "importing $tarball as $tag"
"$PODMAN" import \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV LANG=C.UTF-8" \
  --change "LABEL $label=$digest" \
  --change "LABEL io.modeldeploy.base-python=$PYTHON_VERSION" \
  --change 'CMD ["python3"]' \
  --message "Debian $RELEASE minbase with Python $PYTHON_VERSION (image/base.sh $digest)" \
  "$tarball" "$tag" >&2
echo "$tag"
