// GraphiQL, served offline by longlat, runs a `positions` subscription and
// shows a position posted with curl.
import { freePort, launch, offlineOnly, run, screenshots, startServer } from "./harness.mjs";
import { openGraphiql, subscribeAndSeeAPosition } from "./graphiql-session.mjs";

await run(async (cleanup) => {
  const port = await freePort();
  const server = await startServer(port);
  cleanup.push(server.stop);
  const browser = await launch();
  cleanup.push(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await offlineOnly(context);
  const page = await context.newPage();
  await openGraphiql(page, server.url);
  await subscribeAndSeeAPosition(page, port);
  await screenshots(page, "graphiql");
});
