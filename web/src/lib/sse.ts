// Server-Sent Events parsing (the text/event-stream format of the HTML standard), for reading
// the live stream with fetch: unlike EventSource, fetch sends the same headers as every other
// API call (km ui's X-KM-Token).

export interface SseMessage {
  event: string;
  data: string;
}

/** Turns chunks of an event stream into messages; a message may span chunks. */
export class SseParser {
  private rest = "";
  private event = "";
  private data: string[] = [];
  private endedWithCR = false;

  /** The messages completed by this chunk. */
  feed(chunk: string): SseMessage[] {
    const out: SseMessage[] = [];
    // A "\r\n" split between two chunks is one line end, not two.
    const text = this.endedWithCR && chunk.startsWith("\n") ? chunk.slice(1) : chunk;
    this.endedWithCR = chunk.endsWith("\r");
    const lines = (this.rest + text).split(/\r\n|\r|\n/);
    this.rest = lines.pop() ?? ""; // no line end yet
    for (const line of lines) {
      if (line === "") {
        if (this.data.length > 0) out.push({ event: this.event || "message", data: this.data.join("\n") });
        this.event = "";
        this.data = [];
        continue;
      }
      if (line.startsWith(":")) continue; // comment (heartbeat)
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") this.event = value;
      else if (field === "data") this.data.push(value);
    }
    return out;
  }
}
