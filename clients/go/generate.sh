#!/usr/bin/env bash
# Generates the Go messages and gRPC stubs in sessionmanager/ from the
# service's .proto files (proto/sessionmanager/; proto/grpc/ holds copies of
# gRPC's own health and reflection protos, which Go takes from grpc-go), with
# Debian bookworm's protoc
# (3.21.12), protoc-gen-go (1.28.1) and protoc-gen-go-grpc (grpc-go 1.33.3).
# Where the code goes comes from each file's go_package, relative to the
# module path in go.mod.
#
#   clients/go/generate.sh           regenerate in place (after changing proto/)
#   clients/go/generate.sh --check   fail when the committed code is stale
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
module="$(sed -n 's/^module //p' "$here/go.mod")"

for tool in protoc protoc-gen-go protoc-gen-go-grpc; do
  if ! command -v "$tool" >/dev/null; then
    echo "generate.sh: $tool is missing: apt-get install protobuf-compiler protoc-gen-go protoc-gen-go-grpc" >&2
    exit 1
  fi
done

# Every generated file under this module, outside the GOPATH workspace.
generated_files() {
  (cd "$1" && find . -path ./.gopath -prune -o -name '*.pb.go' -print | sort)
}

generate() {
  local out="$1"
  (
    cd "$repo"
    mapfile -t protos < <(find proto/sessionmanager -name '*.proto' | sort)
    protoc -I proto \
      --go_out="$out" --go_opt=module="$module" \
      --go-grpc_out="$out" --go-grpc_opt=module="$module" \
      "${protos[@]#proto/}"
  )
}

case "${1:-}" in
  "")
    generated_files "$here" | (cd "$here" && xargs -r rm -f)
    generate "$here"
    ;;
  --check)
    fresh="$(mktemp -d)"
    trap 'rm -rf "$fresh"' EXIT
    generate "$fresh"
    stale=0
    diff <(generated_files "$fresh") <(generated_files "$here") || stale=1
    while read -r file; do
      [[ -f "$here/$file" ]] && { diff -u --label "committed ${file#./}" --label "generated ${file#./}" "$here/$file" "$fresh/$file" || stale=1; }
    done < <(generated_files "$fresh")
    if ((stale)); then
      echo "generate.sh: the generated Go code is stale, or was made with other tools than" \
        "$(protoc --version), $(protoc-gen-go --version): run clients/go/generate.sh and commit" >&2
      exit 1
    fi
    echo "generate.sh: the generated Go code matches proto/"
    ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac
