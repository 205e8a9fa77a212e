// Subscribes with the graphql-ws reference client and prints what it sees,
// one JSON object per line, for the Rust tests to read:
//   node graphql-subscribe.mjs <ws-url> <query> [variables-json] [connection-params-json]
// Lines: {"connected":true}, {"next":<payload>}, {"error":<errors>},
// {"complete":true}, {"closed":{"code":..,"reason":..}}. Exits after the
// operation ends or the socket closes; stops when stdin closes.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, query, variables, connectionParams] = process.argv.slice(2);
const print = (line) => process.stdout.write(JSON.stringify(line) + '\n');

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  retryAttempts: 0,
  lazy: false,
  connectionParams: connectionParams ? JSON.parse(connectionParams) : undefined,
  on: {
    connected: () => print({ connected: true }),
    closed: (event) => {
      print({ closed: { code: event.code, reason: event.reason } });
      process.exit(0);
    },
  },
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();

client.subscribe(
  { query, variables: variables ? JSON.parse(variables) : undefined },
  {
    next: (payload) => print({ next: payload }),
    error: (error) => print({ error: Array.isArray(error) ? error : String(error?.message ?? error) }),
    complete: () => print({ complete: true }),
  },
);
