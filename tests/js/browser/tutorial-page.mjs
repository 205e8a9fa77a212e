// The tutorial's page updates in two tabs at once after the tutorial's curl command.
import { curl, freePort, launch, offlineOnly, run, screenshots, startServer, TIMEOUT } from "./harness.mjs";

await run(async (cleanup) => {
  const port = await freePort();
  const server = await startServer(port);
  cleanup.push(server.stop);
  const browser = await launch();
  cleanup.push(() => browser.close());
  const context = await browser.newContext();
  await offlineOnly(context);
  const tabs = [await context.newPage(), await context.newPage()];
  for (const tab of tabs) {
    await tab.goto(`${server.url}/`);
    await tab.waitForFunction(() => document.getElementById("status").textContent === "connected", null, { timeout: TIMEOUT });
  }
  // The command exactly as the tutorial writes it, on this test's port.
  await curl("-H", "Accept: application/json", "-XPOST", "-d", '{"longitude": 18.063240, "latitude": 59.334591}', `localhost:${port}/longlat`);
  for (const tab of tabs) {
    await tab.waitForFunction(() =>
      document.getElementById("latitude").textContent === "59.334591" &&
      document.getElementById("longitude").textContent === "18.06324", null, { timeout: TIMEOUT });
  }
  await screenshots(tabs[0], "tutorial-page");
});
