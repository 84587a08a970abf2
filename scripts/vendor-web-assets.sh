#!/usr/bin/env bash
# The operations page's browser libraries, vendored into the plugin (no CDN can be reached where
# Airflow runs, and a page behind a login should load nothing from elsewhere anyway).
#
# Each package is fetched at its pinned version from the npm registry with `npm pack` (npm checks
# the tarball against the registry's sha512 integrity); the files the page uses and the package's
# license are copied into quacknet/airflow/static/vendor/<name>-<version>/, and
#   PACKAGES   name, version, the registry's integrity of the tarball, the files taken
#   SHA256SUMS the SHA-256 of every vendored file (tests/unit/airflow/test_vendored_assets.py checks them)
# are rewritten. Re-running with the same pins reproduces the same files byte for byte.
#
# Usage: scripts/vendor-web-assets.sh        (needs npm and node; run from anywhere)
set -euo pipefail

# name version  files taken from the package (path inside the tarball's package/ -> same base name)
PINS=(
  "uplot 1.6.32 dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE"
  "leaflet 1.9.4 dist/leaflet.js dist/leaflet.css dist/images/layers.png dist/images/layers-2x.png LICENSE"
  "topojson-client 3.1.0 dist/topojson-client.min.js LICENSE"
  "world-atlas 2.0.2 countries-50m.json LICENSE"
)

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/quacknet/airflow/static/vendor"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rm -rf "$dest"
mkdir -p "$dest"
{
  echo "# Vendored by scripts/vendor-web-assets.sh from the npm registry (npm pack checks each tarball's integrity)."
  echo "# name version integrity files"
} > "$dest/PACKAGES"

for pin in "${PINS[@]}"; do
  read -r name version files <<< "$pin"
  integrity=$(cd "$work" && npm pack "$name@$version" --json --silent |
              node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const [p]=JSON.parse(s);console.log(p.integrity+" "+p.filename)})')
  read -r sri tarball <<< "$integrity"
  mkdir -p "$work/$name"
  tar xzf "$work/$tarball" -C "$work/$name"
  target="$dest/$name-$version"
  for f in $files; do
    case "$f" in
      */images/*) mkdir -p "$target/images"; cp "$work/$name/package/$f" "$target/images/" ;;
      *) mkdir -p "$target"; cp "$work/$name/package/$f" "$target/" ;;
    esac
  done
  echo "$name $version $sri $files" >> "$dest/PACKAGES"
  echo "vendored $name@$version ($sri)"
done

(cd "$dest" && find . -type f ! -name SHA256SUMS ! -name PACKAGES | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum > SHA256SUMS)
echo "wrote $dest/PACKAGES and $dest/SHA256SUMS"
