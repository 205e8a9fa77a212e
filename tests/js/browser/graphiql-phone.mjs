// GraphiQL on a phone (375 px): the query editor, the run button and the
// results all on screen, large enough to use, nothing wider than the
// screen; a tap on run subscribes, and a position posted with curl shows.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ARTIFACTS, check, freePort, launch, offlineOnly, run, startServer } from "./harness.mjs";
import { openGraphiql, subscribeAndSeeAPosition } from "./graphiql-session.mjs";

const [WIDTH, HEIGHT] = [375, 667];

/** Where `selector` is on screen, or null when it is not shown. */
const box = (page, selector) => page.locator(selector).first().boundingBox();

await run(async (cleanup) => {
  const port = await freePort();
  const server = await startServer(port);
  cleanup.push(server.stop);
  const browser = await launch();
  cleanup.push(() => browser.close());
  const context = await browser.newContext({ viewport: { width: WIDTH, height: HEIGHT }, isMobile: true, hasTouch: true });
  await offlineOnly(context);
  const page = await context.newPage();
  await openGraphiql(page, server.url);

  const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  check(scrollWidth <= WIDTH, `the page is ${scrollWidth} px wide on a ${WIDTH} px screen`);
  for (const [name, selector, minWidth, minHeight] of [
    ["the query editor", ".graphiql-query-editor", 280, 150],
    ["the run button", ".graphiql-execute-button", 32, 32],
    ["the results", ".graphiql-response .result-window", 280, 150],
  ]) {
    const at = await box(page, selector);
    check(at, `${name} is not shown`);
    const inside = at.x >= 0 && at.y >= 0 && at.x + at.width <= WIDTH && at.y + at.height <= HEIGHT;
    check(inside, `${name} is not within the screen: ${JSON.stringify(at)}`);
    check(at.width >= minWidth && at.height >= minHeight, `${name} is too small to use: ${JSON.stringify(at)}`);
  }
  await subscribeAndSeeAPosition(page, port);
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, "graphiql-phone-375.png") });
});
