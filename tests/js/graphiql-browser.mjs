// Opens GraphiQL in headless Chromium, runs its default subscription, posts
// positions until one shows in the result pane, and prints it:
//   node graphiql-browser.mjs <server-url> [chromium]
// Prints {"seen": <the positions item>} on success, {"failed": "..."} otherwise.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

const [base, chromium = 'chromium'] = process.argv.slice(2);
const print = (line) => process.stdout.write(JSON.stringify(line) + '\n');
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const browser = spawn(chromium, [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  `--user-data-dir=${mkdtempSync(join(tmpdir(), 'longlat-chromium-'))}`,
  '--remote-debugging-port=0', 'about:blank',
], { stdio: ['ignore', 'ignore', 'pipe'] });
const fail = (why) => { print({ failed: String(why) }); browser.kill(); process.exit(1); };
process.stdin.on('end', () => { browser.kill(); process.exit(0); });
process.stdin.resume();

// Chromium prints "DevTools listening on ws://127.0.0.1:<port>/…" when ready.
const devtools = await new Promise((resolve) => {
  let seen = '';
  browser.stderr.on('data', (chunk) => {
    seen += chunk;
    const match = seen.match(/DevTools listening on (ws:\/\/[^\s]+)/);
    if (match) resolve(new URL(match[1]));
  });
  browser.on('exit', (code) => fail(`chromium exited (${code}): ${seen}`));
});
const targets = await (await fetch(`http://${devtools.host}/json/list`)).json();
const page = targets.find((target) => target.type === 'page') ?? fail('no page');
const cdp = new WebSocket(page.webSocketDebuggerUrl);
await new Promise((resolve) => cdp.on('open', resolve));
let lastId = 0;
const replies = new Map();
cdp.on('message', (data) => {
  const message = JSON.parse(data);
  replies.get(message.id)?.(message);
});
const call = (method, params = {}) => new Promise((resolve) => {
  const id = ++lastId;
  replies.set(id, resolve);
  cdp.send(JSON.stringify({ id, method, params }));
});
const evaluate = async (expression) =>
  (await call('Runtime.evaluate', { expression, returnByValue: true })).result?.result?.value;
// Polls the page for `expression`, as a person would watch the screen.
const until = async (what, expression) => {
  for (let i = 0; i < 100; i++) {
    const value = await evaluate(expression);
    if (value) return value;
    await pause(100);
  }
  fail(`timed out waiting for ${what}`);
};

await call('Page.navigate', { url: `${base}/graphql` });
await until('the execute button', '!!document.querySelector(".graphiql-execute-button")');
// Run the default subscription once the schema has loaded (the docs button is enabled).
await until('the schema', '!!document.querySelector(".graphiql-sidebar [aria-label=\'Show Documentation Explorer\']:not([disabled])")');
await evaluate('document.querySelector(".graphiql-execute-button").click()');
for (let i = 0; i < 100; i++) {
  const response = await fetch(`${base}/longlat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ longitude: 18.06324, latitude: 59.334591, tracker: 'graphiql' }),
  });
  if (response.status !== 201) fail(`POST /longlat answered ${response.status}`);
  const pane = await evaluate('document.querySelector(".result-window")?.innerText ?? ""');
  if (pane.includes('"graphiql"')) {
    // The editor shows non-breaking spaces.
    print({ seen: JSON.parse(pane.replace(/\u00a0/g, ' ')).data.positions });
    browser.kill();
    process.exit(0);
  }
  await pause(100);
}
fail('no position reached the result pane');
