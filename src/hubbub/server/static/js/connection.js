// One logical connection to hubbub that survives lost sockets.
//
// It owns the WebSocket, request/reply matching by `ref`, an application-level heartbeat
// and reconnection with exponential backoff and full jitter. It knows nothing about rooms:
// the chat layer re-establishes its state from `onWelcome`, which runs for every new socket.

export const PROTOCOL = "hubbub.v1";

const BACKOFF_BASE_MS = 500;
// A cap keeps a long outage from turning into a wait of many minutes once it is over.
const BACKOFF_MAX_MS = 30_000;
// Longer than any reply should take, even from a server busy writing to disk.
const REPLY_TIMEOUT_MS = 30_000;
// Close codes after which retrying cannot help (see "Close codes" in docs/protocol.md).
const FINAL_CLOSE = new Map([
  [1003, "the server refused a frame this page sent"],
  [1009, "a message was too big for the server"],
  [4001, "the server no longer accepts this session"],
]);

export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  // "Equal jitter": never retry instantly, but spread a crowd of clients over half the window.
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export class Connection {
  /**
   * @param {object} options
   * @param {() => string} options.url  builds the URL for each attempt (the nick may change)
   * @param {(welcome: object) => void} options.onWelcome
   * @param {(frame: object) => void} options.onEvent  frames that answer no pending request
   * @param {(status: object) => void} options.onStatus
   */
  constructor({ url, onWelcome, onEvent, onStatus }) {
    this.url = url;
    this.onWelcome = onWelcome;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.socket = null;
    this.attempt = 0;
    this.nextRef = 1;
    this.pending = new Map();
    this.retryTimer = null;
    this.heartbeatTimer = null;
    this.awaitingPong = false;
    this.ready = false;
    this.status = { state: "idle" };
    window.addEventListener("online", () => {
      if (!this.socket) this.connectNow();
    });
    window.addEventListener("offline", () => {
      // A socket may go on looking open long after the network went away (Chromium does
      // not always report it closed while offline): give it up now, and reconnect, with
      // recovery, once the browser is back online.
      const socket = this.socket;
      if (!socket) {
        this.setStatus({ state: "offline" });
        return;
      }
      this.closed(socket, { code: 1006 });
      if (socket.readyState === WebSocket.OPEN) socket.close();
    });
  }

  setStatus(status) {
    this.status = status;
    this.onStatus(status);
  }

  get connected() {
    return this.ready && this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  connectNow() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.socket) return;
    if (navigator.onLine === false) {
      this.setStatus({ state: "offline" });
      return;
    }
    this.setStatus({ state: this.attempt === 0 ? "connecting" : "reconnecting", retryAt: null });
    let socket;
    try {
      socket = new WebSocket(this.url(), PROTOCOL);
    } catch (err) {
      console.warn("hubbub: cannot open WebSocket", err);
      this.scheduleRetry();
      return;
    }
    this.socket = socket;
    // Events of a socket this page already gave up on (see "offline") are ignored, and such
    // a socket that opens after all is closed at once.
    socket.addEventListener("open", () => {
      if (socket !== this.socket) socket.close();
    });
    socket.addEventListener("message", (event) => {
      if (socket === this.socket) this.receive(event.data);
    });
    socket.addEventListener("close", (event) => this.closed(socket, event));
  }

  receive(raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch (err) {
      console.warn("hubbub: ignoring a frame that is not JSON", err);
      return;
    }
    if (frame === null || typeof frame !== "object") return;
    if (frame.type === "welcome") {
      this.ready = true;
      this.attempt = 0;
      this.startHeartbeat(frame.heartbeat);
      this.setStatus({ state: "connected" });
      this.onWelcome(frame);
      return;
    }
    if (frame.type === "pong") this.awaitingPong = false;
    const ref = frame.ref;
    if (ref !== undefined && this.pending.has(ref)) {
      const resolve = this.pending.get(ref);
      this.pending.delete(ref);
      resolve(frame);
      return;
    }
    this.onEvent(frame);
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.ready = false;
    this.stopHeartbeat();
    // Requests in flight will never be answered by this socket: settle them as errors so
    // callers can mark what they sent as unconfirmed. Nothing is ever left hanging.
    for (const [ref, resolve] of this.pending) {
      resolve({ type: "error", code: "disconnected", reason: "connection lost", ref });
    }
    this.pending.clear();
    const final = FINAL_CLOSE.get(event.code);
    if (final) {
      this.setStatus({ state: "closed", reason: final });
      return;
    }
    this.scheduleRetry();
  }

  scheduleRetry() {
    if (navigator.onLine === false) {
      this.setStatus({ state: "offline" });
      return;
    }
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    const retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => this.connectNow(), delay);
    this.setStatus({ state: "reconnecting", retryAt });
  }

  startHeartbeat(seconds) {
    this.stopHeartbeat();
    const interval = Number(seconds) > 0 ? Number(seconds) * 1000 : 30_000;
    // Browsers answer WebSocket pings but never report a half-open TCP connection; an
    // application ping that goes unanswered for a whole interval is how the page notices.
    this.heartbeatTimer = setInterval(() => {
      if (!this.connected) return;
      if (this.awaitingPong) {
        console.warn("hubbub: no pong within the heartbeat interval, reconnecting");
        this.socket.close(4000, "heartbeat timeout");
        return;
      }
      this.awaitingPong = true;
      this.send({ type: "ping" });
    }, interval);
  }

  stopHeartbeat() {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    this.awaitingPong = false;
  }

  /** Send a frame; returns its `ref`, or null when there is no open connection. */
  send(frame) {
    if (!this.connected) return null;
    const ref = frame.ref ?? this.nextRef++;
    this.socket.send(JSON.stringify({ ...frame, ref }));
    return ref;
  }

  /**
   * Send a request and resolve with its reply, which may be an `error` frame. Never rejects:
   * without a connection it resolves with a synthetic `disconnected` error.
   */
  request(frame) {
    const ref = frame.ref ?? this.nextRef++;
    if (!this.connected) {
      return Promise.resolve({ type: "error", code: "disconnected", reason: "not connected", ref });
    }
    const reply = new Promise((resolve) => {
      // Every request gets exactly one reply; if a server breaks that promise the caller
      // still hears back instead of showing "Sending…" forever.
      const timer = setTimeout(() => {
        if (this.pending.get(ref) !== settle) return;
        this.pending.delete(ref);
        console.warn("hubbub: no reply to request", frame.type, ref);
        resolve({ type: "error", code: "timeout", reason: "the server did not answer", ref });
      }, REPLY_TIMEOUT_MS);
      const settle = (answer) => {
        clearTimeout(timer);
        resolve(answer);
      };
      this.pending.set(ref, settle);
    });
    this.send({ ...frame, ref });
    return reply;
  }
}
