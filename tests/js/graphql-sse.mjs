// Runs one operation with the graphql-sse reference client and prints what
// it sees, one JSON object per line, for the Rust tests to read:
//   node graphql-sse.mjs <url> <query> [variables-json] [distinct|single] [headers-json]
// Lines: {"connected":<reconnected>}, {"next":<payload>}, {"error":<errors>},
// {"complete":true}, {"retrying":<attempt>}.
// The client resumes as a user's would: after each `positions` result it
// sets the variable `after` to that event's id, so a reconnection asks for
// what it missed. It reconnects only when told: on a network error it
// prints {"retrying":n} and waits for a "retry" line on stdin. A "stop"
// line unsubscribes (in single connection mode: DELETE). It exits when
// stdin closes.
import { createClient } from 'graphql-sse';
import { createInterface } from 'node:readline';

const [url, query, variables, mode = 'distinct', headers] = process.argv.slice(2);
const print = (line) => process.stdout.write(JSON.stringify(line) + '\n');

let allowRetry = null;
let unsubscribe = () => {};
const input = createInterface({ input: process.stdin });
input.on('line', (line) => {
  if (line === 'retry' && allowRetry) allowRetry();
  if (line === 'stop') unsubscribe();
});
input.on('close', () => process.exit(0));

const client = createClient({
  url,
  singleConnection: mode === 'single',
  headers: headers ? JSON.parse(headers) : undefined,
  retryAttempts: 5,
  retry: (attempt) =>
    new Promise((resolve) => {
      allowRetry = resolve;
      print({ retrying: attempt });
    }),
  on: { connected: (reconnected) => print({ connected: reconnected }) },
});

const request = { query, variables: variables ? JSON.parse(variables) : {} };
unsubscribe = client.subscribe(request, {
  next: (payload) => {
    const id = payload?.data?.positions?.id;
    if (id) request.variables.after = id;
    print({ next: payload });
  },
  error: (error) =>
    print({ error: Array.isArray(error) ? error : String(error?.message ?? error) }),
  complete: () => print({ complete: true }),
});
