// The sandbox decision of one worker start, from AGENTQ_SANDBOX and a probe of this machine.
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { SandboxUnavailableError } from '../errors.js';
import { probeSandbox } from './probe.js';
import type { SandboxSettings } from './settings.js';

/**
 * `bwrap`: the sandbox or a SandboxUnavailableError. `auto`: the sandbox when it works,
 * else undefined and one error-level log line (runs are then NOT isolated). `off`:
 * undefined, with a warning.
 */
export async function resolveSandbox(config: Config, log: Logger): Promise<SandboxSettings | undefined> {
  const { mode, bwrapPath, socatPath } = config.sandbox;
  if (mode === 'off') {
    log.warn('AGENTQ_SANDBOX=off: CLI runs are not isolated (unsafe for untrusted prompts)');
    return undefined;
  }
  const probe = await probeSandbox(bwrapPath, socatPath);
  if (probe.ok) {
    log.info({ bwrap: probe.version, probeMs: probe.ms }, 'CLI runs are sandboxed with bubblewrap');
    return { ...probe.settings, allowHosts: config.sandbox.allowHosts, passEnv: config.cli.envAllow };
  }
  if (mode === 'bwrap') throw new SandboxUnavailableError(probe.reason);
  log.error(
    { reason: probe.reason },
    'AGENTQ_SANDBOX=auto: bubblewrap is not usable here, so CLI runs are NOT isolated: an agent can read this worker\'s environment, other conversations and the network. Fix it (`agentq doctor`) or set AGENTQ_SANDBOX=bwrap to refuse to run without it.',
  );
  return undefined;
}
