// Errors of the HTTP API as RFC 9457 problem details (`application/problem+json`): every
// 4xx names what was wrong, and for bad input each bad field.
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ApprovalInputError, RunOptionsError, StoreInputError, TurnInputError } from '../errors.js';

export interface FieldProblem {
  /** Dotted path of the field, prefixed by where it came from: `body.prompt`, `params.id`, `headers.idempotency-key`. */
  field: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: FieldProblem[];
}

/** A 4xx the route decided on (not found, conflict): thrown, rendered by the error handler. */
export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    detail: string,
    readonly errors?: FieldProblem[],
  ) {
    super(detail);
    this.name = 'HttpProblem';
  }
}

/** The problem body as a zod schema, for the OpenAPI document and response serialization. */
export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
  })
  .describe('RFC 9457 problem details; `errors` names each bad field');

/** `response` entries for the error statuses a route can answer with. */
export function problemResponses<S extends number>(...statuses: S[]): Record<S, typeof problemSchema> {
  return Object.fromEntries(statuses.map((s) => [s, problemSchema])) as Record<S, typeof problemSchema>;
}

export const notFound = (what: string) => new HttpProblem(404, 'Not Found', `${what} does not exist`);
export const conflict = (detail: string) => new HttpProblem(409, 'Conflict', detail);

function problem(status: number, title: string, detail: string, errors?: FieldProblem[]): Problem {
  return { type: 'about:blank', title, status, detail, ...(errors && errors.length > 0 ? { errors } : {}) };
}

export function sendProblem(reply: FastifyReply, p: Problem): FastifyReply {
  return reply.code(p.status).type('application/problem+json').send(p);
}

/** Turn input fields that do not come from the body of POST /v1/conversations/:id/turns. */
const TURN_INPUT_FIELDS: Record<string, string> = {
  conversationId: 'params.id',
  idempotencyKey: 'headers.idempotency-key',
  tenantId: 'headers.authorization',
};

/** Maps whatever a route threw to a problem; 5xx hide their message. */
export function toProblem(err: unknown, request: FastifyRequest): Problem {
  if (err instanceof HttpProblem) return problem(err.status, err.title, err.message, err.errors);
  if (hasZodFastifySchemaValidationErrors(err)) {
    // Named as clients know them: `query.limit`, not Fastify's `querystring.limit`.
    const where = err.validationContext === 'querystring' ? 'query' : (err.validationContext ?? 'body');
    const errors = err.validation.flatMap((v) => {
      const path = (v.instancePath ?? '').split('/').filter((s) => s !== '');
      const missing = (v.params as { issue?: { path?: PropertyKey[] } }).issue?.path?.map(String) ?? [];
      const field = [where, ...(path.length > 0 ? path : missing)].join('.');
      // A strict object's extra keys: name each one, not the object that holds them.
      const extra = (v.params as { keys?: unknown }).keys;
      if (v.keyword === 'unrecognized_keys' && Array.isArray(extra) && extra.length > 0) {
        return extra.map((key) => ({ field: `${field}.${String(key)}`, message: 'is not a known field' }));
      }
      return [{ field, message: v.message ?? 'is invalid' }];
    });
    return problem(400, 'Bad Request', `invalid ${where}: ${errors.map((e) => `${e.field} ${e.message}`).join('; ')}`, errors);
  }
  if (err instanceof TurnInputError || err instanceof RunOptionsError || err instanceof ApprovalInputError) {
    const prefix = err instanceof RunOptionsError ? 'body.options.' : 'body.';
    return problem(400, 'Bad Request', err.message, err.fields.map((f) => ({ field: TURN_INPUT_FIELDS[f] ?? `${prefix}${f}`, message: 'is invalid' })));
  }
  if (err instanceof StoreInputError) {
    return problem(400, 'Bad Request', err.message, [{ field: `params.${err.field}`, message: err.message }]);
  }
  const fe = err as Partial<FastifyError>;
  const status = typeof fe.statusCode === 'number' ? fe.statusCode : 500;
  if (status >= 400 && status < 500) {
    return problem(status, titleOf(status), fe.message ?? 'bad request');
  }
  request.log.error({ err }, 'request failed');
  return problem(500, 'Internal Server Error', 'the server failed to handle the request; see its logs');
}

function titleOf(status: number): string {
  switch (status) {
    case 400:
      return 'Bad Request';
    case 401:
      return 'Unauthorized';
    case 404:
      return 'Not Found';
    case 405:
      return 'Method Not Allowed';
    case 409:
      return 'Conflict';
    case 413:
      return 'Content Too Large';
    case 414:
      return 'URI Too Long';
    case 415:
      return 'Unsupported Media Type';
    case 429:
      return 'Too Many Requests';
    default:
      return 'Client Error';
  }
}
