#!/usr/bin/env bash
# Re-vendors the map page's front-end assets from pinned npm releases, with
# their licences. Run from anywhere; needs npm and the npm registry.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fetch() { (cd "$work" && npm pack --silent "$1" >/dev/null && mkdir -p "$2" && tar -xzf ./*.tgz -C "$2" --strip-components=1 && rm ./*.tgz); }

# Natural Earth at 1:10m (coastlines and country borders), the most detailed
# world outline on npm small enough to compile into the binary.
fetch world-atlas@2.0.2 world-atlas
rm -rf world-atlas && mkdir -p world-atlas
cp "$work/world-atlas/countries-10m.json" "$work/world-atlas/LICENSE" world-atlas/

fetch topojson-client@3.1.0 topojson-client
mkdir -p topojson-client
cp "$work/topojson-client/dist/topojson-client.min.js" "$work/topojson-client/LICENSE" topojson-client/

fetch leaflet@1.9.4 leaflet
rm -rf leaflet && mkdir -p leaflet/images
cp "$work/leaflet/dist/leaflet.js" "$work/leaflet/dist/leaflet.css" "$work/leaflet/LICENSE" leaflet/
cp "$work/leaflet/dist/images/"*.png leaflet/images/

fetch leaflet.markercluster@1.5.3 leaflet.markercluster
rm -rf leaflet.markercluster && mkdir -p leaflet.markercluster
cp "$work/leaflet.markercluster/dist/leaflet.markercluster.js" "$work/leaflet.markercluster/dist/MarkerCluster.css" \
  "$work/leaflet.markercluster/dist/MarkerCluster.Default.css" leaflet.markercluster/
cp "$work/leaflet.markercluster/MIT-LICENCE.txt" leaflet.markercluster/LICENSE

# The large files are also kept gzipped, served to browsers that take it
# (src/http/assets.rs); a test checks each .gz is its file compressed.
gzip -9 -n -k -f world-atlas/countries-10m.json leaflet/leaflet.js leaflet/leaflet.css \
  leaflet.markercluster/leaflet.markercluster.js
