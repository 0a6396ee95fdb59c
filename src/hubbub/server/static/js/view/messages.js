// The message pane: one <li> per message, keyed by offset, inserted in order so that history
// pages, recovery replays and live events can arrive in any interleaving. Consecutive
// messages from one sender within GROUP_WINDOW_MS form a group (only the first shows the
// avatar and name). The pane stays pinned to the bottom unless the reader scrolled away.

import {
  appendLinkified, compactJson, dayKey, dayLabel, fillAvatar, fullTimeLabel, timeLabel,
} from "../format.js";

const GROUP_WINDOW_MS = 5 * 60 * 1000;
const PIN_SLACK_PX = 48;
const LOAD_OLDER_PX = 160;

export class MessagePane {
  constructor(chat) {
    this.chat = chat;
    this.log = document.getElementById("log");
    this.list = document.getElementById("messages");
    this.top = document.getElementById("log-top");
    this.jump = document.getElementById("jump");
    this.pendingList = document.createElement("ol");
    this.pendingList.className = "messages pending-list";
    this.pendingList.setAttribute("aria-label", "Messages being sent");
    this.log.append(this.pendingList);
    this.room = null;
    this.pinned = true;
    this.unseen = 0;
    this.savedScroll = new Map();

    this.log.addEventListener("scroll", () => this.onScroll(), { passive: true });
    this.jump.addEventListener("click", () => {
      this.scrollToBottom();
      document.getElementById("composer-input").focus();
    });
    this.pendingList.addEventListener("click", (event) => this.onPendingClick(event));

    chat.on("messages", (room, added, info) => {
      if (room === this.room) this.insert(added, info.older);
    });
    chat.on("reset", (room) => {
      if (room === this.room) this.show(room);
    });
    chat.on("pending", (room) => {
      if (room === this.room) this.renderPending();
    });
    // Whoever sends a message wants to see it, even if they had scrolled up to read.
    chat.on("sent", (room) => {
      if (room === this.room) this.scrollToBottom();
    });
    // The log shrinks when the composer grows or a phone keyboard opens: stay pinned.
    new ResizeObserver(() => {
      if (this.pinned) this.log.scrollTop = this.log.scrollHeight;
    }).observe(this.log);
    chat.on("loading", (room) => {
      if (room === this.room) this.renderTop();
    });
    chat.on("history", (room) => {
      if (room === this.room) {
        this.renderTop();
        this.maybeLoadOlder();
      }
    });
    chat.on("nick", () => this.refreshOwn());
  }

  // --- whole-room rendering -----------------------------------------------------------------

  show(name) {
    if (this.room && this.room !== name) {
      this.savedScroll.set(this.room, this.pinned ? null : this.log.scrollTop);
    }
    this.room = name;
    const room = this.chat.rooms.get(name);
    // Rebuilding the list must not make screen readers announce the whole backlog.
    this.list.setAttribute("aria-busy", "true");
    this.list.replaceChildren();
    if (room) {
      const sorted = [...room.messages.values()].sort((a, b) => a.offset - b.offset);
      let previous = null;
      const fragment = document.createDocumentFragment();
      for (const message of sorted) {
        const li = this.build(message);
        this.decorate(li, previous);
        fragment.append(li);
        previous = li;
      }
      this.list.append(fragment);
    }
    this.list.removeAttribute("aria-busy");
    this.renderPending();
    this.renderTop();
    this.unseen = 0;
    this.updateJump();
    const saved = this.savedScroll.get(name);
    if (saved === undefined || saved === null) this.scrollToBottom();
    else this.log.scrollTop = saved;
    this.maybeLoadOlder();
  }

  renderTop() {
    const room = this.chat.rooms.get(this.room);
    this.top.replaceChildren();
    if (!room) return;
    if (room.loadingOlder) {
      this.top.append(spinnerLine("Loading earlier messages…"));
    } else if (!room.hasMore && room.joined) {
      const intro = document.createElement("div");
      intro.className = "room-intro";
      const title = document.createElement("p");
      title.className = "room-intro-title";
      title.textContent = `This is the start of #${room.name}`;
      const sub = document.createElement("p");
      sub.className = "room-intro-sub";
      sub.textContent = room.messages.size
        ? "Everything said here is kept in its history."
        : "No messages yet. Say hello!";
      intro.append(title, sub);
      this.top.append(intro);
    }
  }

  // --- incremental updates ------------------------------------------------------------------

  insert(messages, older) {
    if (!messages.length) return;
    this.renderTop();
    const wasPinned = this.isAtBottom();
    const heightBefore = this.log.scrollHeight;
    const topBefore = this.log.scrollTop;
    let newBelow = 0;
    for (const message of [...messages].sort((a, b) => a.offset - b.offset)) {
      if (this.list.querySelector(`li[data-offset="${message.offset}"]`)) continue;
      const li = this.build(message);
      const next = this.findNext(message.offset);
      this.list.insertBefore(li, next);
      this.decorate(li, li.previousElementSibling);
      if (next) this.decorate(next, li);
      if (!next && !older && !li.classList.contains("own")) newBelow += 1;
    }
    if (older || !wasPinned) {
      // Keep what the reader is looking at in place while content grows above it.
      if (older) this.log.scrollTop = topBefore + (this.log.scrollHeight - heightBefore);
      if (!older && newBelow) {
        this.unseen += newBelow;
        this.updateJump();
      }
    } else {
      this.scrollToBottom();
    }
  }

  findNext(offset) {
    // New messages almost always belong at the end, so walk backwards from there.
    let node = this.list.lastElementChild;
    let next = null;
    while (node && Number(node.dataset.offset) > offset) {
      next = node;
      node = node.previousElementSibling;
    }
    return next;
  }

  build(message) {
    const own = this.chat.isOwn(message);
    const li = document.createElement("li");
    li.className = "msg";
    if (own) li.classList.add("own");
    if (message.sender === null || message.sender === undefined) li.classList.add("system");
    li.dataset.offset = String(message.offset);
    li.dataset.ts = String(message.ts);
    li.dataset.group = own ? "me" : `${message.sender ?? "server"}\n${message.from}`;

    const avatar = document.createElement("div");
    avatar.className = "avatar";
    avatar.setAttribute("aria-hidden", "true");
    fillAvatar(avatar, message.from);

    const main = document.createElement("div");
    main.className = "msg-main";
    const head = document.createElement("div");
    head.className = "msg-head";
    const from = document.createElement("span");
    from.className = "msg-from";
    from.textContent = message.from;
    head.append(from);
    if (own) head.append(tag("you", "you"));
    if (message.sender === null || message.sender === undefined) head.append(tag("bot", "app"));
    head.append(timeElement(message.ts, "msg-time"));
    main.append(head);

    if (typeof message.text === "string") {
      const body = document.createElement("div");
      body.className = "msg-body";
      appendLinkified(body, message.text);
      main.append(body);
    }
    if (message.data !== undefined && message.data !== null) {
      const pre = document.createElement("pre");
      pre.className = "msg-data";
      const code = document.createElement("code");
      code.textContent = compactJson(message.data);
      pre.append(code);
      main.append(pre);
    }
    const sideTime = timeElement(message.ts, "msg-side-time");
    sideTime.setAttribute("aria-hidden", "true");
    li.append(avatar, main, sideTime);
    return li;
  }

  /** Set grouping and day-divider classes of `li` given the message shown above it. */
  decorate(li, previous) {
    const ts = Number(li.dataset.ts);
    const newDay = !previous || dayKey(Number(previous.dataset.ts)) !== dayKey(ts);
    const continued = !newDay
      && previous.dataset.group === li.dataset.group
      && ts - Number(previous.dataset.ts) < GROUP_WINDOW_MS;
    li.classList.toggle("continued", continued);
    li.classList.toggle("new-day", newDay);
    let divider = li.querySelector(":scope > .day-divider");
    if (newDay && !divider) {
      divider = document.createElement("div");
      divider.className = "day-divider";
      divider.setAttribute("role", "separator");
      const label = document.createElement("span");
      label.textContent = dayLabel(ts);
      divider.append(label);
      li.prepend(divider);
    } else if (!newDay && divider) {
      divider.remove();
    }
  }

  refreshOwn() {
    if (this.room) this.renderPending();
  }

  // --- pending (sent, not yet confirmed) messages ------------------------------------------

  renderPending() {
    const room = this.chat.rooms.get(this.room);
    const wasPinned = this.isAtBottom();
    this.pendingList.replaceChildren();
    if (!room) return;
    for (const item of room.pending) {
      const li = document.createElement("li");
      li.className = `msg own pending ${item.state}`;
      li.dataset.key = String(item.key);
      const avatar = document.createElement("div");
      avatar.className = "avatar";
      avatar.setAttribute("aria-hidden", "true");
      fillAvatar(avatar, this.chat.nick || "?");
      const main = document.createElement("div");
      main.className = "msg-main";
      const head = document.createElement("div");
      head.className = "msg-head";
      const from = document.createElement("span");
      from.className = "msg-from";
      from.textContent = this.chat.nick || "you";
      head.append(from, tag("you", "you"), timeElement(item.ts, "msg-time"));
      const body = document.createElement("div");
      body.className = "msg-body";
      appendLinkified(body, item.text);
      main.append(head, body);
      const status = document.createElement("div");
      status.className = "msg-status";
      if (item.state === "sending") {
        status.textContent = "Sending…";
      } else {
        status.setAttribute("role", "alert");
        const text = document.createElement("span");
        text.className = "msg-error";
        text.textContent = item.error;
        status.append(text);
        if (item.code !== "message_too_large") status.append(actionButton("Retry", "retry"));
        status.append(actionButton("Discard", "discard"));
      }
      main.append(status);
      li.append(avatar, main);
      this.pendingList.append(li);
    }
    if (wasPinned) this.scrollToBottom();
  }

  onPendingClick(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const key = Number(button.closest("li").dataset.key);
    if (button.dataset.action === "retry") this.chat.retry(this.room, key);
    else this.chat.discard(this.room, key);
    document.getElementById("composer-input").focus();
  }

  // --- scrolling ----------------------------------------------------------------------------

  isAtBottom() {
    const log = this.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight <= PIN_SLACK_PX;
  }

  scrollToBottom() {
    this.log.scrollTop = this.log.scrollHeight;
    this.pinned = true;
    this.unseen = 0;
    this.updateJump();
    this.chat.markRead(this.room);
  }

  onScroll() {
    this.pinned = this.isAtBottom();
    if (this.pinned && this.unseen) {
      this.unseen = 0;
      this.updateJump();
    }
    this.maybeLoadOlder();
  }

  maybeLoadOlder() {
    if (this.log.scrollTop < LOAD_OLDER_PX) this.chat.loadOlder(this.room);
  }

  updateJump() {
    this.jump.hidden = this.unseen === 0;
    if (this.unseen) {
      this.jump.firstChild.textContent = this.unseen === 1
        ? "1 new message " : `${this.unseen} new messages `;
    }
  }
}

function tag(text, kind) {
  const span = document.createElement("span");
  span.className = `tag tag-${kind}`;
  span.textContent = text;
  return span;
}

function timeElement(ts, className) {
  const time = document.createElement("time");
  time.className = className;
  time.dateTime = new Date(ts).toISOString();
  time.title = fullTimeLabel(ts);
  time.textContent = timeLabel(ts);
  return time;
}

function actionButton(label, action) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "link-button";
  button.dataset.action = action;
  button.textContent = label;
  return button;
}

function spinnerLine(text) {
  const p = document.createElement("p");
  p.className = "loading-line";
  const spinner = document.createElement("span");
  spinner.className = "spinner";
  spinner.setAttribute("aria-hidden", "true");
  p.append(spinner, text);
  return p;
}
