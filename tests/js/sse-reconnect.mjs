// A real EventSource (the npm `eventsource` package) reading /events through a
// proxy the test can cut, so the client reconnects by itself with
// Last-Event-ID, as a browser does.
// Usage: node sse-reconnect.mjs <base-url> [query]
// stdout: JSON lines {"open":n} | {"event":"position"|"gap","id","data"} | {"cut":true}
// stdin:  "cut" drops the connection; "close" ends the client.
import { createServer, connect } from "node:net";
import { createInterface } from "node:readline";
import { EventSource } from "eventsource";

const target = new URL(process.argv[2]);
const query = process.argv[3] || "";
const sockets = new Set();
const proxy = createServer((client) => {
  const upstream = connect(Number(target.port), target.hostname);
  for (const s of [client, upstream]) {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
  }
  client.pipe(upstream).pipe(client);
});
await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
const print = (value) => process.stdout.write(JSON.stringify(value) + "\n");

let opens = 0;
const source = new EventSource(`http://127.0.0.1:${proxy.address().port}/events${query}`);
source.onopen = () => print({ open: ++opens });
for (const name of ["position", "gap"]) {
  source.addEventListener(name, (e) => print({ event: name, id: e.lastEventId, data: JSON.parse(e.data) }));
}

createInterface({ input: process.stdin }).on("line", (line) => {
  if (line === "cut") {
    for (const s of sockets) s.destroy();
    print({ cut: true });
  } else if (line === "close") {
    source.close();
    proxy.close();
    process.exit(0);
  }
});
