# branchline agent image: `docker build -t branchline .`
# Runs `branchline run` with the configuration mounted at /etc/branchline.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY scripts scripts
COPY src src
COPY connectors connectors
COPY migrations migrations
# The bundle inlines the dependencies: keep in node_modules only what it loads
# from there (knex and its driver pg, scripts/prune-runtime-modules.mjs), and
# drop the source maps (node reads them only with --enable-source-maps).
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json --noEmit \
 && node scripts/bundle.mjs \
 && npm prune --omit=dev --omit=optional \
 && node scripts/prune-runtime-modules.mjs \
 && find dist -name '*.map' -delete

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY package.json ./
COPY bin bin
COPY mappings mappings
COPY schemas schemas
# Never as root; the image holds no secrets (pass them as environment variables).
USER node
# Health: GET /health of the agent's HTTP server (docs/http.md), asked from inside
# the container. It is served only when the configuration has an `http:` section:
# without one nothing answers, the check fails, and after the start period Docker
# marks the container unhealthy (Docker itself does not restart it; an orchestrator
# may). Configure `http:` (the default listen 127.0.0.1:8787 is what this asks),
# point BRANCHLINE_HEALTH_URL elsewhere, or run with --no-healthcheck.
# (No curl in the slim image: node's fetch, 4 s at most.)
ENV BRANCHLINE_HEALTH_URL=http://127.0.0.1:8787/health
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.BRANCHLINE_HEALTH_URL,{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/bundle/main.js"]
CMD ["run", "--config", "/etc/branchline/branchline.yml"]
