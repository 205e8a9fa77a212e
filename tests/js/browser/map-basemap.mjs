// An operator gives a city basemap as one PMTiles file (--map-basemap): the
// map reads it from longlat in byte ranges, with no other server, and
// shows its tiles at city zoom over the world outline, credited as the
// archive's metadata says, as plain text.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TIMEOUT, check, freePort, openPage, post, run, screenshots, startServer } from "./harness.mjs";
import { pmtilesArchive, tileAt, tilePng } from "./tiles.mjs";

const wait = (page, fn, arg) => page.waitForFunction(fn, arg, { timeout: TIMEOUT });
const [LAT, LON] = [59.3293, 18.0686];

await run(async (cleanup) => {
  // Zoom 15 around the tracker, a 9 × 9 block of tiles (a city quarter).
  const { x, y } = tileAt(15, LAT, LON);
  // Archives often credit their sources with links: shown as text only.
  const credit = '<a href="https://example.org">Test basemap <b>©</b> contributors</a>';
  const archive = pmtilesArchive({ png: tilePng([250, 214, 165], [255, 240, 220]), zoom: 15,
    x0: x - 4, y0: y - 4, x1: x + 4, y1: y + 4, metadata: { attribution: credit } });
  const file = join(mkdtempSync(join(tmpdir(), "longlat-basemap-")), "city.pmtiles");
  writeFileSync(file, archive);

  const server = await startServer(await freePort(), ["--map-basemap", file]);
  cleanup.push(() => server.stop());
  await post(server.url, { longitude: LON, latitude: LAT, tracker: "bus-42" });

  const page = await openPage(cleanup, "about:blank");
  const ranges = [];
  page.on("response", (response) => {
    if (response.url() === `${server.url}/map/basemap.pmtiles`) {
      ranges.push(`${response.request().headers().range} → ${response.status()}`);
    }
  });
  await page.goto(`${server.url}/map`);

  // The archive's tiles, decoded into images in the basemap's pane, at the
  // tracker's zoom (the map fits it once history is read).
  await wait(page, () => [...document.querySelectorAll(".leaflet-basemap-pane img.leaflet-tile-loaded")]
    .filter((img) => img.src.startsWith("blob:") && img.naturalWidth === 256 && img.getBoundingClientRect().width > 0
      && img.style.display !== "none").length >= 4);
  check(await page.evaluate(() => window.longlatMap.getZoom()) >= 15, "the map is not at city zoom");
  // Read from longlat in pieces: the header and directory, then the tiles.
  check(ranges.length >= 2 && ranges.every((r) => /^bytes=\d+-\d+ → 206$/.test(r)),
    `the archive was not read in ranges: ${ranges.join(", ")}`);
  // The outline stays beneath, for the world outside the archive.
  await wait(page, () => document.getElementById("map").dataset.outline === "loaded");
  await wait(page, (text) => document.querySelector(".leaflet-control-attribution").textContent.includes(text),
    "Test basemap © contributors");
  check(await page.locator(".leaflet-control-attribution a[href='https://example.org']").count() === 0,
    "the archive's credit was inserted as markup");
  check(await page.getByText("Basemap (offline)").count() === 1, "no switch for the basemap");
  await wait(page, () => document.querySelector('.tracker-body[data-tracker="bus-42"]'));
  await screenshots(page, "map-basemap");
});
