// What the user was typing, kept across an ended session: when a request answers 401 the app
// goes to sign-in, and the forms on screen put their unsent text into this tab's sessionStorage;
// the same form on the same page takes it back once it is shown again (after signing in).

const KEY = "km_drafts";

interface Saved {
  path: string;
  drafts: Record<string, string>;
}

/** The forms on screen: their key and how to read their current draft ("" when empty). */
const live = new Map<string, () => string>();

/** Makes a form's draft part of what `saveDrafts` keeps; returns the function that undoes it. */
export function registerDraft(key: string, read: () => string): () => void {
  live.set(key, read);
  return () => {
    if (live.get(key) === read) live.delete(key);
  };
}

function storage(): Storage | null {
  try {
    return window.sessionStorage;
  } catch {
    return null;
  }
}

/** Keeps the drafts of the forms on screen (for this page of this tab). */
export function saveDrafts(path: string = location.pathname): void {
  const drafts: Record<string, string> = {};
  for (const [key, read] of live) {
    const value = read();
    if (value) drafts[key] = value;
  }
  if (Object.keys(drafts).length === 0) return;
  try {
    storage()?.setItem(KEY, JSON.stringify({ path, drafts } satisfies Saved));
  } catch {
    // storage full or disabled: the text is lost, as before
  }
}

/** The kept draft of form `key` on page `path`, handed out once (null when there is none). */
export function takeDraft(key: string, path: string = location.pathname): string | null {
  const s = storage();
  let saved: unknown;
  try {
    saved = JSON.parse(s?.getItem(KEY) ?? "null");
  } catch {
    saved = null;
  }
  if (typeof saved !== "object" || saved === null) return null;
  const { path: where, drafts } = saved as Partial<Saved>;
  if (where !== path || typeof drafts !== "object" || drafts === null) return null;
  const value = (drafts as Record<string, unknown>)[key];
  if (typeof value !== "string") return null;
  delete (drafts as Record<string, unknown>)[key];
  try {
    if (Object.keys(drafts).length === 0) s?.removeItem(KEY);
    else s?.setItem(KEY, JSON.stringify({ path: where, drafts }));
  } catch {
    // nothing to tidy
  }
  return value;
}
