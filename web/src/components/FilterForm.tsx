import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { registerDraft, takeDraft } from "../lib/drafts";
import { isoToLocalInput, localInputToIso } from "../lib/format";
import {
  EMPTY_FILTERS,
  filtersFromSearch,
  filtersToSearch,
  RISK_FLOORS,
  type EventFilters,
  type RiskFloor,
} from "../lib/query";
import { KINDS, type Kind } from "../types";

interface Props {
  value: EventFilters;
  onSubmit: (filters: EventFilters) => void;
  /** Search has time bounds; the live stream does not. */
  withTime: boolean;
  submitLabel: string;
  testid: string;
}

/** The event filter form shared by Search and Live. */
export function FilterForm({ value, onSubmit, withTime, submitLabel, testid }: Props) {
  // What was typed here when the session ended comes back after signing in (lib/drafts).
  const [draft, setDraft] = useState<EventFilters>(() => {
    const kept = takeDraft(testid);
    return kept === null ? value : filtersFromSearch(kept);
  });
  const mounted = useRef(false);
  // the form follows the URL before the browser paints, so that what is typed right after a
  // change (a select that applies at once) is not overwritten by a late effect
  useLayoutEffect(() => {
    if (mounted.current) setDraft(value);
    mounted.current = true;
  }, [value]);
  const latest = useRef(draft);
  latest.current = draft;
  useEffect(() => registerDraft(testid, () => filtersToSearch(latest.current)), [testid]);

  const text = (field: "method" | "tool" | "q" | "session_id", label: string, placeholder = "") => (
    <label class={`field field-${field}`}>
      {label}
      <input
        type="text"
        name={field}
        value={draft[field]}
        placeholder={placeholder}
        maxLength={500}
        data-testid={`filter-${field}`}
        onInput={(e) => setDraft({ ...draft, [field]: (e.target as HTMLInputElement).value })}
      />
    </label>
  );
  const time = (field: "since" | "until", label: string) => (
    <label class="field">
      {label}
      <input
        type="datetime-local"
        step={1}
        name={field}
        value={draft[field] ? isoToLocalInput(draft[field]) : ""}
        data-testid={`filter-${field}`}
        onInput={(e) => setDraft({ ...draft, [field]: localInputToIso((e.target as HTMLInputElement).value) })}
      />
    </label>
  );

  return (
    <form
      class="card filters"
      data-testid={testid}
      onSubmit={(e) => {
        e.preventDefault();
        onSubmit(draft);
      }}
    >
      {text("q", "Text in payload", "e.g. invoice or an error message")}
      {text("method", "Method", "tools/call")}
      {text("tool", "Tool", "search_docs")}
      <label class="field">
        Kind
        <select
          name="kind"
          value={draft.kind}
          data-testid="filter-kind"
          onChange={(e) => setDraft({ ...draft, kind: (e.target as HTMLSelectElement).value as Kind | "" })}
        >
          <option value="">any</option>
          {KINDS.map((k) => (
            <option key={k} value={k}>
              {k}
            </option>
          ))}
        </select>
      </label>
      {text("session_id", "Session id")}
      <label class="field">
        Risk
        <select
          name="min_level"
          value={draft.min_level}
          data-testid="filter-min-level"
          onChange={(e) => setDraft({ ...draft, min_level: (e.target as HTMLSelectElement).value as RiskFloor })}
        >
          <option value="">any</option>
          {RISK_FLOORS.map((level) => (
            <option key={level} value={level}>
              {level === "critical" ? "critical" : `${level} and above`}
            </option>
          ))}
        </select>
      </label>
      {withTime && time("since", "Since")}
      {withTime && time("until", "Until")}
      <label class="field field-check">
        <input
          type="checkbox"
          name="errors"
          checked={draft.errors}
          data-testid="filter-errors"
          onChange={(e) => setDraft({ ...draft, errors: (e.target as HTMLInputElement).checked })}
        />
        Errors only
      </label>
      <div class="filter-actions">
        <button type="submit" class="btn btn-primary" data-testid="filter-submit">
          {submitLabel}
        </button>
        <button
          type="button"
          class="btn"
          data-testid="filter-reset"
          onClick={() => {
            setDraft({ ...EMPTY_FILTERS });
            onSubmit({ ...EMPTY_FILTERS });
          }}
        >
          Reset
        </button>
      </div>
    </form>
  );
}
