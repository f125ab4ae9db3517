#!/usr/bin/env bash
# Build the Stafet image with podman: `make image` (IMAGE=... BASE_IMAGE=... to override).
#
# BASE_IMAGE is the Containerfile's base. Where a registry is reachable, leave it at the
# Containerfile's default (python:3.11-slim-bookworm). This project's machines reach no
# image registry, so with BASE_IMAGE=local a Debian bookworm root with Python 3.11 is made
# from Debian packages by mmdebstrap, cached as a tarball under ~/.cache/stafet/image and
# imported once; the second build starts from podman's layer cache and takes seconds.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
podman="$repo/deploy/image/podman.sh"
image="${IMAGE:-localhost/stafet:dev}"
base="${BASE_IMAGE:-local}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/stafet/image"
local_base="localhost/stafet-base:bookworm-python3"

if [ "$base" = "local" ]; then
  if ! "$podman" image exists "$local_base"; then
    tarball="$cache/debian-bookworm-python3.tar"
    if [ ! -f "$tarball" ]; then
      mkdir -p "$cache"
      echo "making the Debian base image with mmdebstrap (once; cached in $tarball) ..." >&2
      # mmdebstrap picks the output format from the name: the partial file ends in .tar too.
      mmdebstrap --quiet --variant=apt --include=python3,python3-venv,ca-certificates \
        bookworm "$cache/partial.tar"
      mv "$cache/partial.tar" "$tarball"
    fi
    "$podman" import --quiet \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      "$tarball" "$local_base" >/dev/null
  fi
  base="$local_base"
fi

# --network host: the build stage installs the pinned wheels from PyPI, trusting the
# host's CA bundle (a build secret, not stored in the image; see the Containerfile).
secret=()
ca_bundle="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
[ -s "$ca_bundle" ] && secret=(--secret "id=ca_bundle,src=$ca_bundle")
"$podman" build --quiet --network host --build-arg "BASE_IMAGE=$base" "${secret[@]}" \
  -f "$repo/Containerfile" -t "$image" "$repo" >/dev/null
# The image's name, then what identifies its content: its ID (the digest of its
# configuration, which names every layer) and its manifest digest as stored here (a
# registry may store it recompressed: `podman push --digestfile` tells that one).
echo "$image"
"$podman" image inspect --format 'id {{.Id}} digest {{.Digest}}' "$image"
