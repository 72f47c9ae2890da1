#!/usr/bin/env bash
# Builds Jaeger v2's all-in-one `jaeger` binary (OTLP receiver, in-memory
# storage, query API) from its Go module, fetched through the Go module proxy:
# no Docker and no registry other than the proxy. `go install
# github.com/jaegertracing/jaeger/cmd/jaeger@VERSION` refuses the module's
# replace directive, so this builds inside the downloaded module, where the
# directive applies. The UI's assets are not part of the module: the binary
# serves a placeholder page on the UI's port, and the HTTP API (/api/...)
# in full.
#
# The Go module keeps v1 tags for the v2 binary. The first build compiles
# the ~2,300 packages Jaeger links, every storage backend included (31 min
# of wall time, 8 min of CPU, on this project's loaded 2-core machine);
# later ones take their packages from the Go build cache and only link.
#
# usage: scripts/jaeger.sh OUT_DIR   (JAEGER_VERSION overrides the version)
set -euo pipefail
out=$(mkdir -p "${1:?usage: scripts/jaeger.sh OUT_DIR}" && cd "$1" && pwd)
version=${JAEGER_VERSION:-v1.75.0}
mod=github.com/jaegertracing/jaeger
dir=$(cd "${TMPDIR:-/tmp}" && GOWORK=off go mod download -json "$mod@$version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
  echo "jaeger.sh: could not download $mod@$version" >&2
  exit 1
fi
cd "$dir"
GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "-X $mod/internal/version.latestVersion=$version" -o "$out/jaeger" ./cmd/jaeger
echo "built $out/jaeger ($mod $version)"
