#!/usr/bin/env bash
# CI for the Go client, offline: installs Debian bookworm's Go toolchain and
# Go packages when they are missing, checks that the generated code matches
# proto/, then gofmt, go vet and go test (GOPATH mode, see go.sh). The tests
# start the service from the repository's sources, so `npm ci` must have run
# (.ci/run does it first), and start their own redis-server.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# golang-github-golang-protobuf-1-5-dev by name: golang-google-grpc-dev
# accepts the 1.3 shim too, which conflicts with protoc-gen-go.
PACKAGES=(
  golang-go
  protobuf-compiler
  protoc-gen-go
  protoc-gen-go-grpc
  golang-google-protobuf-dev
  golang-github-golang-protobuf-1-5-dev
  golang-google-grpc-dev
  redis-server
)
missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if ((${#missing[@]})); then
  echo "==> installing with apt-get: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "==> $(go version); grpc-go $(dpkg-query -W -f='${Version}' golang-google-grpc-dev);" \
  "protobuf-go $(dpkg-query -W -f='${Version}' golang-google-protobuf-dev)"

echo "==> generated code"
"$here/generate.sh" --check

echo "==> gofmt"
unformatted="$(gofmt -l "$here")"
if [[ -n "$unformatted" ]]; then
  echo "gofmt would change: $unformatted (run gofmt -w on them)" >&2
  exit 1
fi

echo "==> go vet"
"$here/go.sh" vet ./...

echo "==> go test"
"$here/go.sh" test -count=1 ./...
