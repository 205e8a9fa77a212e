// What lies under the markers: the world's coastlines and country borders
// from Natural Earth at 1:10m, built in so the map works offline; over it
// the operator's PMTiles basemap (`--map-basemap`), served by longlat, where
// it has tiles (a city or a region, in detail, offline too); and the
// operator's raster tiles (`--map-tiles`) for viewers who are online.

// A ring that crosses the antimeridian jumps from 180 to -180 and would be
// drawn as a streak across the world; unwrapped, it runs on past 180.
// Then the whole ring moves back by 360° if most of it ended up off the world.
function unwrap(ring) {
  let shift = 0;
  let previous = null;
  const unwrapped = ring.map(([lon, lat]) => {
    if (previous !== null && lon + shift - previous > 180) shift -= 360;
    else if (previous !== null && lon + shift - previous < -180) shift += 360;
    previous = lon + shift;
    return [previous, lat];
  });
  const mean = unwrapped.reduce((sum, [lon]) => sum + lon, 0) / (unwrapped.length || 1);
  const back = mean > 180 ? -360 : mean < -180 ? 360 : 0;
  return back ? unwrapped.map(([lon, lat]) => [lon + back, lat]) : unwrapped;
}

function unwrapFeature(feature) {
  const { type, coordinates } = feature.geometry || {};
  if (type === "Polygon") feature.geometry.coordinates = coordinates.map(unwrap);
  if (type === "MultiPolygon") feature.geometry.coordinates = coordinates.map((polygon) => polygon.map(unwrap));
  return feature;
}

/** Draws the world's coastlines and borders into `outline`, a layer group on the map. */
export async function loadOutline(outline) {
  const response = await fetch("/assets/vendor/world-atlas/countries-10m.json");
  const topology = await response.json();
  const countries = topojson.feature(topology, topology.objects.countries);
  countries.features.forEach(unwrapFeature);
  L.geoJSON(countries, {
    pane: "outline",
    renderer: L.canvas({ pane: "outline", padding: 0.2 }),
    interactive: false,
    attribution: "Natural Earth",
    style: { color: "#3b6ea5", weight: 0.8, fillColor: "#1e3a5f", fillOpacity: 1 },
  }).addTo(outline);
  document.getElementById("map").dataset.outline = "loaded";
}

const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The layers the operator configured (`--map-tiles`, `--map-basemap`), offered beside the outline. */
export async function loadSettings(map, outline) {
  const response = await fetch("/map/settings");
  if (!response.ok) throw new Error(`map settings: HTTP ${response.status}`);
  const { tiles, basemap } = await response.json();
  const bases = { "Outline (offline)": outline };
  const overlays = {};
  if (tiles) {
    const layer = L.tileLayer(tiles.url, { maxZoom: 19, attribution: escapeHtml(tiles.attribution || "") });
    bases["Map tiles"] = layer;
    map.removeLayer(outline);
    layer.addTo(map);
  }
  if (basemap) {
    const layer = await basemapLayer(basemap);
    overlays["Basemap (offline)"] = layer.addTo(map);
    document.getElementById("basemap-credit").hidden = false;
  }
  if (tiles || basemap) L.control.layers(bases, overlays).addTo(map);
}

/** Loads a vendored script on demand: only maps with a basemap need these. */
function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = Object.assign(document.createElement("script"), { src, onload: resolve, onerror: reject });
    document.head.append(script);
  });
}

/** Text of an attribution that may be HTML (an archive's metadata often links its sources). */
const plainText = (html) => new DOMParser().parseFromString(html, "text/html").body.textContent || "";

/**
 * The PMTiles archive at `url` as a layer: raster tiles drawn as images,
 * vector tiles (a Protomaps build) styled by protomaps-leaflet. Tiles are
 * asked for only within the archive's bounds, and scaled past its last zoom.
 */
async function basemapLayer(url) {
  await loadScript("/assets/vendor/pmtiles/pmtiles.js");
  const archive = new pmtiles.PMTiles(url);
  const header = await archive.getHeader();
  const metadata = await archive.getMetadata().catch(() => ({}));
  const options = {
    pane: "basemap",
    bounds: [[header.minLat, header.minLon], [header.maxLat, header.maxLon]],
    maxZoom: 19,
  };
  if (typeof metadata.attribution === "string") options.attribution = escapeHtml(plainText(metadata.attribution));
  if (header.tileType === pmtiles.TileType.Mvt) {
    await loadScript("/assets/vendor/protomaps-leaflet/protomaps-leaflet.js");
    return protomapsL.leafletLayer({ ...options, url, flavor: "light", lang: "en", maxDataZoom: header.maxZoom });
  }
  return pmtiles.leafletRasterLayer(archive, { ...options, maxNativeZoom: header.maxZoom, attribution: options.attribution || "Basemap" });
}
