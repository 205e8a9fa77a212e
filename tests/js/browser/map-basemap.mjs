// An operator gives a city basemap as one PMTiles file (--map-basemap): the
// map reads it from longlat in byte ranges, with no other server, and
// shows its tiles at city zoom over the world outline. Raster archives are
// drawn as images, credited as their metadata says (as plain text); vector
// ones (what `pmtiles extract` cuts from the Protomaps builds) are styled
// and drawn on canvases.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TIMEOUT, check, freePort, openPage, post, run, screenshots, startServer } from "./harness.mjs";
import { MVT, pmtilesArchive, tilePng, vectorTile } from "./tiles.mjs";

const wait = (page, fn, arg) => page.waitForFunction(fn, arg, { timeout: TIMEOUT });
const [LAT, LON] = [59.3293, 18.0686];
const dir = mkdtempSync(join(tmpdir(), "longlat-basemap-"));

/**
 * Starts longlat with `archive` (blocks of 9 × 9 tiles at zooms 13 to 15
 * around the tracker, a city quarter) as its basemap, posts the tracker,
 * and opens the map; resolves with the page and the ranges it read the
 * archive in.
 */
async function mapWithBasemap(cleanup, name, archive) {
  const file = join(dir, `${name}.pmtiles`);
  writeFileSync(file, pmtilesArchive({ ...archive, lat: LAT, lon: LON, minZoom: 13, maxZoom: 15, radius: 4 }));
  const server = await startServer(await freePort(), ["--map-basemap", file]);
  cleanup.push(() => server.stop());
  await post(server.url, { longitude: LON, latitude: LAT, tracker: "bus-42" });
  const page = await openPage(cleanup, "about:blank");
  const ranges = [];
  page.on("response", (response) => {
    if (response.url() === `${server.url}/map/basemap.pmtiles`) ranges.push(`${response.request().headers().range} → ${response.status()}`);
  });
  await page.goto(`${server.url}/map`);
  return { page, ranges };
}

/** Checks the archive was read from longlat in pieces: the header and directory, then tiles. */
function checkRanges(ranges) {
  check(ranges.length >= 2 && ranges.every((r) => /^bytes=\d+-\d+ → 206$/.test(r)),
    `the archive was not read in ranges: ${ranges.join(", ")}`);
}

await run(async (cleanup) => {
  // Raster: images decoded from the archive in the basemap's pane.
  const credit = '<a href="https://example.org">Test basemap <b>©</b> contributors</a>';
  const raster = await mapWithBasemap(cleanup, "raster",
    { tile: tilePng([250, 214, 165], [255, 240, 220]), metadata: { attribution: credit } });
  const page = raster.page;
  await wait(page, () => [...document.querySelectorAll(".leaflet-basemap-pane img.leaflet-tile-loaded")]
    .filter((img) => img.src.startsWith("blob:") && img.naturalWidth === 256 && img.getBoundingClientRect().width > 0
      && img.style.display !== "none").length >= 4);
  check(await page.evaluate(() => window.longlatMap.getZoom()) >= 15, "the map is not at city zoom");
  checkRanges(raster.ranges);
  // The outline stays beneath, for the world outside the archive.
  await wait(page, () => document.getElementById("map").dataset.outline === "loaded");
  await wait(page, (text) => document.querySelector(".leaflet-control-attribution").textContent.includes(text),
    "Test basemap © contributors");
  check(await page.locator(".leaflet-control-attribution a[href='https://example.org']").count() === 0,
    "the archive's credit was inserted as markup");
  check(await page.getByText("Basemap (offline)").count() === 1, "no switch for the basemap");
  await wait(page, () => document.querySelector('.tracker-body[data-tracker="bus-42"]'));
  await screenshots(page, "map-basemap");

  // Vector: the "earth" layer painted in the light style's land colour
  // (#e2dfda), not only the style's background (#cccccc), under the tracker.
  const vector = await mapWithBasemap(cleanup, "vector", { tile: vectorTile(["earth"]), tileType: MVT });
  await wait(vector.page, () => [...document.querySelectorAll(".leaflet-basemap-pane canvas")].some((canvas) => {
    const box = canvas.getBoundingClientRect();
    if (box.width === 0) return false;
    const [r, g, b] = canvas.getContext("2d").getImageData(canvas.width / 2, canvas.height / 2, 1, 1).data;
    return r === 0xe2 && g === 0xdf && b === 0xda;
  }));
  checkRanges(vector.ranges);
  await screenshots(vector.page, "map-basemap-vector");
});
