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
# The module keeps v1 tags: v1.75.0 is the release Jaeger calls v2.12.0.
# The first build compiles every storage backend Jaeger links (minutes);
# later ones come from the Go build cache.
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
GOWORK=off CGO_ENABLED=0 go build -trimpath -o "$out/jaeger" ./cmd/jaeger
"$out/jaeger" version 2>/dev/null | head -n 3 || true
echo "built $out/jaeger ($mod $version)"
