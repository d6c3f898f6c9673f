# The agentq image: the CLI (`agentq worker`, `agentq migrate`, ...) with the pinned
# Claude Code binary, running as the unprivileged `node` user.
FROM node:20-bookworm-slim

WORKDIR /app
# Sources first: `npm ci` runs the `prepare` build, which needs them and the dev tools.
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
RUN npm ci && npm prune --omit=dev && npm cache clean --force

# Workspaces and per-attempt config dirs live on a volume the worker owns.
RUN mkdir -p /var/lib/agentq/workspaces /var/lib/agentq/runs && chown -R node:node /var/lib/agentq
ENV NODE_ENV=production \
    AGENTQ_WORKSPACE_ROOT=/var/lib/agentq/workspaces \
    AGENTQ_RUNS_ROOT=/var/lib/agentq/runs
USER node

ENTRYPOINT ["node", "bin/agentq.js"]
CMD ["worker"]
