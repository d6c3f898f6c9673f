// `npx agentq worker &` then `kill $!`: the shell's $! is npx (npm exec), which runs the
// command through `sh -c`. npm exits on the signal without passing it on, and the worker,
// reparented to init, kept running as an orphan. Started by npm (npx or an npm script), a
// long-running command therefore watches its parent: when it is gone, the process sends
// itself SIGTERM, which drains as a signal from the shell would have.
import process from 'node:process';

/** How often the parent is looked at. */
const WATCH_MS = 500;

/** Under npm: a SIGTERM to this process once its parent is gone. Returns a function that stops watching. */
export function stopWithNpmParent(env: Readonly<Record<string, string | undefined>>): () => void {
  if (!env.npm_command) return () => undefined;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    process.kill(process.pid, 'SIGTERM');
  }, WATCH_MS);
  timer.unref();
  return () => clearInterval(timer);
}
