// Speaks to a WebSocket with a raw `ws` socket, to break the GraphQL
// protocol on purpose where the reference client never would, or to close
// with a code of its own:
//   node ws-raw.mjs <ws-url> <subprotocol> <step>...
// Each step in order: a message to send, "wait" to wait for the next frame,
// or "close:<code>" to close with that code (and reason "bye"). Prints every
// received frame as {"message":..} and the close as
// {"closed":{"code":..,"reason":..,"wasClean":..}}, then exits.
import WebSocket from 'ws';

const [url, subprotocol, ...script] = process.argv.slice(2);
const print = (line) => process.stdout.write(JSON.stringify(line) + '\n');
const socket = new WebSocket(url, subprotocol === '-' ? [] : [subprotocol]);
let waiting = null;

const sendUntilWait = () => {
  while (script.length > 0) {
    const next = script.shift();
    if (next === 'wait') {
      waiting = true;
      return;
    }
    const close = /^close:(\d+)$/.exec(next);
    if (close) {
      socket.close(Number(close[1]), 'bye');
    } else {
      socket.send(next);
    }
  }
};

socket.on('open', sendUntilWait);
socket.on('message', (data) => {
  print({ message: JSON.parse(data.toString()) });
  if (waiting) {
    waiting = null;
    sendUntilWait();
  }
});
// The event form, for `wasClean`: whether the close handshake completed.
socket.addEventListener('close', ({ code, reason, wasClean }) => {
  print({ closed: { code, reason, wasClean } });
  process.exit(0);
});
socket.on('error', (error) => {
  print({ failed: String(error.message) });
  process.exit(1);
});
