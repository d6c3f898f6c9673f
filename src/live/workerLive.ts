// Everything live a worker runs besides its turns: the publisher of turn events and end
// markers, and the listener that hands user messages to the attempt holding a turn.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { startInputResponder, type InputTarget } from './inputs.js';
import { LivePublisher } from './publisher.js';

export interface WorkerLive {
  readonly publisher: LivePublisher;
  close(): void;
}

export async function startWorkerLive(config: Config, log: Logger, lookup: (turnId: string) => InputTarget | undefined): Promise<WorkerLive> {
  const publisher = await LivePublisher.connect(config.redisUrl, config, log);
  const responder = await startInputResponder(config.redisUrl, config, publisher, lookup, log);
  return {
    publisher,
    close() {
      responder.close();
      publisher.close();
    },
  };
}
