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

# An operator's PMTiles basemap (--map-basemap): pmtiles reads the archive in
# ranges and draws raster tiles; protomaps-leaflet draws vector ones (the
# Protomaps builds). The pmtiles package ships no licence file: it is the
# PMTiles repository's BSD-3-Clause licence, written out here.
fetch pmtiles@4.5.0 pmtiles
rm -rf pmtiles && mkdir -p pmtiles
cp "$work/pmtiles/dist/pmtiles.js" pmtiles/
cat > pmtiles/LICENSE <<'LICENCE'
Copyright 2021 Protomaps LLC

Redistribution and use in source and binary forms, with or without modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice, this list of conditions and the following disclaimer in the documentation and/or other materials provided with the distribution.

3. Neither the name of the copyright holder nor the names of its contributors may be used to endorse or promote products derived from this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
LICENCE

fetch protomaps-leaflet@5.1.0 protomaps-leaflet
rm -rf protomaps-leaflet && mkdir -p protomaps-leaflet
cp "$work/protomaps-leaflet/dist/protomaps-leaflet.js" "$work/protomaps-leaflet/LICENSE" protomaps-leaflet/

# The large files are also kept gzipped, served to browsers that take it
# (src/http/assets.rs); a test checks each .gz is its file compressed.
gzip -9 -n -k -f world-atlas/countries-10m.json leaflet/leaflet.js leaflet/leaflet.css \
  leaflet.markercluster/leaflet.markercluster.js protomaps-leaflet/protomaps-leaflet.js
# Some packages ship their files executable.
find . -type f ! -name vendor.sh -exec chmod 644 {} +
