// What the runner needs to sandbox a run, resolved once per worker start (see probe.ts).

export interface SandboxSettings {
  /** Absolute path of bwrap. */
  bwrapPath: string;
  /** Absolute path of socat (must also be reachable inside: under /usr or bound read-only). */
  socatPath: string;
  /** Hosts a run may reach besides the model API (AGENTQ_SANDBOX_ALLOW_HOSTS), forwarded as raw TCP. */
  allowHosts?: readonly { host: string; port: number }[];
  /** AGENTQ_CLI_ENV_ALLOW: variables passed into the sandbox even when their names say they are credentials. */
  passEnv?: readonly string[];
}
