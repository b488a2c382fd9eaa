// Server-sent events read from a fetch body: EventSource cannot send the
// bearer header the API requires, so Studio parses the stream itself.

export interface ServerEvent {
  event: string;
  id?: string;
  data: string;
}

/** Splits a growing text buffer into complete events; returns them and the unconsumed rest. */
export function parseEvents(buffer: string): { events: ServerEvent[]; rest: string } {
  const normalized = buffer.replace(/\r\n?/g, '\n');
  const blocks = normalized.split('\n\n');
  const rest = blocks.pop() ?? '';
  const events: ServerEvent[] = [];
  for (const block of blocks) {
    let event = 'message';
    let id: string | undefined;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'id') id = value;
      else if (field === 'data') data.push(value);
    }
    // A block of comments only (a heartbeat) is no event.
    if (data.length > 0) events.push({ event, id, data: data.join('\n') });
  }
  return { events, rest };
}
