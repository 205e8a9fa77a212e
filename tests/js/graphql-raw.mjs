// Speaks to a GraphQL WebSocket with a raw `ws` socket, to break the protocol
// on purpose where the reference client never would:
//   node graphql-raw.mjs <ws-url> <subprotocol> <message-json>...
// Sends each message in order (a message "wait" waits for the next frame
// instead), prints every received frame as {"message":..} and the close as
// {"closed":{"code":..,"reason":..}}, then exits.
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
    socket.send(next);
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
socket.on('close', (code, reason) => {
  print({ closed: { code, reason: reason.toString() } });
  process.exit(0);
});
socket.on('error', (error) => {
  print({ failed: String(error.message) });
  process.exit(1);
});
