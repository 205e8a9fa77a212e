// Eight map pages at once over HTTPS, WebSockets blocked as by a proxy: each
// page falls back to Server-Sent Events (EventSource), and over HTTP/2, one
// connection for all of them, every page shows a position posted with curl.
// Over HTTP/1.1 a browser keeps six connections per origin: the seventh
// page's stream would wait.
import { check, freePort, launch, offlineOnly, post, run, screenshots, startServer, TIMEOUT } from "./harness.mjs";

const PAGES = 8;
const wait = (page, fn, arg) => page.waitForFunction(fn, arg, { timeout: TIMEOUT });

await run(async (cleanup) => {
  const port = await freePort();
  const server = await startServer(port);
  cleanup.push(server.stop);
  check(server.url.startsWith("https://"), `the server speaks HTTPS: ${server.url}`);
  const browser = await launch();
  cleanup.push(() => browser.close());
  const context = await browser.newContext();
  await offlineOnly(context);
  await context.routeWebSocket(/\/ws/, (ws) => ws.close({ code: 1013, reason: "blocked by a proxy" }));

  const pages = [];
  for (let i = 0; i < PAGES; i++) {
    const page = await context.newPage();
    page.on("pageerror", (err) => { console.error(`page error: ${err.message}`); process.exitCode = 1; });
    await page.goto(`${server.url}/map`);
    pages.push(page);
  }
  for (const page of pages) {
    await wait(page, () => document.getElementById("status").dataset.state === "live");
    const status = await page.$eval("#status", (el) => el.textContent);
    check(status.includes("sse"), `the page streams over Server-Sent Events: ${status}`);
    const protocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
    check(protocol === "h2", `the page came over HTTP/2: ${protocol}`);
  }

  const event = await post(server.url, { longitude: 18.06324, latitude: 59.334591, tracker: "ferry-1" });
  for (const page of pages) {
    await wait(page, (id) => document.getElementById("latest").textContent.includes(id), event.id);
    await wait(page, () => document.querySelector('.tracker-body[data-tracker="ferry-1"] .dot'));
  }
  await screenshots(pages[PAGES - 1], "sse-pages-https");
});
