// OpenTelemetry spans for each attempt: `agentq.attempt` with a child span per phase
// (claim, lease, workspace, hydrate, prepare, run, commit). Only @opentelemetry/api is
// used, the vendor-neutral API (already installed as a dependency of prom-client): the
// spans are no-ops until the embedding application registers an OpenTelemetry SDK
// (a global TracerProvider), as libraries instrumented with OpenTelemetry do.
import { context, SpanStatusCode, trace, type Span, type Tracer } from '@opentelemetry/api';
import type { AttemptObserver, ObserveAttempt } from '../worker/observer.js';

const TRACER_NAME = 'agentq';

/** Wall-clock milliseconds with sub-millisecond precision (OpenTelemetry's number time input). */
const nowMs = () => performance.timeOrigin + performance.now();

/** An attempt observer that records spans through the global (or the given) tracer. */
export function tracingObserver(tracer: Tracer = trace.getTracer(TRACER_NAME)): ObserveAttempt {
  return (info) => {
    const end = nowMs();
    const start = end - info.claimMs;
    const root: Span = tracer.startSpan('agentq.attempt', {
      startTime: start,
      attributes: {
        'agentq.turn_id': info.turnId,
        'agentq.conversation_id': info.conversationId,
        'agentq.tenant_id': info.tenantId,
        'agentq.attempt': info.attempt,
      },
    });
    const parent = trace.setSpan(context.active(), root);
    const child = (name: string, from: number, to: number) => tracer.startSpan(name, { startTime: from }, parent).end(to);
    child('agentq.claim', start, end);
    let ended = false;
    const observer: AttemptObserver = {
      phase(phase, ms) {
        const to = nowMs();
        child(`agentq.${phase}`, to - ms, to);
      },
      checkpointed(ms) {
        const to = nowMs();
        child('agentq.checkpoint', to - ms, to);
      },
      cliExited(outcome) {
        root.setAttributes({ 'agentq.cli_outcome': outcome.type, 'agentq.cost_usd': outcome.costUsd, 'agentq.num_turns': outcome.numTurns });
      },
      requeued(reason) {
        root.setAttribute('agentq.requeued', reason);
      },
      ended(verdict) {
        if (ended) return;
        ended = true;
        if (!verdict) root.setStatus({ code: SpanStatusCode.ERROR, message: 'the attempt threw' });
        else {
          root.setAttribute('agentq.verdict', verdict.kind);
          if (verdict.kind === 'committed') root.setAttribute('agentq.status', verdict.status);
        }
        root.end();
      },
    };
    return observer;
  };
}

/** One ObserveAttempt calling each of `observers` in turn (undefined ones skipped). */
export function combineObservers(...observers: (ObserveAttempt | undefined)[]): ObserveAttempt {
  const present = observers.filter((o): o is ObserveAttempt => o !== undefined);
  return (info) => {
    const each = present.map((o) => o(info));
    const call =
      <K extends keyof AttemptObserver>(key: K) =>
      (...args: Parameters<NonNullable<AttemptObserver[K]>>) => {
        for (const o of each) (o[key] as ((...a: typeof args) => void) | undefined)?.(...args);
      };
    return {
      phase: call('phase'),
      checkpointed: call('checkpointed'),
      cliExited: call('cliExited'),
      requeued: call('requeued'),
      ended: call('ended'),
    };
  };
}
