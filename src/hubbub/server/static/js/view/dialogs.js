// The nickname and room dialogs. Both are native <dialog> elements: modal focus trapping,
// Escape to cancel and a top layer come from the browser.

import { isValidNick, isValidRoom, NICK_RULE, ROOM_RULE } from "../names.js";

export class NickDialog {
  constructor(chat) {
    this.chat = chat;
    this.dialog = document.getElementById("nick-dialog");
    this.form = document.getElementById("nick-form");
    this.input = document.getElementById("nick-input");
    this.error = document.getElementById("nick-error");
    this.cancel = document.getElementById("nick-cancel");
    this.lead = document.getElementById("nick-lead");
    this.onChosen = null;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.cancel.addEventListener("click", () => this.close());
    this.dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      this.close();
    });
    this.input.addEventListener("input", () => this.setError(""));
  }

  /** First visit: `onChosen(nick|null)` runs once the reader picks a name or skips. */
  open({ first = false, onChosen = null } = {}) {
    this.onChosen = onChosen;
    this.first = first;
    this.lead.textContent = first
      ? "Welcome! Pick the name others will see. You can change it any time."
      : "This is how others see you.";
    this.cancel.textContent = first ? "Stay a guest" : "Cancel";
    this.input.value = this.chat.nick && !first ? this.chat.nick : "";
    this.setError("");
    this.dialog.showModal();
    this.input.focus();
    this.input.select();
  }

  close() {
    this.dialog.close();
    const chosen = this.onChosen;
    this.onChosen = null;
    if (chosen) chosen(null);
  }

  setError(text) {
    this.error.textContent = text;
    this.input.setAttribute("aria-invalid", text ? "true" : "false");
  }

  async submit() {
    const nick = this.input.value.trim().replace(/\s+/gu, " ");
    if (!isValidNick(nick)) {
      this.setError(NICK_RULE);
      this.input.focus();
      return;
    }
    if (this.onChosen) {
      const chosen = this.onChosen;
      this.onChosen = null;
      this.dialog.close();
      chosen(nick);
      return;
    }
    const error = await this.chat.setNick(nick);
    if (error) {
      this.setError(error.reason || error.code);
      this.input.focus();
      return;
    }
    this.dialog.close();
  }
}

export class RoomDialog {
  constructor(chat, { onJoined }) {
    this.chat = chat;
    this.onJoined = onJoined;
    this.dialog = document.getElementById("room-dialog");
    this.form = document.getElementById("room-form");
    this.input = document.getElementById("room-input");
    this.error = document.getElementById("room-error");
    this.browse = document.getElementById("browse-list");
    this.submitButton = document.getElementById("room-submit");
    document.getElementById("room-cancel").addEventListener("click", () => this.dialog.close());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.join(this.input.value.trim());
    });
    this.input.addEventListener("input", () => this.setError(""));
    this.browse.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-room]");
      if (button) this.join(button.dataset.room);
    });
  }

  open() {
    this.input.value = "";
    this.setError("");
    this.dialog.showModal();
    this.input.focus();
    this.loadRooms();
  }

  setError(text) {
    this.error.textContent = text;
    this.input.setAttribute("aria-invalid", text ? "true" : "false");
  }

  async loadRooms() {
    this.browse.setAttribute("aria-busy", "true");
    this.browse.replaceChildren(note("Loading rooms…"));
    const reply = await this.chat.listRooms();
    this.browse.removeAttribute("aria-busy");
    if (reply.type !== "room_list") {
      this.browse.replaceChildren(note(reply.code === "disconnected"
        ? "Connect to see the active rooms." : `Could not list rooms: ${reply.reason}`));
      return;
    }
    const rooms = [...reply.rooms].sort((a, b) => b.members - a.members || b.offset - a.offset);
    if (!rooms.length) {
      this.browse.replaceChildren(note("No rooms yet: name one above to create it."));
      return;
    }
    this.browse.replaceChildren(...rooms.map((info) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "browse-item";
      button.dataset.room = info.room;
      const name = document.createElement("span");
      name.className = "browse-name";
      name.textContent = `#${info.room}`;
      const meta = document.createElement("span");
      meta.className = "browse-meta";
      const joined = this.chat.rooms.has(info.room) ? " · joined" : "";
      meta.textContent = `${info.members} online · ${info.offset} messages${joined}`;
      button.append(name, meta);
      li.append(button);
      return li;
    }));
  }

  async join(name) {
    if (!isValidRoom(name)) {
      this.setError(name ? ROOM_RULE : "Type a room name.");
      this.input.focus();
      return;
    }
    this.submitButton.disabled = true;
    const error = await this.chat.join(name);
    this.submitButton.disabled = false;
    if (error) {
      this.setError(error.code === "disconnected"
        ? "Not connected: try again when the connection is back."
        : `${error.reason || error.code}`);
      this.input.focus();
      return;
    }
    this.dialog.close();
    this.onJoined(name);
  }
}

function note(text) {
  const li = document.createElement("li");
  li.className = "browse-note";
  li.textContent = text;
  return li;
}
