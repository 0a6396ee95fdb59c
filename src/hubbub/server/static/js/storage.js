// localStorage can throw (private mode, quota, disabled cookies): the page must keep working
// without it, so every access goes through here and failures only cost persistence.

const PREFIX = "hubbub.";

export function load(key, fallback) {
  try {
    const raw = window.localStorage.getItem(PREFIX + key);
    return raw === null ? fallback : JSON.parse(raw);
  } catch (err) {
    console.warn("hubbub: cannot read localStorage", key, err);
    return fallback;
  }
}

export function save(key, value) {
  try {
    window.localStorage.setItem(PREFIX + key, JSON.stringify(value));
  } catch (err) {
    console.warn("hubbub: cannot write localStorage", key, err);
  }
}
