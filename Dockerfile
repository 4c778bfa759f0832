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
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json --noEmit \
 && node scripts/bundle.mjs \
 && npm prune --omit=dev --omit=optional

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
ENTRYPOINT ["node", "dist/bundle/main.js"]
CMD ["run", "--config", "/etc/branchline/branchline.yml"]
