// The page's live streams: each one filter on /ws, or on /events once
// WebSockets prove blocked, kept open and resumed after its last event id.
// Every stream of the page shares the one transport decision, so a page
// that found WebSockets blocked does not try them again for its next stream.

/** Where the page came from (or the tutorial's address, opened from a file). */
export const origin = location.protocol.startsWith("http") ? location.host : "localhost:8844";
const secure = location.protocol === "https:";

/** The page's transport: `ws` until WebSockets fail to deliver, then `sse`. */
export const transport = { kind: "ws", wsDelivered: false };

/**
 * One live stream. `handlers`: `filter` (query parameters, `""` for every
 * position), `sseEvents` (the SSE event names it carries), `cursor()` (the
 * id to resume after, or null), `onOpen()`, `onEvent(event)`, `onGap(gap)`,
 * `onCut()`.
 */
export class Stream {
  constructor(handlers) {
    Object.assign(this, handlers);
    this.backoff = 500;
    this.wsFailures = 0;
  }

  /** Connects over the page's transport. */
  open() {
    if (transport.kind === "sse") this.openSse();
    else this.openWs();
  }

  url(scheme, path) {
    const params = new URLSearchParams(this.filter);
    const after = this.cursor();
    if (after) params.set("after", after);
    const query = params.toString();
    return scheme + origin + path + (query ? "?" + query : "");
  }

  opened() {
    this.backoff = 500;
    this.onOpen();
  }

  frame(text) {
    const message = JSON.parse(text);
    if (message.type === "gap") this.onGap(message); else this.onEvent(message);
  }

  openWs() {
    const socket = new WebSocket(this.url(secure ? "wss://" : "ws://", "/ws"));
    socket.onopen = () => this.opened();
    socket.onmessage = (message) => { transport.wsDelivered = true; this.frame(message.data); };
    socket.onclose = () => {
      // WebSockets that never deliver anything (refused, or cut at once by a
      // proxy) twice in a row: use Server-Sent Events instead.
      if (!transport.wsDelivered && ++this.wsFailures >= 2) {
        this.openSse();
        return;
      }
      this.onCut();
      setTimeout(() => this.open(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 5000);
    };
  }

  openSse() {
    transport.kind = "sse";
    const source = new EventSource(this.url(secure ? "https://" : "http://", "/events"));
    source.onopen = () => this.opened();
    for (const name of this.sseEvents) source.addEventListener(name, (message) => this.frame(message.data));
    source.addEventListener("gap", (message) => this.onGap(JSON.parse(message.data)));
    // EventSource reconnects by itself and sends Last-Event-ID.
    source.onerror = () => this.onCut();
  }
}
