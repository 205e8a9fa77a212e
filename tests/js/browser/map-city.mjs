// Three buses a kilometre apart in Stockholm, as a new user would look at
// them: three markers with readable labels that do not overlap at city zoom,
// one cluster that splits when zoomed out, trails from history, positions
// without a tracker as points, a list entry to follow and replay.
import { TIMEOUT, check, freePort, openPage, post, run, screenshots, startServer } from "./harness.mjs";

const wait = (page, fn, arg) => page.waitForFunction(fn, arg, { timeout: TIMEOUT });
const BUSES = ["bus-42", "bus-43", "tram-7"];
const KM_LON = 1 / (111.32 * Math.cos((59.3293 * Math.PI) / 180)); // one km east, in degrees

/** In the page: whether the three buses show as distinct dots with readable labels clear of every dot and label. */
function readableApart(names) {
  const bodies = names.map((n) => document.querySelector(`.tracker-body[data-tracker="${n}"]`));
  if (bodies.some((b) => !b)) return false;
  const map = document.getElementById("map").getBoundingClientRect();
  const dots = bodies.map((b) => b.querySelector(".dot").getBoundingClientRect());
  const labels = bodies.map((b) => b.querySelector(".label"));
  const boxes = labels.map((l) => l.getBoundingClientRect());
  const hits = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  const inside = (r) => r.left >= map.left && r.right <= map.right && r.top >= map.top && r.bottom <= map.bottom;
  for (let i = 0; i < names.length; i++) {
    if (!inside(dots[i]) || !inside(boxes[i])) return false;
    if (parseFloat(getComputedStyle(labels[i]).fontSize) < 12 || labels[i].textContent !== names[i]) return false;
    for (let j = 0; j < names.length; j++) {
      if (hits(boxes[i], dots[j])) return false;
      if (i < j && (hits(dots[i], dots[j]) || hits(boxes[i], boxes[j]))) return false;
    }
  }
  return true;
}

await run(async (cleanup) => {
  const server = await startServer(await freePort());
  cleanup.push(() => server.stop());

  // History before the page opens: three fixes each, 300 m apart.
  const start = { "bus-42": [18.0686, 59.3293], "bus-43": [18.0686 + KM_LON, 59.3293], "tram-7": [18.0686, 59.3383] };
  for (let step = 0; step < 3; step++) {
    for (const name of BUSES) {
      const [lon, lat] = start[name];
      await post(server.url, { longitude: lon, latitude: lat - 0.0027 * (2 - step), tracker: name });
    }
  }
  // A tracker that jumps to Paris in no time, and two positions without a tracker.
  for (const [longitude, latitude] of [[18.0, 59.3], [18.001, 59.3], [2.35, 48.85], [2.351, 48.85]]) {
    await post(server.url, { longitude, latitude, tracker: "plane-1" });
  }
  await post(server.url, { longitude: 10.75, latitude: 59.91 });
  await post(server.url, { longitude: 24.94, latitude: 60.17 });

  const page = await openPage(cleanup, `${server.url}/map`);

  // A fresh page that read history is live, not "resumed".
  await wait(page, () => document.getElementById("status").dataset.state !== "connecting");
  const status = await page.$eval("#status", (s) => [s.dataset.state, s.textContent]);
  check(status[0] === "live" && status[1] === "live (ws)", `a fresh page says ${status[1]} (${status[0]})`);
  await wait(page, () => document.getElementById("map").dataset.outline === "loaded");

  // Trails from history, one per tracker; the jump to Paris is not drawn.
  await wait(page, () => document.querySelectorAll("path.trail").length === 4);
  const trail = await page.$eval('path.trail[data-tracker="bus-42"]', (p) => [p.dataset.points, p.dataset.segments]);
  check(trail[0] === "3" && trail[1] === "1", `bus-42's trail has ${trail[0]} points in ${trail[1]} pieces`);
  const plane = await page.$eval('path.trail[data-tracker="plane-1"]', (p) => p.dataset.segments);
  check(plane === "2", `plane-1's trail is in ${plane} pieces, expected 2 (broken at the jump)`);
  // Positions without a tracker are two points, not a trail, and not a tracker.
  check(await page.$$eval("path.untracked", (dots) => dots.length) === 2, "the two untracked positions are not two points");
  check(await page.$('[data-tracker="(unnamed)"]') === null, "untracked positions show as a tracker");

  // City zoom: three distinct markers, labels readable and clear of each other.
  for (const zoom of [14, 13, 12]) {
    await page.evaluate((z) => { window.longlatMap.setView([59.3338, 18.0774], z, { animate: false }); }, zoom);
    await wait(page, readableApart, BUSES).catch(() => { throw new Error(`at zoom ${zoom} the three buses are not three readable, separate markers`); });
  }
  await screenshots(page, "map-city");
  await page.setViewportSize({ width: 1280, height: 800 });

  // Zoomed out they are one cluster of three, which splits when clicked.
  await page.evaluate(() => { window.longlatMap.setView([59.3338, 18.0774], 9, { animate: false }); });
  const cluster = page.locator(".marker-cluster", { hasText: /^3$/ });
  await cluster.waitFor({ timeout: TIMEOUT });
  await wait(page, () => !document.querySelector('.tracker-body[data-tracker="bus-42"]'));
  await cluster.click();
  await wait(page, readableApart, BUSES);

  // Picking bus-43 in the list zooms to it and follows it as it moves.
  await page.click('#trackers [data-tracker="bus-43"] button');
  await wait(page, () => !document.getElementById("following").hidden && window.longlatMap.getZoom() >= 16);
  const moved = [18.0686 + 2 * KM_LON, 59.3293];
  await post(server.url, { longitude: moved[0], latitude: moved[1], tracker: "bus-43" });
  await wait(page, ([lon, lat]) => {
    const c = window.longlatMap.getCenter();
    return Math.abs(c.lng - lon) < 1e-4 && Math.abs(c.lat - lat) < 1e-4;
  }, moved).catch(async () => {
    const center = await page.evaluate(() => window.longlatMap.getCenter());
    throw new Error(`following bus-43, the map stays at ${JSON.stringify(center)}, not at ${moved}`);
  });

  // Its trail replays: four positions, from the first to the last.
  await wait(page, () => document.getElementById("replay-tracker").textContent.includes("bus-43"));
  await page.click("#replay-play");
  await wait(page, () => /replayed 4 positions/.test(document.getElementById("replay-status").textContent))
    .catch(async () => { throw new Error(`the replay says ${await page.textContent("#replay-status")}`); });
  check(await page.$(".replay-dot") !== null, "no replay marker on the map");
});
