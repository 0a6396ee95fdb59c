// Rooms, messages, members and pending sends: the page's model of the conversation, kept
// consistent with the server across reconnects. No DOM here; views subscribe to changes.
//
// Invariants:
// - `room.messages` holds at most one message per offset (dedupe by room + offset), so a
//   message replayed by recovery, a history page and a live event can all arrive without
//   showing twice.
// - `room.position` is the highest offset this page has accounted for in that room, either
//   received or covered by history: it is what a reconnect sends as `since`.

import { isValidNick, isValidRoom } from "./names.js";
import { load, save } from "./storage.js";

export const DEFAULT_ROOM = "lobby";
const HISTORY_PAGE = 50;
// Bounds memory in a long-lived tab: older messages are dropped and can be paged in again.
const MAX_MESSAGES_PER_ROOM = 1000;
// Connection ids from earlier visits, so "your" messages stay marked after a reload.
const MAX_REMEMBERED_IDS = 200;

function newRoom(name) {
  return {
    name,
    joined: false,
    epoch: null,
    position: null,
    messages: new Map(),
    oldest: null,
    hasMore: false,
    // Whether the latest history page ever arrived: a drop between `joined` and its
    // `history_page` must not leave the room looking empty after recovery.
    historyLoaded: false,
    loadingOlder: false,
    members: new Map(),
    unread: 0,
    pending: [],
  };
}

export class Chat {
  constructor(connection) {
    this.conn = connection;
    this.listeners = new Map();
    // Stored values are input like any other: another version of the page, an extension or
    // a curious user may have left anything there.
    const nick = load("nick", null);
    this.nick = isValidNick(nick) ? nick : null;
    const ids = load("ids", []);
    this.myIds = new Set(Array.isArray(ids) ? ids.filter((id) => typeof id === "string") : []);
    this.currentId = null;
    this.limits = { max_text_bytes: 8192, history_page_max: 100 };
    this.rooms = new Map();
    this.acked = new Set();
    this.nextLocal = 1;
    const stored = load("rooms", [DEFAULT_ROOM]);
    for (const name of Array.isArray(stored) ? stored : []) {
      if (isValidRoom(name)) this.rooms.set(name, newRoom(name));
    }
    if (!this.rooms.has(DEFAULT_ROOM)) this.rooms.set(DEFAULT_ROOM, newRoom(DEFAULT_ROOM));
    this.current = DEFAULT_ROOM;
  }

  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, []);
    this.listeners.get(event).push(fn);
  }

  emit(event, ...args) {
    for (const fn of this.listeners.get(event) || []) {
      try {
        fn(...args);
      } catch (err) {
        console.error("hubbub: view failed on", event, err);
      }
    }
  }

  persistRooms() {
    save("rooms", [...this.rooms.keys()]);
  }

  isOwn(message) {
    return message.sender !== null && message.sender !== undefined && this.myIds.has(message.sender);
  }

  // --- connection lifecycle -------------------------------------------------------------

  welcome(frame) {
    this.currentId = frame.id;
    this.myIds.add(frame.id);
    save("ids", [...this.myIds].slice(-MAX_REMEMBERED_IDS));
    this.nick = frame.nick;
    if (frame.limits) this.limits = { ...this.limits, ...frame.limits };
    for (const room of this.rooms.values()) {
      room.joined = false;
      room.members.clear();
    }
    this.emit("nick", this.nick);
    this.emit("limits", this.limits);
    this.rejoinAll();
  }

  async rejoinAll() {
    const specs = [...this.rooms.values()].map((room) =>
      room.position ? { room: room.name, since: room.position } : room.name,
    );
    const reply = await this.conn.request({ type: "join", rooms: specs });
    if (reply.type !== "joined") {
      if (reply.code !== "disconnected") {
        console.error("hubbub: rejoining rooms failed", reply);
        this.emit("notice", this.current, `Could not rejoin your rooms: ${reply.reason}`);
      }
      return;
    }
    for (const entry of reply.rooms) this.applyJoined(entry);
    this.emit("rooms");
  }

  applyJoined(entry) {
    const room = this.rooms.get(entry.room);
    if (!room) return;
    const hadPosition = room.position !== null;
    room.joined = true;
    room.members = new Map((entry.members || []).map((m) => [m.id, m.nick]));
    this.emit("members", room.name);
    if (hadPosition && entry.recovered === false) {
      // The server could not replay what we missed: start the room over from its history.
      console.warn("hubbub: recovery failed for", entry.room, entry.reason);
      room.messages.clear();
      room.oldest = null;
      room.hasMore = false;
      room.historyLoaded = false;
      room.epoch = entry.epoch;
      room.position = { offset: entry.offset, epoch: entry.epoch };
      this.emit("reset", room.name);
      this.emit(
        "notice",
        room.name,
        entry.reason === "epoch_changed"
          ? "The history of this room was reset on the server. Some messages may be missing."
          : "You were away too long to catch up. Some messages may have been missed.",
      );
      this.loadLatest(room, entry.offset);
      return;
    }
    room.epoch = entry.epoch;
    if (!hadPosition) {
      // Everything up to entry.offset comes from history; everything after arrives live.
      room.position = { offset: entry.offset, epoch: entry.epoch };
      this.loadLatest(room, entry.offset);
    } else if (!room.historyLoaded) {
      this.loadLatest(room, room.position.offset);
    }
    // With `recovered: true` the server now replays every message after `since` as events.
  }

  // --- history ----------------------------------------------------------------------------

  async loadLatest(room, offset) {
    if (offset <= 0) {
      room.hasMore = false;
      room.historyLoaded = true;
      this.emit("history", room.name, { older: false });
      return;
    }
    await this.loadPage(room, offset + 1, false);
  }

  async loadOlder(name) {
    const room = this.rooms.get(name);
    if (!room || room.loadingOlder || !room.hasMore || room.oldest === null) return;
    await this.loadPage(room, room.oldest, true);
  }

  async loadPage(room, before, older) {
    room.loadingOlder = true;
    this.emit("loading", room.name, true);
    const limit = Math.min(HISTORY_PAGE, this.limits.history_page_max || HISTORY_PAGE);
    const reply = await this.conn.request({ type: "history", room: room.name, before, limit });
    room.loadingOlder = false;
    this.emit("loading", room.name, false);
    if (reply.type === "error") {
      if (reply.code === "room_not_found") {
        room.hasMore = false;
        room.historyLoaded = true;
      } else if (reply.code !== "disconnected") {
        console.error("hubbub: history request failed", reply);
        this.emit("notice", room.name, `Could not load history: ${reply.reason}`);
      }
      return;
    }
    if (this.rooms.get(room.name) !== room) return;
    const added = reply.messages.filter((m) => this.store(room, m));
    room.hasMore = Boolean(reply.has_more);
    room.historyLoaded = true;
    this.emit("messages", room.name, added, { older });
    this.emit("history", room.name, { older });
  }

  // --- incoming events --------------------------------------------------------------------

  /** Record one message; false when it was already known (dedupe by room + offset). */
  store(room, message) {
    if (typeof message.offset !== "number" || room.messages.has(message.offset)) return false;
    room.messages.set(message.offset, message);
    if (room.oldest === null || message.offset < room.oldest) room.oldest = message.offset;
    if (room.position === null || message.offset > room.position.offset) {
      room.position = { offset: message.offset, epoch: message.epoch ?? room.epoch };
    }
    if (room.messages.size > MAX_MESSAGES_PER_ROOM) this.trim(room);
    return true;
  }

  trim(room) {
    const offsets = [...room.messages.keys()].sort((a, b) => a - b);
    for (const offset of offsets.slice(0, offsets.length - MAX_MESSAGES_PER_ROOM)) {
      room.messages.delete(offset);
    }
    room.oldest = offsets[offsets.length - MAX_MESSAGES_PER_ROOM];
    room.hasMore = true;
    this.emit("reset", room.name);
  }

  event(frame) {
    switch (frame.type) {
      case "message":
        return this.onMessage(frame);
      case "presence":
        return this.onPresence(frame);
      case "reset":
        return this.onReset(frame);
      case "error":
        console.warn("hubbub: server error without a pending request", frame);
        return this.emit("notice", this.current, `Server error: ${frame.reason}`);
      default:
        return undefined;
    }
  }

  onMessage(message) {
    const room = this.rooms.get(message.room);
    if (!room || !this.store(room, message)) return;
    const own = this.isOwn(message);
    if (own && !this.acked.has(`${room.name}\n${message.offset}`)) this.settlePending(room, message);
    if (!own && (room.name !== this.current || document.hidden)) {
      room.unread += 1;
      this.emit("rooms");
    }
    this.emit("messages", room.name, [message], { older: false });
  }

  // The server lost the room's history (its broker lost the data): what this page holds of
  // the room belongs to an epoch that is gone. Drop it and join again without `since`, which
  // loads what the new epoch has, as a first visit would.
  async onReset(frame) {
    const room = this.rooms.get(frame.room);
    if (!room) return;
    console.warn("hubbub: the history of", room.name, "was reset", frame.reason);
    room.messages.clear();
    room.oldest = null;
    room.hasMore = false;
    room.historyLoaded = false;
    room.epoch = null;
    room.position = null;
    this.emit("reset", room.name);
    this.emit("notice", room.name, `The history of #${room.name} was reset on the server.`);
    const reply = await this.conn.request({ type: "join", rooms: [room.name] });
    if (reply.type !== "joined") {
      // Disconnected: the reconnection's join has no `since` for this room either.
      if (reply.code !== "disconnected") console.error("hubbub: rejoining after a reset failed", reply);
      return;
    }
    if (this.rooms.get(room.name) !== room) return;
    for (const entry of reply.rooms) this.applyJoined(entry);
  }

  onPresence(frame) {
    const room = this.rooms.get(frame.room);
    if (!room || !frame.member) return;
    if (frame.event === "leave") room.members.delete(frame.member.id);
    else room.members.set(frame.member.id, frame.member.nick);
    this.emit("members", room.name);
  }

  // --- rooms ------------------------------------------------------------------------------

  select(name) {
    this.current = name;
    const room = this.rooms.get(name);
    if (room && room.unread) room.unread = 0;
    this.emit("rooms");
  }

  markRead(name) {
    const room = this.rooms.get(name);
    if (room && room.unread) {
      room.unread = 0;
      this.emit("rooms");
    }
  }

  /** Join a room the page is not in yet; resolves with null or an error frame. */
  async join(name) {
    if (this.rooms.has(name)) return null;
    if (!this.conn.connected) {
      // Joined with the others when the connection comes back.
      this.rooms.set(name, newRoom(name));
      this.persistRooms();
      this.emit("rooms");
      return null;
    }
    const reply = await this.conn.request({ type: "join", rooms: [name] });
    if (reply.type !== "joined") return reply;
    if (!this.rooms.has(name)) this.rooms.set(name, newRoom(name));
    this.persistRooms();
    for (const entry of reply.rooms) this.applyJoined(entry);
    this.emit("rooms");
    return null;
  }

  async leave(name) {
    if (!this.rooms.has(name)) return;
    this.rooms.delete(name);
    this.persistRooms();
    this.emit("rooms");
    const reply = await this.conn.request({ type: "leave", rooms: [name] });
    if (reply.type === "error" && reply.code !== "disconnected") {
      console.error("hubbub: leaving failed", reply);
    }
  }

  async listRooms() {
    return this.conn.request({ type: "rooms" });
  }

  // --- nickname ---------------------------------------------------------------------------

  /** Change the nickname; resolves with null or an error frame. */
  async setNick(nick) {
    if (!this.conn.connected) {
      this.nick = nick;
      save("nick", nick);
      this.emit("nick", nick);
      return null;
    }
    const reply = await this.conn.request({ type: "nick", nick });
    if (reply.type !== "nick_set") return reply;
    this.nick = reply.nick;
    save("nick", reply.nick);
    for (const room of this.rooms.values()) {
      if (room.members.has(this.currentId)) room.members.set(this.currentId, reply.nick);
    }
    this.emit("nick", reply.nick);
    this.emit("members", this.current);
    return null;
  }

  // --- publishing -------------------------------------------------------------------------

  publish(roomName, text) {
    const room = this.rooms.get(roomName);
    if (!room) return;
    const item = { key: this.nextLocal++, text, state: "sending", error: null, ts: Date.now() };
    room.pending.push(item);
    this.emit("pending", room.name);
    this.emit("sent", room.name);
    this.sendPending(room, item);
  }

  async sendPending(room, item) {
    item.state = "sending";
    item.error = null;
    const reply = await this.conn.request({ type: "publish", room: room.name, text: item.text });
    if (reply.type === "ack") {
      this.acked.add(`${room.name}\n${reply.offset}`);
      this.dropPending(room, item);
      return;
    }
    if (!room.pending.includes(item)) return;
    item.state = "failed";
    item.error = reply.code === "disconnected"
      ? "Not confirmed: the connection was lost before the server answered."
      : reply.reason || reply.code;
    item.code = reply.code;
    if (reply.code === "timeout") item.error = "Not confirmed: the server did not answer.";
    if (reply.code !== "disconnected") console.warn("hubbub: publish refused", reply);
    this.emit("pending", room.name);
  }

  retry(roomName, key) {
    const room = this.rooms.get(roomName);
    const item = room && room.pending.find((p) => p.key === key);
    if (!item) return;
    this.emit("pending", room.name);
    this.sendPending(room, item);
    this.emit("pending", room.name);
  }

  discard(roomName, key) {
    const room = this.rooms.get(roomName);
    const item = room && room.pending.find((p) => p.key === key);
    if (item) this.dropPending(room, item);
  }

  dropPending(room, item) {
    const index = room.pending.indexOf(item);
    if (index === -1) return;
    room.pending.splice(index, 1);
    this.emit("pending", room.name);
  }

  // The server sends our own message back as an event, possibly before its ack, and after a
  // reconnect possibly only through recovery. The oldest pending copy with the same text is
  // the one it answers: publishes from one connection are stored in the order sent.
  settlePending(room, message) {
    const item = room.pending.find((p) => p.text === message.text);
    if (item) {
      this.acked.add(`${room.name}\n${message.offset}`);
      this.dropPending(room, item);
    }
  }
}
