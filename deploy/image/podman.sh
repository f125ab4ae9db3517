#!/usr/bin/env bash
# podman as it works on this project's machines (see docs/operations.md, "Building the image"):
# runc as the runtime and a containers.conf without default ulimits. Every podman call of the
# Makefile and the tests goes through here.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
runtime="$(command -v runc || echo /usr/sbin/runc)"
exec podman --runtime "$runtime" "$@"
