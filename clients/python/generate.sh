#!/usr/bin/env bash
# Regenerates clients/python/gen from proto/ offline, with Debian's protoc and
# grpc_tools (apt-get install protobuf-compiler python3-grpc-tools, 3.21 and
# 1.51, matching python3-protobuf 4.21 and python3-grpcio 1.51): the
# messages (_pb2), their type stubs (.pyi) and the gRPC stubs (_pb2_grpc).
# Usage: clients/python/generate.sh [OUT], OUT defaulting to clients/python/gen.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-clients/python/gen}
python=/usr/bin/python3 # Debian's, where apt puts grpc_tools
rm -rf "$out/mailroom"
mkdir -p "$out"
mapfile -t protos < <(cd proto && find mailroom -name '*.proto' | LC_ALL=C sort)
case $out in /*) abs=$out ;; *) abs=$PWD/$out ;; esac
# Debian's grpc_tools has no .pyi generator built in; its protoc (the same
# libprotoc 3.21) does.
(cd proto && protoc -I . --python_out="$abs" --pyi_out="$abs" "${protos[@]}")
(cd proto && "$python" -m grpc_tools.protoc -I . -I /usr/include --grpc_python_out="$abs" "${protos[@]}")
# Every directory a regular package, so that setuptools and mypy find them.
find "$out/mailroom" -type d -exec touch {}/__init__.py \;
