// The page at `/` opened after positions exist: it shows the latest one at
// once (not "–"), says how to publish to this very server, links to the
// other pages, goes on live, and fits a phone.
import { check, curl, freePort, launch, offlineOnly, post, run, screenshots, startServer, TIMEOUT } from "./harness.mjs";

const wait = (page, fn, arg) => page.waitForFunction(fn, arg, { timeout: TIMEOUT });

await run(async (cleanup) => {
  const port = await freePort();
  const server = await startServer(port);
  cleanup.push(server.stop);
  await post(server.url, { longitude: 11.1, latitude: 22.2 });
  const latest = await post(server.url, { longitude: 18.063240, latitude: 59.334591 });

  const browser = await launch();
  cleanup.push(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  await offlineOnly(context);
  const page = await context.newPage();
  await page.goto(`${server.url}/`);
  await wait(page, () => document.getElementById("status").textContent === "connected");
  const shown = await page.evaluate(() => [
    document.getElementById("latitude").textContent,
    document.getElementById("longitude").textContent,
  ]);
  check(shown[0] === String(latest.latitude) && shown[1] === String(latest.longitude),
    `the latest position is shown on opening: ${shown}`);

  // The curl line names this server's own address; run as shown, it publishes.
  const line = await page.textContent("#curl");
  check(line.includes(`127.0.0.1:${port}/longlat`), `the curl line names this server: ${line}`);
  const body = line.match(/-d '([^']+)'/)[1];
  await curl("-XPOST", "-d", JSON.stringify({ ...JSON.parse(body), latitude: 1.5 }), `127.0.0.1:${port}/longlat`);
  await wait(page, () => document.getElementById("latitude").textContent === "1.5");

  for (const [id, path] of [["to-map", "/map"], ["to-docs", "/docs"], ["to-graphql", "/graphql"]]) {
    const href = await page.getAttribute(`#${id}`, "href");
    check(href === `${server.url}${path}`, `${id} links to ${href}`);
  }
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
  check(overflow <= 0, `the page is ${overflow} px wider than a phone`);
  await screenshots(page, "home-page");
});
