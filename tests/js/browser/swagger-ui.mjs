// Swagger UI renders offline, and "Try it out" on POST /longlat publishes for real.
import { check, freePort, launch, offlineOnly, run, screenshots, startServer, TIMEOUT } from "./harness.mjs";

await run(async (cleanup) => {
  const server = await startServer(await freePort());
  cleanup.push(server.stop);
  const browser = await launch();
  cleanup.push(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await offlineOnly(context);
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  await page.goto(`${server.url}/docs/`);
  const operation = page.locator("#operations-positions-publish");
  await operation.locator(".opblock-summary").click();
  await operation.getByRole("button", { name: "Try it out" }).click();
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/longlat") && r.request().method() === "POST"),
    operation.getByRole("button", { name: "Execute" }).click(),
  ]);
  check(response.status() === 201, `Try it out got ${response.status()}`);
  const event = await response.json();
  const stored = await (await fetch(`${server.url}/longlat/${event.id}`)).json();
  check(stored.latitude === 59.334591 && stored.longitude === 18.06324, "the example position was published");
  await operation.locator(".live-responses-table .response-col_status", { hasText: "201" }).first().waitFor();
  await screenshots(page, "swagger-ui");
});
