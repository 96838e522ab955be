#!/bin/sh
# Builds the deploy ramdisk (see image-build/build.ts --help), with the project's pinned Node.
here=$(cd "$(dirname "$0")" && pwd)
node="$here/../node_modules/.bin/node"
if [ ! -x "$node" ]; then
  echo "image-build: the pinned Node is missing: run npm ci (or scripts/setup.sh) in $(dirname "$here") first" >&2
  exit 1
fi
exec "$node" "$here/build.ts" "$@"
