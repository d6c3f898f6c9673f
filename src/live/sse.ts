// Server-Sent Events on a raw Node response: the wire format of one feed item, comments
// for heartbeats, and writes that respect back-pressure (a slow client holds the feed,
// it does not fill this process's memory).
import type { ServerResponse } from 'node:http';
import { formatEventId } from './cursor.js';
import type { FeedItem } from './feed.js';

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  // nginx and similar proxies otherwise buffer the stream.
  'x-accel-buffering': 'no',
} as const;

/** Field values must not contain line breaks; each line of the data becomes its own `data:` line. */
function dataLines(data: string): string {
  return data
    .split(/\r\n|\r|\n/)
    .map((line) => `data: ${line}\n`)
    .join('');
}

/**
 * One SSE message. Events carry `id: <attempt>-<seq>` and `event: <type>`; the end of the
 * feed is `event: end` with the turn's status and no id, so a client that reconnects
 * keeps its last event id.
 */
export function formatSse(item: FeedItem): string {
  if (item.kind === 'end') return `event: end\n${dataLines(JSON.stringify({ status: item.status }))}\n`;
  const type = item.event.type.replace(/[\r\n]/g, ' ');
  return `id: ${formatEventId(item.event)}\nevent: ${type}\n${dataLines(item.event.payload)}\n`;
}

export const SSE_PING = ': ping\n\n';

/** Writes `chunk`; resolves once the socket wants more (or is gone: then false). */
export function writeSse(res: ServerResponse, chunk: string): Promise<boolean> {
  if (res.destroyed || res.writableEnded) return Promise.resolve(false);
  if (res.write(chunk)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}
