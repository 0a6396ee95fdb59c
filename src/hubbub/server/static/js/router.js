// The current room lives in the URL (`#/room/<name>`) so that a link opens that room and
// the back button moves between rooms.

const PREFIX = "#/room/";

export function roomHref(name) {
  return PREFIX + encodeURIComponent(name);
}

/** The room named by the hash, or null when there is none or it cannot be decoded. */
export function roomFromHash(hash = window.location.hash) {
  if (!hash.startsWith(PREFIX)) return null;
  try {
    return decodeURIComponent(hash.slice(PREFIX.length));
  } catch {
    return null;
  }
}
