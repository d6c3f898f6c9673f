// What a browser gets from the queue dashboard when it may not open it: a page that says
// why and what to do, not a JSON problem. API clients (no text/html in Accept) still get
// the problem document.
import type { FastifyReply, FastifyRequest } from 'fastify';

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** True when the request comes from a browser navigating to a page. */
export function wantsHtml(request: FastifyRequest): boolean {
  return (request.headers.accept ?? '').includes('text/html');
}

/** Sends a small HTML page: `title`, the reason, and what to do next. */
export function sendRefusedPage(reply: FastifyReply, status: 401 | 403, title: string, reason: string, next: string): FastifyReply {
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>agentq: ${escapeHtml(title)}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;color:#1d1d1f}</style></head>
<body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(reason)}</p><p>${next}</p></body></html>
`;
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'")
    .send(body);
}
