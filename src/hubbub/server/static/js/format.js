// Pure helpers that turn message fields into DOM nodes or strings. Everything a sender
// controls is inserted with text nodes, never parsed as HTML.

const encoder = new TextEncoder();

export function utf8Length(text) {
  return encoder.encode(text).length;
}

// Stop at whitespace, quotes and angle brackets; trailing punctuation is trimmed below.
const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?'")\]}>]+$/;

function safeHref(candidate) {
  try {
    const url = new URL(candidate);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/** Append `text` to `parent`, turning http(s) URLs into links that open in a new tab. */
export function appendLinkified(parent, text) {
  let last = 0;
  for (const match of text.matchAll(URL_RE)) {
    let raw = match[0];
    // Keep a closing paren that balances one inside the URL (Wikipedia-style links).
    let trimmed = raw.replace(TRAILING, "");
    if (raw.slice(trimmed.length).startsWith(")") && trimmed.includes("(")) trimmed += ")";
    raw = trimmed;
    const href = safeHref(raw);
    if (!href) continue;
    parent.append(text.slice(last, match.index));
    const link = document.createElement("a");
    link.href = href;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.textContent = raw;
    parent.append(link);
    last = match.index + raw.length;
  }
  parent.append(text.slice(last));
}

export function initials(nick) {
  const words = String(nick || "?").trim().split(/[\s_.\-]+/u).filter(Boolean);
  const chars = words.length > 1 ? [words[0], words[1]] : [words[0] || "?"];
  const letters = chars.map((w) => [...w][0]).join("");
  return (words.length === 1 ? [...words[0]].slice(0, 2).join("") : letters).toUpperCase();
}

const PALETTE_SIZE = 12;

/** A stable palette index for a nickname (FNV-1a), so a person keeps their colour. */
export function colourIndex(nick) {
  let hash = 0x811c9dc5;
  for (const ch of String(nick)) {
    hash ^= ch.codePointAt(0);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % PALETTE_SIZE;
}

export function fillAvatar(el, nick) {
  el.textContent = initials(nick);
  for (const cls of [...el.classList]) if (cls.startsWith("hue-")) el.classList.remove(cls);
  el.classList.add(`hue-${colourIndex(nick)}`);
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });
const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "long", day: "numeric" });

export function timeLabel(ts) {
  return timeFormat.format(new Date(ts));
}

export function fullTimeLabel(ts) {
  return fullFormat.format(new Date(ts));
}

export function dayKey(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

export function dayLabel(ts) {
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (dayKey(ts) === dayKey(today.getTime())) return "Today";
  if (dayKey(ts) === dayKey(yesterday.getTime())) return "Yesterday";
  return dayFormat.format(new Date(ts));
}

/** Compact JSON for `data` payloads, as the plain-text protocol shows them. */
export function compactJson(value) {
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}
