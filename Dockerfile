# The agentq image: the CLI (`agentq worker`, `agentq migrate`, ...) with the pinned
# Claude Code binary, running as the unprivileged `node` user.
FROM node:20-bookworm-slim

# bubblewrap isolates each CLI run; socat carries its API traffic over a unix socket.
RUN apt-get update -q && apt-get install -y -q --no-install-recommends bubblewrap socat ca-certificates \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Sources first: `npm ci` runs the `prepare` build (tsc, then the CLI bundle by
# scripts/bundleCli.js), which needs them and the dev tools.
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY scripts ./scripts
COPY src ./src
COPY migrations ./migrations
RUN npm ci && npm prune --omit=dev && npm cache clean --force

# Workspaces and per-attempt config dirs live on a volume the worker owns.
RUN mkdir -p /var/lib/agentq/workspaces /var/lib/agentq/runs && chown -R node:node /var/lib/agentq
ENV NODE_ENV=production \
    AGENTQ_WORKSPACE_ROOT=/var/lib/agentq/workspaces \
    AGENTQ_RUNS_ROOT=/var/lib/agentq/runs \
    AGENTQ_SANDBOX=bwrap
# Non-root: bubblewrap needs no setuid bit here, only unprivileged user namespaces, which
# the container's seccomp/AppArmor profile must allow (see docker-compose.yml).
USER node

ENTRYPOINT ["node", "bin/agentq.js"]
CMD ["worker"]
