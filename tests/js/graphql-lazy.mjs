// The graphql-ws reference client in lazy mode (Apollo's GraphQLWsLink): the
// socket closes when its last operation ends, and the next operation opens
// a new one. Runs a subscription until its first item, ends it, and at once
// runs a query, with no retries to hide a failed reconnect:
//   node graphql-lazy.mjs <ws-url> <subscription> <variables-json> <query>
// Lines: {"next":<payload>} for the subscription's first item,
// {"closed":{"code":..,"wasClean":..}} for each socket that closes, and
// {"query":<payload>} or {"error":..} for the query; then it exits.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, subscription, variables, query] = process.argv.slice(2);
const print = (line) => process.stdout.write(JSON.stringify(line) + '\n');

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  lazy: true,
  retryAttempts: 0,
  on: { closed: ({ code, wasClean }) => print({ closed: { code, wasClean } }) },
});

const runQuery = () =>
  client.subscribe(
    { query },
    {
      next: (payload) => print({ query: payload }),
      error: (error) => {
        print({ error: String(error?.message ?? error?.code ?? error) });
        process.exit(1);
      },
      complete: () => process.exit(0),
    },
  );

const end = client.subscribe(
  { query: subscription, variables: JSON.parse(variables) },
  {
    next: (payload) => {
      print({ next: payload });
      end();
      // In a later turn, as an application would: the socket is closing.
      setImmediate(runQuery);
    },
    error: (error) => print({ error: String(error?.message ?? error?.code ?? error) }),
    complete: () => {},
  },
);
