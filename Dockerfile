# sessionmanager's image: the built service, its production dependencies and
# nothing else, run as a non-root user; works with a read-only root filesystem.
#
#   docker build -t sessionmanager .
#   docker build --build-arg NODE_IMAGE=node:24-slim -t sessionmanager .
#
# NODE_IMAGE is any Node.js >= 20.19 image with npm and /bin/sh (Debian slim
# by default). docs/deploy.md says how it is built and tested.
ARG NODE_IMAGE=node:26-slim

# Compile the client package and the server (TypeScript -> dist/).
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
COPY client/package.json client/
RUN npm ci --no-audit --no-fund
COPY tsconfig.base.json tsconfig.build.json ./
COPY scripts/copy-assets.js scripts/
COPY proto proto
COPY client client
COPY src src
RUN npm run build

# Production dependencies only: no compiler, linter or test tools.
FROM ${NODE_IMAGE} AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
COPY client/package.json client/
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=dependencies /app/node_modules node_modules
COPY package.json ./
COPY proto proto
COPY client/package.json client/
COPY client/proto client/proto
COPY --from=build /src/client/dist client/dist
COPY --from=build /src/dist dist
# Numeric, so that Kubernetes' runAsNonRoot can check it (uid 1000 is `node`
# in the official images). It owns nothing: the files are root's, read-only.
USER 1000:1000
EXPOSE 6027 8080
# Exec form: node is PID 1 and gets SIGTERM itself, and drains (SHUTDOWN_GRACE).
ENTRYPOINT ["node", "dist/main.js"]
