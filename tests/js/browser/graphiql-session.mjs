// What a person does in GraphiQL, at any screen size: wait for the schema,
// run the default subscription, publish with curl until a position shows.
import { check, curl } from "./harness.mjs";

/** GraphiQL at /graphql once its schema has loaded. */
export async function openGraphiql(page, base) {
  await page.goto(`${base}/graphql`);
  await page.locator(".graphiql-sidebar [aria-label='Show Documentation Explorer']:not([disabled])").waitFor();
}

/** Runs the default subscription and checks a position posted with curl reaches the result pane. */
export async function subscribeAndSeeAPosition(page, port) {
  const editor = await page.locator(".graphiql-query-editor").innerText();
  check(editor.includes(`127.0.0.1:${port}/longlat`), `the hint names this server: ${editor}`);
  await page.locator(".graphiql-execute-button").click();
  // Before any position, the pane says the subscription is waiting.
  await page.locator(".result-window").filter({ hasText: "waiting for the next position" }).waitFor();
  // The protocol has no "subscribed" answer: post until the first position shows.
  const pane = page.locator(".result-window");
  let shown = false;
  for (let attempt = 0; attempt < 30 && !shown; attempt++) {
    await curl("-H", "Accept: application/json", "-XPOST", "-d",
      '{"longitude": 18.063240, "latitude": 59.334591, "tracker": "graphiql"}', `localhost:${port}/longlat`);
    shown = await pane.filter({ hasText: '"graphiql"' }).waitFor({ timeout: 500 }).then(() => true, () => false);
  }
  check(shown, "no position reached GraphiQL's result pane");
  const result = JSON.parse((await pane.innerText()).replace(/\u00a0/g, " "));
  check(result.data.positions.latitude === 59.334591, `unexpected result ${JSON.stringify(result)}`);
}
