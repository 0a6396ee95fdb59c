// Room and nickname rules, mirrored from src/hubbub/core/names.py so the page can refuse a
// bad name before it costs a round trip. The server stays the authority: its `invalid_room`
// and `invalid_nick` errors are still shown when the two ever disagree.
// Python's `\w` on str is letters, digits and numerics of any script plus "_": \p{L}\p{N}_.
// Names are checked in their NFKC form (the form the server uses); invisible characters,
// Latin/Cyrillic/Greek mixed in one word and the nickname "server" are refused.

const ROOM = /^[\p{L}\p{N}_.:@-]{1,64}$/u;
const NICK_WORD = "[\\p{L}\\p{N}_.'-]+";
const NICK = new RegExp(`^${NICK_WORD}(?: ${NICK_WORD})*$`, "u");
const INVISIBLE = /[\p{Default_Ignorable_Code_Point}\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/u;
const SCRIPTS = [/\p{Script=Latin}/u, /\p{Script=Cyrillic}/u, /\p{Script=Greek}/u];
const LETTER = /\p{L}/u;
const RESERVED_NICKS = new Set(["server"]);

export const MAX_ROOM_CHARS = 64;
export const MAX_NICK_CHARS = 32;
export const ROOM_RULE = "Room names are 1–64 letters, digits, or _ - . : @, without invisible characters or Latin, Cyrillic and Greek letters mixed";
export const NICK_RULE = "Nicknames are 1–32 letters, digits, or _ - . ' with single spaces between words, without invisible characters or Latin, Cyrillic and Greek letters mixed in a word; 'server' is reserved";

function mixesScripts(word) {
  let seen = -1;
  for (const char of word) {
    if (!LETTER.test(char)) continue;
    const script = SCRIPTS.findIndex((pattern) => pattern.test(char));
    if (script < 0) continue;
    if (seen < 0) seen = script;
    else if (script !== seen) return true;
  }
  return false;
}

// The NFKC form of `value` if it can be a name at all, else null (as names.py `_clean`).
function clean(value, maxChars) {
  if (typeof value !== "string" || [...value].length > 4 * maxChars) return null;
  const name = value.normalize("NFKC");
  // Length is counted in code points, as Python's len() does.
  const length = [...name].length;
  if (length < 1 || length > maxChars || INVISIBLE.test(name)) return null;
  if (name.split(" ").some(mixesScripts)) return null;
  return name;
}

export function isValidRoom(name) {
  const room = clean(name, MAX_ROOM_CHARS);
  return room !== null && ROOM.test(room);
}

export function isValidNick(nick) {
  const name = clean(nick, MAX_NICK_CHARS);
  return name !== null && NICK.test(name) && !RESERVED_NICKS.has(name.toLowerCase());
}
