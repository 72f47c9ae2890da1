#!/usr/bin/env bash
# Regenerates the clients from proto/ (`make clients`): clients/python/gen with
# Debian's protoc and grpc_tools, clients/typescript/src/gen with buf and
# protoc-gen-es (npm ci from package-lock.json when node_modules is not at its
# version). With --check (`make check-generated`) it generates into a temporary
# directory and fails when the committed clients differ.
#
# Offline but for npm ci. Without protoc, grpc_tools or npm, --check warns and
# passes on a workstation; in CI (CI=true) and without --check it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
check=false
[ "${1:-}" = --check ] && check=true
buf=${BUF:-.bin/buf}

missing=()
command -v protoc >/dev/null || missing+=(protobuf-compiler)
/usr/bin/python3 -c 'import grpc_tools' 2>/dev/null || missing+=(python3-grpc-tools)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
	msg="clients: missing ${missing[*]} (apt-get install ${missing[*]})"
	if $check && [ "${CI:-}" != true ]; then
		echo "warning: $msg; the generated clients were not checked" >&2
		exit 0
	fi
	echo "$msg" >&2
	exit 1
fi

# protoc-gen-es at the version of the lockfile.
ts=clients/typescript
want=$(node -p 'require("./'$ts'/package-lock.json").packages["node_modules/@bufbuild/protoc-gen-es"].version')
have=$("$ts/node_modules/.bin/protoc-gen-es" --version 2>/dev/null || true)
if [ "$have" != "protoc-gen-es v$want" ]; then
	(cd "$ts" && npm ci --no-audit --no-fund --loglevel=error)
fi

if ! $check; then
	clients/python/generate.sh
	rm -rf "$ts/src/gen"
	"$buf" generate --template "$ts/buf.gen.yaml"
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
clients/python/generate.sh "$tmp/python"
"$buf" generate --template "$ts/buf.gen.yaml" -o "$tmp"
stale=false
diff -r --exclude=__pycache__ "$tmp/python/mailroom" clients/python/gen/mailroom >/dev/null || stale=true
diff -r "$tmp/$ts/src/gen" "$ts/src/gen" >/dev/null || stale=true
if $stale; then
	diff -ru --exclude=__pycache__ "$tmp/python/mailroom" clients/python/gen/mailroom | head -30 || true
	diff -ru "$tmp/$ts/src/gen" "$ts/src/gen" | head -30 || true
	echo "the generated clients are stale: run 'make clients' and commit the result" >&2
	exit 1
fi
echo "clients are up to date"
