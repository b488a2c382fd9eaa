import { describe, expect, it } from 'vitest';
import { parseEvents } from './sse';

describe('server-sent events', () => {
  it('parses complete events and keeps the incomplete rest', () => {
    const { events, rest } = parseEvents('event: config\nid: 7\ndata: {"position":7}\n\n: heartbeat\n\nevent: config\ndata: {"posi');
    expect(events).toEqual([{ event: 'config', id: '7', data: '{"position":7}' }]);
    expect(rest).toBe('event: config\ndata: {"posi');
  });

  it('joins multi-line data, reads CRLF and defaults the event name', () => {
    const { events, rest } = parseEvents('data: a\r\ndata: b\r\n\r\n');
    expect(events).toEqual([{ event: 'message', id: undefined, data: 'a\nb' }]);
    expect(rest).toBe('');
  });
});
