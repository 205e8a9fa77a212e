// What lies under the markers: the world's coastlines and country borders
// from Natural Earth at 1:10m, built in so the map works offline, and the
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

/** The operator's raster tiles (`--map-tiles`), chosen by default when set. */
export async function loadTiles(map, outline) {
  const response = await fetch("/map/settings");
  if (!response.ok) return;
  const { tiles } = await response.json();
  if (!tiles) return;
  const layer = L.tileLayer(tiles.url, { maxZoom: 19, attribution: escapeHtml(tiles.attribution || "") });
  L.control.layers({ "Map tiles": layer, "Outline (offline)": outline }).addTo(map);
  map.removeLayer(outline);
  layer.addTo(map);
}

