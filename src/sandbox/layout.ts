// Where things live inside the sandbox. Fixed paths, the same on every worker, so the
// CLI's session folder name (derived from its cwd) and the paths in earlier turns of a
// conversation stay valid wherever the next turn runs.

/** The conversation's workspace, the CLI's cwd. */
export const SANDBOX_WORKSPACE = '/workspace';
/** The run's HOME, and its CLAUDE_CONFIG_DIR unless the run has a separate home. */
export const SANDBOX_HOME = '/home/agent';
/** The run's CLAUDE_CONFIG_DIR when the run has a separate HOME. */
export const SANDBOX_CONFIG_DIR = '/claude-config';
/** The run's private, writable /tmp (its host tmp dir). */
export const SANDBOX_TMP = '/tmp';
/** Read-only directory holding the host forwarder's unix socket. */
export const SANDBOX_API_SOCKET_DIR = '/run/agentq';
export const API_SOCKET_NAME = 'api.sock';
/** The loopback port inside the sandbox where socat listens for the CLI's API requests. */
export const SANDBOX_API_PORT = 8719;
/** The unprivileged user the CLI runs as inside (mapped to the worker's own uid outside). */
export const SANDBOX_USER = { name: 'agent', uid: 1000, gid: 1000 } as const;
