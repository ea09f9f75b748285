#!/usr/bin/env bash
# Runs the go command on this module in GOPATH mode, against the Go packages
# Debian installs under /usr/share/gocode: for machines without a Go module
# proxy. Arguments go to `go` as they are, run from the module's directory:
#
#   clients/go/go.sh vet ./...
#   clients/go/go.sh test ./...
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
module="$(sed -n 's/^module //p' "$here/go.mod")"

# GOPATH mode finds a package by its import path under $GOPATH/src: a symlink
# puts this directory there, and go runs from the symlink's path.
link="$here/.gopath/src/$module"
mkdir -p "$(dirname "$link")"
ln -sfn "$here" "$link"

export GO111MODULE=off
export GOPATH="$here/.gopath:/usr/share/gocode"
export GOFLAGS=
# No C toolchain needed; CGO_ENABLED=1 ./go.sh test -race ./... for the race detector.
export CGO_ENABLED="${CGO_ENABLED:-0}"
cd "$link"
exec go "$@"
