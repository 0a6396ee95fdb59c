// Entry point: builds the connection, the chat model and the views, and wires the layout.

import { Chat, DEFAULT_ROOM } from "./chat.js";
import { Connection } from "./connection.js";
import { fillAvatar } from "./format.js";
import { isValidRoom } from "./names.js";
import { roomFromHash, roomHref } from "./router.js";
import { Composer } from "./view/composer.js";
import { NickDialog, RoomDialog } from "./view/dialogs.js";
import { MessagePane } from "./view/messages.js";
import { MemberList, RoomList } from "./view/sidebar.js";
import { StatusView } from "./view/status.js";

const WIDE = window.matchMedia("(min-width: 1100px)");

// Relative to the page, so that it works wherever the page is mounted (`/`, or `/chat/`
// inside an application that embeds hubbub).
function socketUrl(nick) {
  const url = new URL("ws", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.hash = "";
  url.search = nick ? `?nick=${encodeURIComponent(nick)}` : "";
  return url.href;
}

function main() {
  const app = document.getElementById("app");
  let chat = null;
  let status = null;
  let composer = null;
  const conn = new Connection({
    url: () => socketUrl(chat.nick),
    onWelcome: (frame) => chat.welcome(frame),
    onEvent: (frame) => chat.event(frame),
    onStatus: (s) => {
      // Presence shown while disconnected is stale: the view dims it.
      app.classList.toggle("disconnected", s.state !== "connected");
      status.render(s);
      composer.update();
    },
  });
  chat = new Chat(conn);
  status = new StatusView(conn);
  composer = new Composer(chat, conn);
  const pane = new MessagePane(chat);
  new RoomList(chat);
  new MemberList(chat);
  const nickDialog = new NickDialog(chat);

  // --- layout: drawer on phones, people panel toggle ----------------------------------------
  const menuButton = document.getElementById("menu-button");
  const peopleButton = document.getElementById("people-button");
  const scrim = document.getElementById("scrim");
  const setNav = (open) => {
    app.classList.toggle("nav-open", open);
    menuButton.setAttribute("aria-expanded", String(open));
  };
  const setMembers = (open) => {
    app.classList.toggle("members-open", open);
    app.classList.toggle("members-closed", !open);
    peopleButton.setAttribute("aria-expanded", String(open));
  };
  setMembers(WIDE.matches);
  WIDE.addEventListener("change", (event) => setMembers(event.matches));
  menuButton.addEventListener("click", () => setNav(!app.classList.contains("nav-open")));
  peopleButton.addEventListener("click", () => setMembers(!app.classList.contains("members-open")));
  scrim.addEventListener("click", () => {
    setNav(false);
    if (!WIDE.matches) setMembers(false);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || document.querySelector("dialog[open]")) return;
    if (app.classList.contains("nav-open")) {
      setNav(false);
      menuButton.focus();
    } else if (!WIDE.matches && app.classList.contains("members-open")) {
      setMembers(false);
      peopleButton.focus();
    }
  });

  // --- notices (history reset, failures) ---------------------------------------------------
  const noticeBar = document.getElementById("notice-bar");
  const noticeText = document.getElementById("notice-text");
  const notices = new Map();
  const showNotice = () => {
    const text = notices.get(chat.current);
    noticeBar.hidden = !text;
    noticeText.textContent = text || "";
  };
  chat.on("notice", (room, text) => {
    notices.set(room, text);
    showNotice();
  });
  document.getElementById("notice-dismiss").addEventListener("click", () => {
    notices.delete(chat.current);
    showNotice();
    document.getElementById("composer-input").focus();
  });

  // --- rooms and routing -------------------------------------------------------------------
  const roomName = document.getElementById("room-name");
  const open = (name) => {
    chat.select(name);
    roomName.textContent = name;
    pane.show(name);
    composer.show(name);
    showNotice();
    setNav(false);
  };
  const route = async () => {
    const wanted = roomFromHash();
    if (wanted === null || !isValidRoom(wanted)) {
      const fallback = chat.rooms.has(chat.current) ? chat.current : DEFAULT_ROOM;
      if (window.location.hash) {
        chat.emit("notice", fallback, `There is no room called “${wanted ?? window.location.hash}”.`);
      }
      window.history.replaceState(null, "", roomHref(fallback));
      open(fallback);
      return;
    }
    if (!chat.rooms.has(wanted)) {
      const error = await chat.join(wanted);
      if (error) {
        chat.emit("notice", DEFAULT_ROOM, `Could not open #${wanted}: ${error.reason || error.code}`);
        window.history.replaceState(null, "", roomHref(DEFAULT_ROOM));
        open(DEFAULT_ROOM);
        return;
      }
    }
    open(wanted);
  };
  window.addEventListener("hashchange", route);
  chat.on("rooms", () => {
    if (!chat.rooms.has(chat.current)) window.location.hash = roomHref(DEFAULT_ROOM);
  });
  const roomDialog = new RoomDialog(chat, {
    onJoined: (name) => {
      window.location.hash = roomHref(name);
      document.getElementById("composer-input").focus();
    },
  });
  document.getElementById("add-room-button").addEventListener("click", () => roomDialog.open());

  // --- identity ----------------------------------------------------------------------------
  const meNick = document.getElementById("me-nick");
  const meAvatar = document.getElementById("me-avatar");
  chat.on("nick", (nick) => {
    meNick.textContent = nick;
    fillAvatar(meAvatar, nick);
  });
  document.getElementById("me-button").addEventListener("click", () => nickDialog.open());
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && pane.isAtBottom()) chat.markRead(chat.current);
  });

  route();
  if (chat.nick) {
    meNick.textContent = chat.nick;
    fillAvatar(meAvatar, chat.nick);
    conn.connectNow();
  } else {
    status.render({ state: "idle" });
    nickDialog.open({
      first: true,
      onChosen: (nick) => {
        if (nick) {
          chat.nick = nick;
          // Saved only when chosen: a guest is asked again on the next visit.
          chat.setNick(nick);
        }
        conn.connectNow();
        document.getElementById("composer-input").focus();
      },
    });
  }
}

main();
