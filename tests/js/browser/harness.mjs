// What every browser scenario needs: a longlat process it controls, headless
// Chromium, curl, and screenshots at phone and desktop widths.
import { spawn, execFile } from "node:child_process";
import { createServer } from "node:net";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const ARTIFACTS = process.env.LONGLAT_ARTIFACTS || "tests/artifacts";
export const TIMEOUT = 15000;

/** A port nobody listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts the longlat binary on `port` and resolves once it answers. */
export async function startServer(port, args = []) {
  const bin = process.env.LONGLAT_BIN;
  if (!bin) throw new Error("LONGLAT_BIN must name the longlat binary");
  const child = spawn(bin, ["--listen", `127.0.0.1:${port}`, "--log-format", "json", ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise((resolve, reject) => {
    let buffered = "";
    const timer = setTimeout(() => reject(new Error("longlat did not start")), TIMEOUT);
    child.stdout.on("data", (chunk) => {
      buffered += chunk;
      if (buffered.includes("longlat listening")) { clearTimeout(timer); resolve(); }
    });
    child.on("exit", (code) => reject(new Error(`longlat exited with ${code}`)));
  });
  child.stdout.resume();
  // With LONGLAT_TLS_CERT and LONGLAT_TLS_KEY set, the server speaks HTTPS.
  const scheme = process.env.LONGLAT_TLS_CERT ? "https" : "http";
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    stop: () => new Promise((resolve) => { child.once("exit", resolve); child.kill("SIGTERM"); }),
  };
}

/** Runs curl with `args`; resolves with its output. */
export function curl(...args) {
  return new Promise((resolve, reject) => {
    const trust = process.env.LONGLAT_TLS_CERT ? ["--cacert", process.env.LONGLAT_TLS_CERT] : [];
    execFile("curl", ["-s", "--fail-with-body", ...trust, ...args], (err, stdout, stderr) =>
      err ? reject(new Error(`curl ${args.join(" ")}: ${err.message} ${stdout} ${stderr}`)) : resolve(stdout));
  });
}

/** Posts a position with curl and returns the stored event. */
export async function post(base, body) {
  return JSON.parse(await curl("-H", "Content-Type: application/json", "-d", JSON.stringify(body), `${base}/longlat`));
}

/** Headless Chromium from Debian's package, with no background networking. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
      "--no-first-run", "--disable-component-update", "--disable-sync",
      // The HTTPS scenarios' server has a certificate the test made.
      ...(process.env.LONGLAT_TLS_CERT ? ["--ignore-certificate-errors"] : [])],
  });
}

/** Fails the page on any request that leaves this machine. */
export async function offlineOnly(context) {
  await context.route(/^https?:\/\/(?!127\.0\.0\.1|localhost)/, (route) => {
    console.error(`blocked an outside request: ${route.request().url()}`);
    process.exitCode = 1;
    return route.abort();
  });
}

/**
 * A desktop-sized page at `url` in a browser of its own, closed by
 * `cleanup`: offline only, and an error thrown by the page fails the run.
 */
export async function openPage(cleanup, url) {
  const browser = await launch();
  cleanup.push(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await offlineOnly(context);
  const page = await context.newPage();
  page.on("pageerror", (err) => { console.error(`page error: ${err.message}`); process.exitCode = 1; });
  await page.goto(url);
  return page;
}

/** Screenshots of `page` at phone and desktop widths, named `<name>-phone.png`, `<name>-desktop.png`. */
export async function screenshots(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  for (const [label, width, height] of [["phone", 390, 844], ["desktop", 1280, 800]]) {
    await page.setViewportSize({ width, height });
    await page.waitForTimeout(0); // let the layout settle for one task
    await page.screenshot({ path: join(ARTIFACTS, `${name}-${label}.png`), fullPage: true });
  }
}

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Runs `scenario` and exits 0 when it passes, 1 with the reason when it does not. */
export async function run(scenario) {
  const cleanup = [];
  try {
    await scenario(cleanup);
    console.log("passed");
  } catch (err) {
    console.error(err.stack || String(err));
    process.exitCode = 1;
  } finally {
    for (const step of cleanup.reverse()) await step().catch(() => {});
  }
}
