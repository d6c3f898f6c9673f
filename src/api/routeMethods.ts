// Which methods each registered path answers, so a request with the wrong method gets
// 405 Method Not Allowed and an `Allow` header instead of a 404 that suggests the
// resource does not exist. Fed by Fastify's onRoute hook; matched in the not-found handler.

interface RouteEntry {
  pattern: RegExp;
  methods: Set<string>;
}

/** `/v1/turns/:id/events` → /^\/v1\/turns\/[^/]+\/events$/ ; a trailing `*` matches the rest. */
function compile(url: string): RegExp {
  const parts = url.split('/').map((segment) => {
    if (segment === '*') return '.*';
    if (segment.startsWith(':')) return '[^/]+';
    return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  });
  return new RegExp(`^${parts.join('/')}/?$`);
}

export class RouteMethods {
  private readonly routes = new Map<string, RouteEntry>();

  add(url: string, method: string | string[]): void {
    let entry = this.routes.get(url);
    if (!entry) {
      entry = { pattern: compile(url), methods: new Set() };
      this.routes.set(url, entry);
    }
    for (const m of Array.isArray(method) ? method : [method]) entry.methods.add(m.toUpperCase());
  }

  /** The methods some route answers at this concrete path (empty: no route has the path). */
  allowed(path: string): string[] {
    const methods = new Set<string>();
    for (const { pattern, methods: ms } of this.routes.values()) {
      if (pattern.test(path)) for (const m of ms) methods.add(m);
    }
    return [...methods].sort();
  }
}
