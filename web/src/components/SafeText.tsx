import { useState } from "preact/hooks";
import { highlightParts, splitInvisible } from "../lib/invisible";

/** Text with invisible and bidi control characters shown as marked escapes, and the matches of
 *  `query` highlighted. JSX text nodes only: nothing is parsed as markup. */
export function SafeText({ text, query = "" }: { text: string; query?: string }) {
  return (
    <>
      {splitInvisible(text).map((part, i) =>
        part.escaped ? (
          <span key={i} class="invisible-char" title="invisible or bidi control character" data-testid="invisible-char">
            {part.text}
          </span>
        ) : (
          highlightParts(part.text, query).map((h, j) =>
            h.match ? (
              <mark key={`${i}.${j}`} data-testid="match">
                {h.text}
              </mark>
            ) : (
              h.text
            ),
          )
        ),
      )}
    </>
  );
}

/** Characters of a long string shown before "show all". */
export const LONG_TEXT = 2000;

/** SafeText, cut at LONG_TEXT characters with a button to show the rest. */
export function LongText({ text, query = "" }: { text: string; query?: string }) {
  const [all, setAll] = useState(false);
  if (all || text.length <= LONG_TEXT) return <SafeText text={text} query={query} />;
  return (
    <>
      <SafeText text={text.slice(0, LONG_TEXT)} query={query} />
      <button type="button" class="link-button" data-testid="show-all-text" onClick={() => setAll(true)}>
        … show all {text.length.toLocaleString("en-US")} characters
      </button>
    </>
  );
}
