// Runnable mock for manual runs and the offline demo:
//   node dist/mock/main.js [--port N] [--host H] [--text-delay-ms N] [--log] [--spans]
// prints one JSON line `{"url": "..."}` to stdout once listening, then serves (default
// replies, see script.ts) until SIGTERM or SIGINT. With --log every request is printed
// to stderr as one JSON line. With --spans every answered request is also printed to
// stdout, as `{"kind", "time", "finishedAt"}` (Date.now() when its body had arrived and
// when its response was written): the mock's own time, for benchmarks that run it apart.
import { parseArgs } from 'node:util';
import { startMockModel } from './mockModel.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      'text-delay-ms': { type: 'string', default: '0' },
      log: { type: 'boolean', default: false },
      spans: { type: 'boolean', default: false },
    },
  });
  const port = Number(values.port);
  const textDelayMs = Number(values['text-delay-ms']);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad --port ${values.port}`);
  if (!Number.isFinite(textDelayMs) || textDelayMs < 0) throw new Error(`bad --text-delay-ms ${values['text-delay-ms']}`);
  const mock = await startMockModel({
    port,
    host: values.host,
    textDelayMs,
    onRequest: values.log
      ? (r) => process.stderr.write(`${JSON.stringify({ method: r.method, url: r.url, kind: r.kind, index: r.index, model: r.body?.model })}\n`)
      : undefined,
    onFinished: values.spans ? (r) => process.stdout.write(`${JSON.stringify({ kind: r.kind, time: r.time, finishedAt: r.finishedAt })}\n`) : undefined,
  });
  process.stdout.write(`${JSON.stringify({ url: mock.url })}\n`);
  const stop = (): void => {
    mock.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
