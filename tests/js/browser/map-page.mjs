// The live map: a marker at the right place, catch-up after the connection is
// cut, a fix sent late placed by when it was recorded, and after the server
// restarts.
import { check, freePort, launch, offlineOnly, post, run, screenshots, startServer, TIMEOUT } from "./harness.mjs";

const wait = (page, fn, arg) => page.waitForFunction(fn, arg, { timeout: TIMEOUT });

await run(async (cleanup) => {
  const port = await freePort();
  let server = await startServer(port);
  cleanup.push(() => server.stop());
  const browser = await launch();
  cleanup.push(() => browser.close());
  const context = await browser.newContext();
  await offlineOnly(context);
  const page = await context.newPage();

  // Route the page's WebSockets through the test, so it can cut them.
  let blocked = false;
  const sockets = [];
  await page.routeWebSocket(/\/ws/, (ws) => {
    if (blocked) { ws.close({ code: 1013, reason: "cut by the test" }); return; }
    ws.connectToServer();
    sockets.push(ws);
  });

  await page.goto(`${server.url}/map`);
  await wait(page, () => document.getElementById("status").dataset.state === "live");
  await wait(page, () => document.getElementById("map").dataset.outline === "loaded");

  // A posted position shows as a marker at the right place.
  const stockholm = await post(server.url, { longitude: 18.06324, latitude: 59.334591, tracker: "ferry-1" });
  await wait(page, () => document.querySelector('.tracker-body[data-tracker="ferry-1"] .dot'));
  const offset = await page.$eval('.tracker-body[data-tracker="ferry-1"] .dot', (dot) => {
    const box = dot.getBoundingClientRect();
    const map = document.getElementById("map").getBoundingClientRect();
    const at = window.longlatMap.latLngToContainerPoint([59.334591, 18.06324]);
    return Math.hypot(box.left + box.width / 2 - map.left - at.x, box.top + box.height / 2 - map.top - at.y);
  });
  check(offset < 1.5, `the marker is ${offset} px away from Stockholm`);
  await wait(page, (id) => document.getElementById("latest").textContent.includes(id), stockholm.id);
  await wait(page, () => document.querySelector('#trackers [data-tracker="ferry-1"] .seen'));

  // The connection is cut; positions posted meanwhile are caught up on reconnect.
  blocked = true;
  for (const ws of sockets.splice(0)) await ws.close({ code: 1006 });
  await wait(page, () => document.getElementById("status").dataset.state === "reconnecting");
  const route = [[18.1, 59.3], [18.2, 59.2], [18.3, 59.1]];
  const missed = [];
  for (const [longitude, latitude] of route) missed.push(await post(server.url, { longitude, latitude, tracker: "ferry-1" }));
  blocked = false;
  await wait(page, () => /3 caught up/.test(document.getElementById("status").textContent));
  await wait(page, (id) => document.getElementById("latest").textContent.includes(id), missed[2].id);
  const trail = await page.$eval('path.trail[data-tracker="ferry-1"]', (t) => [t.dataset.points, t.dataset.segments]);
  check(trail[0] === "4" && trail[1] === "1", `the trail has ${trail[0]} points in ${trail[1]} pieces, expected 4 in 1`);

  // A fix recorded an hour ago and sent late (a phone's buffer) joins the
  // start of the trail; the marker and the list stay on the newest fix.
  const recordedAt = new Date(Date.now() - 3_600_000).toISOString();
  await post(server.url, { longitude: 18.05, latitude: 59.35, tracker: "ferry-1", recordedAt });
  await wait(page, () => document.querySelector('path.trail[data-tracker="ferry-1"]').dataset.points === "5");
  const shown = await page.evaluate(() => ({
    pieces: document.querySelector('path.trail[data-tracker="ferry-1"]').dataset.segments,
    where: document.querySelector('#trackers [data-tracker="ferry-1"] .where').textContent,
  }));
  check(shown.pieces === "1" && shown.where === "59.10000, 18.30000",
    `after a late fix the trail is in ${shown.pieces} pieces and the tracker shown at ${shown.where}`);

  // The server restarts (new ids, empty history): the page says so and carries on.
  await server.stop();
  await wait(page, () => document.getElementById("status").dataset.state === "reconnecting");
  server = await startServer(port);
  await wait(page, () => document.getElementById("status").dataset.state === "resumed");
  await wait(page, () => !document.getElementById("notice").hidden);
  const after = await post(server.url, { longitude: 2.2945, latitude: 48.8584, tracker: "tour-eiffel" });
  await wait(page, () => document.querySelector('.tracker-body[data-tracker="tour-eiffel"]'));
  await wait(page, (id) => document.getElementById("latest").textContent.includes(id), after.id);

  // A few more trackers, for a picture worth looking at.
  for (const [tracker, longitude, latitude] of [["bus-nyc", -74.0445, 40.6892], ["tokyo-3", 139.6917, 35.6895],
    ["sydney-ferry", 151.2153, -33.8568], ["cape-1", 18.4241, -33.9249]]) {
    await post(server.url, { longitude, latitude, tracker });
  }
  await wait(page, () => document.querySelectorAll(".tracker-body").length === 6);
  await screenshots(page, "map-page");

  // WebSockets blocked: a freshly opened map shows what is in history, then
  // follows the stream over Server-Sent Events.
  const blockedContext = await browser.newContext();
  await offlineOnly(blockedContext);
  const fallback = await blockedContext.newPage();
  await fallback.routeWebSocket(/\/ws/, (ws) => ws.close({ code: 1008, reason: "blocked by a proxy" }));
  await fallback.goto(`${server.url}/map`);
  // The five trackers posted since the restart (ferry-1 went with the old server).
  await wait(fallback, () => document.querySelectorAll(".tracker-body").length === 5);
  await wait(fallback, () => /\(sse\)/.test(document.getElementById("status").textContent));
  const overSse = await post(server.url, { longitude: -43.1729, latitude: -22.9068, tracker: "rio-1" });
  await wait(fallback, (id) => document.getElementById("latest").textContent.includes(id), overSse.id);
  await wait(fallback, () => document.querySelector('.tracker-body[data-tracker="rio-1"]'));
});
