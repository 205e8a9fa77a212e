// Zones on the live map: a circle and a polygon with a hole put over REST
// are drawn and named; a tracker driving into the circle and out again
// flashes it and adds "entered", then "left", to the list, newest first; a
// zone put while the page is open shows with its first crossing; over
// Server-Sent Events too, when WebSockets are blocked; on a phone; and only
// the zones around the view are read.
import { TIMEOUT, check, curl, freePort, launch, offlineOnly, openPage, post, run, screenshots, startServer }
  from "./harness.mjs";

const wait = (page, fn, arg) => page.waitForFunction(fn, arg, { timeout: TIMEOUT });

/** Puts zone `name` with `shape` ({circle} or {polygon}) over REST. */
const putZone = (base, name, shape) =>
  curl("-X", "PUT", "-H", "Content-Type: application/json", "-d", JSON.stringify(shape), `${base}/zones/${name}`);

const square = (west, south, east, north) => [[west, south], [east, south], [east, north], [west, north], [west, south]];

/** In the page: the zone event list's lines, newest first. */
const lines = () => [...document.querySelectorAll("#crossings li")].map((li) => li.textContent);

/** In the page: whether the newest line is `text` at hh:mm:ss, and the zone it names flashes `type`. */
function newest([text, zone, type]) {
  const line = document.querySelector("#crossings li");
  const path = document.querySelector(`path.zone[data-zone="${zone}"]`);
  return line !== null && new RegExp(`^${text} · \\d\\d:\\d\\d:\\d\\d$`).test(line.textContent) &&
    path !== null && path.dataset.flash === type;
}

await run(async (cleanup) => {
  const server = await startServer(await freePort());
  cleanup.push(() => server.stop());
  await putZone(server.url, "depot", { circle: { longitude: 18.06, latitude: 59.33, radius: 150 } });
  await putZone(server.url, "yard", { polygon: { type: "Polygon",
    coordinates: [square(18.07, 59.325, 18.08, 59.335), square(18.074, 59.329, 18.076, 59.331)] } });

  const page = await openPage(cleanup, `${server.url}/map`);
  await wait(page, () => document.getElementById("status").dataset.state === "live");

  // Both zones drawn, named, the polygon with its hole (two rings in one path).
  await wait(page, () => document.querySelectorAll("path.zone.leaflet-interactive[data-zone]").length === 2);
  const drawn = await page.evaluate(() => ({
    rings: (document.querySelector('path.zone[data-zone="yard"]').getAttribute("d").match(/M/g) || []).length,
    labels: [...document.querySelectorAll(".zone-label")].map((l) => l.textContent).sort(),
    live: document.getElementById("crossings").getAttribute("aria-live"),
    count: document.querySelector("#zones .count").textContent,
    shown: !document.getElementById("zones").hidden,
  }));
  check(drawn.rings === 2, `the polygon is drawn with ${drawn.rings} rings, expected 2 (the hole kept)`);
  check(drawn.labels.join() === "depot,yard", `the zones are labelled ${drawn.labels.join(", ")}`);
  check(drawn.live === "polite" && drawn.count === "2" && drawn.shown,
    `the zone list: aria-live ${drawn.live}, count ${drawn.count}, shown ${drawn.shown}`);

  // Into the circle and out: entered, then left, newest first.
  await post(server.url, { longitude: 18.05, latitude: 59.33, tracker: "bus-42" });
  await post(server.url, { longitude: 18.0601, latitude: 59.3301, tracker: "bus-42" });
  await wait(page, newest, ["bus-42 entered depot", "depot", "enter"]);
  await post(server.url, { longitude: 18.05, latitude: 59.33, tracker: "bus-42" });
  await wait(page, newest, ["bus-42 left depot", "depot", "leave"]);
  const shown = await page.evaluate(lines);
  check(shown.length === 2 && shown[1].startsWith("bus-42 entered depot"), `the list shows ${JSON.stringify(shown)}`);

  // A zone put while the page is open: its first crossing draws it too.
  await putZone(server.url, "kiosk", { circle: { longitude: 18.09, latitude: 59.33, radius: 50 } });
  await post(server.url, { longitude: 18.09, latitude: 59.33, tracker: "tram-7" });
  await wait(page, () => document.querySelector('#crossings li[data-zone="kiosk"]') !== null &&
    document.querySelector('path.zone[data-zone="kiosk"]') !== null);

  // WebSockets blocked: the zone events come over Server-Sent Events.
  const browser = await launch();
  cleanup.push(() => browser.close());
  const context = await browser.newContext();
  await offlineOnly(context);
  const fallback = await context.newPage();
  fallback.on("pageerror", (err) => { console.error(`page error: ${err.message}`); process.exitCode = 1; });
  await fallback.routeWebSocket(/\/ws/, (ws) => ws.close({ code: 1008, reason: "blocked by a proxy" }));
  await fallback.goto(`${server.url}/map`);
  await wait(fallback, () => /\(sse\)/.test(document.getElementById("status").textContent));
  await wait(fallback, () => document.querySelectorAll("path.zone[data-zone]").length === 3);
  check(await fallback.evaluate(() => document.querySelector("#crossings li") === null),
    "a freshly opened page lists zone events from before it opened");
  await post(server.url, { longitude: 18.0725, latitude: 59.3275, tracker: "tram-7" });
  await wait(fallback, newest, ["tram-7 entered yard", "yard", "enter"]);
  await wait(page, newest, ["tram-7 entered yard", "yard", "enter"]);

  // A phone: nothing wider than the screen, the map and the list on it.
  await page.setViewportSize({ width: 375, height: 812 });
  await page.evaluate(() => { window.longlatMap.invalidateSize(); window.longlatMap.fitBounds([[59.325, 18.055], [59.336, 18.092]], { animate: false }); });
  const phone = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth,
    list: document.getElementById("crossings").getBoundingClientRect().toJSON(),
    lines: document.querySelectorAll("#crossings li").length,
  }));
  check(phone.scrollWidth <= phone.innerWidth, `the phone page is ${phone.scrollWidth} px wide on a ${phone.innerWidth} px screen`);
  check(phone.list.width > 300 && phone.list.right <= phone.innerWidth && phone.list.height >= 60,
    `the phone zone list is ${phone.list.width}x${phone.list.height} at ${phone.list.left}`);
  // depot entered and left, kiosk entered, kiosk left and yard entered.
  check(phone.lines === 5, `the phone list has ${phone.lines} lines, expected 5`);
  // The picture shows the markers where they are, not half-way through the zoom.
  await wait(page, () => {
    const dot = document.querySelector('.tracker-body[data-tracker="tram-7"] .dot')?.getBoundingClientRect();
    const map = document.getElementById("map").getBoundingClientRect();
    const at = window.longlatMap.latLngToContainerPoint([59.3275, 18.0725]);
    return dot && Math.hypot(dot.left + dot.width / 2 - map.left - at.x, dot.top + dot.height / 2 - map.top - at.y) < 2;
  });
  await screenshots(page, "map-zones");

  // Only the zones around the view are read: one in another city is not,
  // until the map goes there; then the zones left behind go.
  await putZone(server.url, "harbour", { circle: { longitude: 11.97, latitude: 57.70, radius: 200 } });
  const read = page.waitForResponse((r) => new URL(r.url()).pathname === "/zones", { timeout: TIMEOUT });
  await page.evaluate(() => { window.longlatMap.panBy([20, 0], { animate: false }); });
  const response = await read;
  const asked = new URL(response.url()).searchParams;
  const [west, south, east, north] = asked.get("bbox").split(",").map(Number);
  check(west < 18.06 && east > 18.09 && south < 59.33 && north > 59.335 && east - west < 1 && asked.get("limit") === "2000",
    `the page read zones in ${asked}`);
  const names = (await response.json()).map((zone) => zone.name).sort().join();
  check(names === "depot,kiosk,yard", `the zones read around Stockholm: ${names}`);
  await page.evaluate(() => { window.longlatMap.setView([57.70, 11.97], 15, { animate: false }); });
  await wait(page, () => document.querySelector('path.zone[data-zone="harbour"]') !== null &&
    document.querySelector("path.zone[data-zone]:not([data-zone=harbour])") === null &&
    document.querySelector("#zones .count").textContent === "1");
});
