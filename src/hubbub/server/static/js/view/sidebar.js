// The room list (with unread badges) and the presence list of the current room.

import { fillAvatar } from "../format.js";
import { DEFAULT_ROOM } from "../chat.js";
import { roomHref } from "../router.js";

export class RoomList {
  constructor(chat) {
    this.chat = chat;
    this.list = document.getElementById("room-list");
    this.list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-leave]");
      if (button) {
        event.preventDefault();
        this.chat.leave(button.dataset.leave);
      }
    });
    chat.on("rooms", () => this.render());
  }

  render() {
    const focused = document.activeElement;
    const focusKey = focused && this.list.contains(focused)
      ? `${focused.dataset.room ?? ""}|${focused.dataset.leave ?? ""}` : null;
    const items = [...this.chat.rooms.values()].sort((a, b) => {
      if (a.name === DEFAULT_ROOM) return -1;
      if (b.name === DEFAULT_ROOM) return 1;
      return a.name.localeCompare(b.name);
    });
    this.list.replaceChildren(...items.map((room) => this.item(room)));
    if (focusKey) {
      for (const el of this.list.querySelectorAll("a, button")) {
        if (`${el.dataset.room ?? ""}|${el.dataset.leave ?? ""}` === focusKey) el.focus();
      }
    }
    const unread = items.reduce((sum, room) => sum + room.unread, 0);
    document.title = `${unread ? `(${unread}) ` : ""}#${this.chat.current} · hubbub`;
  }

  item(room) {
    const li = document.createElement("li");
    li.className = "room-item";
    const current = room.name === this.chat.current;
    if (current) li.classList.add("current");
    if (room.unread) li.classList.add("has-unread");
    const link = document.createElement("a");
    link.className = "room-link";
    link.href = roomHref(room.name);
    link.dataset.room = room.name;
    if (current) link.setAttribute("aria-current", "page");
    const hash = document.createElement("span");
    hash.className = "hash";
    hash.setAttribute("aria-hidden", "true");
    hash.textContent = "#";
    const name = document.createElement("span");
    name.className = "room-link-name";
    name.textContent = room.name;
    link.append(hash, name);
    if (room.unread) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = room.unread > 99 ? "99+" : String(room.unread);
      const sr = document.createElement("span");
      sr.className = "sr-only";
      sr.textContent = room.unread === 1 ? " unread message" : " unread messages";
      badge.append(sr);
      link.append(badge);
    }
    li.append(link);
    if (room.name !== DEFAULT_ROOM) {
      const leave = document.createElement("button");
      leave.type = "button";
      leave.className = "icon-button leave";
      leave.dataset.leave = room.name;
      leave.setAttribute("aria-label", `Leave #${room.name}`);
      leave.title = "Leave room";
      leave.textContent = "×";
      li.append(leave);
    }
    return li;
  }
}

export class MemberList {
  constructor(chat) {
    this.chat = chat;
    this.list = document.getElementById("member-list");
    this.count = document.getElementById("people-count");
    chat.on("members", (room) => {
      if (room === this.chat.current) this.render();
    });
    chat.on("rooms", () => this.render());
  }

  render() {
    const room = this.chat.rooms.get(this.chat.current);
    const members = room ? [...room.members] : [];
    // One entry per person the reader can tell apart: several tabs of one nick show once.
    const byNick = new Map();
    for (const [id, nick] of members) {
      const me = this.chat.myIds.has(id);
      const entry = byNick.get(nick) || { nick, me: false, count: 0 };
      entry.me ||= me;
      entry.count += 1;
      byNick.set(nick, entry);
    }
    const people = [...byNick.values()].sort((a, b) =>
      a.me === b.me ? a.nick.localeCompare(b.nick) : a.me ? -1 : 1);
    this.count.textContent = String(people.length);
    this.list.replaceChildren(...people.map((person) => {
      const li = document.createElement("li");
      li.className = "member";
      const avatar = document.createElement("span");
      avatar.className = "avatar avatar-sm";
      avatar.setAttribute("aria-hidden", "true");
      fillAvatar(avatar, person.nick);
      const presence = document.createElement("span");
      presence.className = "presence-dot";
      presence.setAttribute("aria-hidden", "true");
      avatar.append(presence);
      const name = document.createElement("span");
      name.className = "member-nick";
      name.textContent = person.nick;
      li.append(avatar, name);
      if (person.me) {
        const you = document.createElement("span");
        you.className = "tag tag-you";
        you.textContent = "you";
        li.append(you);
      }
      return li;
    }));
  }
}
