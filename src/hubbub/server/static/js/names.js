// Room and nickname rules, mirrored from src/hubbub/core/names.py so the page can refuse a
// bad name before it costs a round trip. The server stays the authority: its `invalid_room`
// and `invalid_nick` errors are still shown when the two ever disagree.
// Python's `\w` on str is letters, digits and numerics of any script plus "_": \p{L}\p{N}_.

const ROOM = /^[\p{L}\p{N}_.:@-]{1,64}$/u;
const NICK_WORD = "[\\p{L}\\p{N}_.'-]+";
const NICK = new RegExp(`^${NICK_WORD}(?: ${NICK_WORD})*$`, "u");

export const MAX_NICK_CHARS = 32;
export const ROOM_RULE = "Room names are 1–64 letters, digits, or _ - . : @";
export const NICK_RULE = "Nicknames are 1–32 letters, digits, or _ - . ' with single spaces between words";

export function isValidRoom(name) {
  return typeof name === "string" && ROOM.test(name);
}

export function isValidNick(nick) {
  // Length is counted in code points, as Python's len() does.
  return typeof nick === "string" && [...nick].length <= MAX_NICK_CHARS && NICK.test(nick);
}
