#!/usr/bin/env bash
# Re-vendors the map page's front-end assets from pinned npm releases, with
# their licences. Run from anywhere; needs npm and the npm registry.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fetch() { (cd "$work" && npm pack --silent "$1" >/dev/null && mkdir -p "$2" && tar -xzf ./*.tgz -C "$2" --strip-components=1 && rm ./*.tgz); }

fetch world-atlas@2.0.2 world-atlas
mkdir -p world-atlas
cp "$work/world-atlas/countries-110m.json" "$work/world-atlas/LICENSE" world-atlas/

fetch topojson-client@3.1.0 topojson-client
mkdir -p topojson-client
cp "$work/topojson-client/dist/topojson-client.min.js" "$work/topojson-client/LICENSE" topojson-client/
