// The cgroup decision of one worker start: none without AGENTQ_RUN_* limits; else where
// the run groups go, or CgroupsUnavailableError (the worker does not start).
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { hasLimits, probeCgroups, sweepRunGroups, type CgroupHost } from './cgroups.js';

export function runCgroupHost(config: Config, log: Logger): CgroupHost | undefined {
  const limits = config.cli.limits;
  if (!hasLimits(limits)) return undefined;
  const host = probeCgroups(limits);
  const swept = sweepRunGroups(host);
  log.info(
    { cgroup: host.version, memoryMaxBytes: limits.memoryMaxBytes, pidsMax: limits.pidsMax, cpuMax: limits.cpuMax, sweptGroups: swept },
    'each CLI run gets a cgroup with limits',
  );
  return host;
}
