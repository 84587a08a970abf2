#!/usr/bin/env bash
# Build the docker compose v2 CLI plugin from its Go module (the Go module proxy is reachable
# where Docker's download site is not). Used only to validate docker-compose.yaml here.
set -euo pipefail
version=${1:?compose version, e.g. v2.40.3}
target=${2:?where to put the plugin binary}
module=github.com/docker/compose/v2
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
dir=$(go mod download -json "$module@$version" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("Dir") or sys.exit(d.get("Error")))')
cp -r "$dir" "$work/src" && chmod -R u+w "$work/src"
mkdir -p "$(dirname "$target")"
(cd "$work/src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
  -ldflags "-s -w -X $module/internal.Version=$version" -o "$work/docker-compose" ./cmd)
mv "$work/docker-compose" "$target"
echo "docker compose plugin $version: $target"
