// The server name of each session seen in the live stream: events carry only their session id,
// so each new session is looked up once (GET /api/v1/sessions/{id}) and the cells that were
// drawn before the answer are filled in when it arrives.

export class SessionNames {
  private readonly names = new Map<string, string>();
  private readonly waiting = new Map<string, HTMLElement[]>();

  constructor(
    private readonly lookup: (sessionId: string) => Promise<string>,
    private readonly unknown = "—",
  ) {}

  /** The name, once known. */
  get(sessionId: string): string | undefined {
    return this.names.get(sessionId);
  }

  /** A text cell showing the session's server name: at once when known, else when the lookup
   *  answers (one lookup per session, however many cells ask). */
  cell(sessionId: string, className: string): HTMLElement {
    const span = document.createElement("span");
    span.className = className;
    const known = this.names.get(sessionId);
    if (known !== undefined) {
      span.textContent = known;
      span.title = known;
      return span;
    }
    span.textContent = "…";
    const cells = this.waiting.get(sessionId);
    if (cells) {
      cells.push(span);
      return span;
    }
    this.waiting.set(sessionId, [span]);
    this.lookup(sessionId).then(
      (name) => this.settle(sessionId, name, true),
      () => this.settle(sessionId, this.unknown, false), // not kept: a later cell asks again
    );
    return span;
  }

  private settle(sessionId: string, name: string, keep: boolean): void {
    if (keep) this.names.set(sessionId, name);
    for (const span of this.waiting.get(sessionId) ?? []) {
      span.textContent = name;
      span.title = name;
    }
    this.waiting.delete(sessionId);
  }
}
