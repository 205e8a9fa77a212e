// An operator who is online adds raster tiles with --map-tiles: the map
// requests them from the template's server (here one the test runs on
// localhost) and shows them, with the attribution given, as plain text.
import { createServer } from "node:http";
import { TIMEOUT, check, freePort, openPage, post, run, screenshots, startServer } from "./harness.mjs";
import { tilePng } from "./tiles.mjs";

const wait = (page, fn, arg) => page.waitForFunction(fn, arg, { timeout: TIMEOUT });

await run(async (cleanup) => {
  const png = tilePng();
  const requested = [];
  const tiles = createServer((req, res) => {
    requested.push(req.url);
    if (!/^\/tiles\/\d+\/\d+\/\d+\.png$/.test(req.url)) { res.writeHead(404).end(); return; }
    res.writeHead(200, { "Content-Type": "image/png" }).end(png);
  });
  await new Promise((resolve) => tiles.listen(0, "127.0.0.1", resolve));
  cleanup.push(() => new Promise((resolve) => tiles.close(resolve)));
  const tileBase = `http://127.0.0.1:${tiles.address().port}/tiles/`;

  const attribution = "Test tiles <b>©</b> contributors";
  const server = await startServer(await freePort(),
    ["--map-tiles", `${tileBase}{z}/{x}/{y}.png`, "--map-tiles-attribution", attribution]);
  cleanup.push(() => server.stop());
  await post(server.url, { longitude: 18.0686, latitude: 59.3293, tracker: "bus-42" });

  const page = await openPage(cleanup, `${server.url}/map`);

  // Tiles from the template's server, at the tracker's zoom (the map fits
  // it once history is read: world tiles come first), loaded and shown.
  await wait(page, (base) => [...document.querySelectorAll("img.leaflet-tile-loaded")]
    .filter((img) => img.src.startsWith(`${base}15/`) && img.naturalWidth === 256 && img.getBoundingClientRect().width > 0).length >= 4,
  tileBase);
  check(requested.some((url) => /^\/tiles\/15\/\d+\/\d+\.png$/.test(url)), `no tile at the tracker's zoom: ${requested.join(" ")}`);
  const opacity = await page.$eval(".leaflet-tile-pane", (p) => getComputedStyle(p).opacity);
  check(opacity === "1", `the tile pane has opacity ${opacity}`);
  // The attribution is shown as the text given, not as markup.
  await wait(page, (text) => document.querySelector(".leaflet-control-attribution").textContent.includes(text), attribution);
  // The offline outline stays one click away.
  check(await page.getByText("Outline (offline)").count() === 1, "no way back to the offline outline");
  await wait(page, () => document.querySelector('.tracker-body[data-tracker="bus-42"]'));
  await screenshots(page, "map-tiles");
});
