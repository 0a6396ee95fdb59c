// The message box: Enter sends, Shift+Enter breaks the line, a byte counter appears near
// the server's `max_text_bytes` and blocks sending over it. While disconnected sending is
// off but the draft stays (and is kept per room when switching rooms).

import { utf8Length } from "../format.js";

// Show the counter once the text is this close to the limit, not all the time.
const COUNTER_FROM = 0.8;
const MAX_ROWS_PX = 200;

export class Composer {
  constructor(chat, conn) {
    this.chat = chat;
    this.conn = conn;
    this.form = document.getElementById("composer");
    this.input = document.getElementById("composer-input");
    this.label = document.getElementById("composer-label");
    this.button = document.getElementById("send-button");
    this.counter = document.getElementById("composer-counter");
    this.hint = document.getElementById("composer-hint");
    this.drafts = new Map();
    this.room = null;

    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      }
    });
    this.input.addEventListener("input", () => this.update());
    chat.on("limits", () => this.update());
  }

  show(room) {
    if (this.room !== null) this.drafts.set(this.room, this.input.value);
    this.room = room;
    this.input.value = this.drafts.get(room) || "";
    this.input.placeholder = `Message #${room}`;
    this.label.textContent = `Message #${room}`;
    this.update();
  }

  /** Why sending is blocked right now, or null. */
  blocker() {
    const text = this.input.value;
    const max = this.chat.limits.max_text_bytes;
    if (max && utf8Length(text) > max) return "too-long";
    if (!this.conn.connected) return "offline";
    if (!text.trim()) return "empty";
    return null;
  }

  update() {
    this.resize();
    const bytes = utf8Length(this.input.value);
    const max = this.chat.limits.max_text_bytes;
    const over = Boolean(max) && bytes > max;
    if (max && bytes >= max * COUNTER_FROM) {
      this.counter.hidden = false;
      this.counter.textContent = over
        ? `${(bytes - max).toLocaleString()} bytes over the limit of ${max.toLocaleString()}`
        : `${bytes.toLocaleString()} / ${max.toLocaleString()} bytes`;
    } else {
      this.counter.hidden = true;
      this.counter.textContent = "";
    }
    this.counter.classList.toggle("over", over);
    this.input.setAttribute("aria-invalid", over ? "true" : "false");
    const blocker = this.blocker();
    this.button.disabled = blocker !== null;
    this.form.classList.toggle("offline", !this.conn.connected);
    this.hint.classList.toggle("warning", !this.conn.connected);
    if (!this.conn.connected) {
      this.hint.textContent = "Not connected: your message will wait here until you can send it.";
    } else if (!this.hint.querySelector("kbd")) {
      this.hint.replaceChildren(
        kbd("Enter"), " to send, ", kbd("Shift"), "+", kbd("Enter"), " for a new line",
      );
    }
  }

  resize() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, MAX_ROWS_PX)}px`;
  }

  send() {
    if (this.blocker() !== null) {
      this.update();
      return;
    }
    this.chat.publish(this.room, this.input.value);
    this.input.value = "";
    this.drafts.delete(this.room);
    this.update();
    this.input.focus();
  }
}

function kbd(text) {
  const el = document.createElement("kbd");
  el.textContent = text;
  return el;
}
