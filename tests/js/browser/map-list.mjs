// Forty trackers: the list scrolls to the last of them, the filter narrows
// it, a row zooms to its tracker; on a phone the page fits the screen's
// width and the labels stay readable.
import { TIMEOUT, check, freePort, openPage, post, run, screenshots, startServer } from "./harness.mjs";

const wait = (page, fn, arg) => page.waitForFunction(fn, arg, { timeout: TIMEOUT });

/** In the page: whether `selector`'s element is visible within the tracker list, not clipped. */
function visibleInList(selector) {
  const list = document.getElementById("trackers").getBoundingClientRect();
  const row = document.querySelector(selector).getBoundingClientRect();
  const hit = document.elementFromPoint(row.left + row.width / 2, row.top + row.height / 2);
  return row.top >= list.top && row.bottom <= list.bottom + 1 && hit !== null && hit.closest(selector) !== null;
}

await run(async (cleanup) => {
  const server = await startServer(await freePort());
  cleanup.push(() => server.stop());
  for (let n = 1; n <= 40; n++) {
    await post(server.url, { longitude: 17.9 + (n % 8) * 0.05, latitude: 59.25 + Math.floor(n / 8) * 0.03, tracker: `van-${n}` });
  }

  const page = await openPage(cleanup, `${server.url}/map`);
  await wait(page, () => document.querySelectorAll("#trackers li[data-tracker]").length === 40);
  await wait(page, () => document.getElementById("map").dataset.outline === "loaded");

  // More trackers than fit: the list scrolls, and the last one can be reached.
  const [scrollHeight, clientHeight] = await page.$eval("#trackers", (l) => [l.scrollHeight, l.clientHeight]);
  check(scrollHeight > clientHeight, `the list does not scroll (${scrollHeight} <= ${clientHeight})`);
  check(clientHeight >= 300, `the desktop list is only ${clientHeight} px high`);
  const last = '#trackers [data-tracker="van-40"]';
  check(!(await page.evaluate(visibleInList, last)), "van-40 is in view before scrolling: nothing to prove");
  await page.locator(last).scrollIntoViewIfNeeded();
  check(await page.evaluate(visibleInList, last), "van-40 cannot be scrolled into view");

  // The filter narrows the list; a row zooms to its tracker.
  await page.fill("#filter", "van-3");
  const shown = await page.$$eval("#trackers li:not([hidden])", (rows) => rows.map((r) => r.dataset.tracker));
  check(shown.length === 11 && shown.every((name) => name.startsWith("van-3")), `"van-3" shows ${shown.join(", ")}`);
  await page.click('#trackers [data-tracker="van-37"] button');
  await wait(page, () => window.longlatMap.getZoom() >= 16 &&
    document.getElementById("following").textContent.includes("van-37"));
  await page.fill("#filter", "");
  await wait(page, () => document.querySelectorAll("#trackers li:not([hidden])").length === 40);

  // A phone: nothing wider than the screen, labels readable, map and list usable.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.evaluate(() => { window.longlatMap.invalidateSize(); window.longlatMap.setView([59.3, 18.05], 11, { animate: false }); });
  await wait(page, () => document.querySelectorAll(".tracker-body").length > 0);
  const phone = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth,
    map: document.getElementById("map").getBoundingClientRect().toJSON(),
    list: document.getElementById("trackers").clientHeight,
    labels: [...document.querySelectorAll(".tracker .label")].map((l) => l.getBoundingClientRect().height),
    fonts: [...document.querySelectorAll(".tracker .label")].map((l) => parseFloat(getComputedStyle(l).fontSize)),
  }));
  check(phone.scrollWidth <= phone.innerWidth, `the phone page is ${phone.scrollWidth} px wide on a ${phone.innerWidth} px screen`);
  check(phone.map.width >= 360 && phone.map.height >= 300, `the phone map is ${phone.map.width}x${phone.map.height}`);
  check(phone.list >= 150, `the phone list is ${phone.list} px high`);
  check(phone.fonts.every((size) => size >= 12) && phone.labels.every((h) => h >= 12),
    `phone labels are ${phone.fonts.join(", ")} px`);
  await screenshots(page, "map-list");
});
