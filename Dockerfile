# vgen: one image for every role; the command picks it (`api`, `worker`,
# `autoscaler`, `up`, `operator-token`, …).
#   docker build -t vgen .
#   docker run --rm vgen help
# Node 24 LTS, the same release CI runs the whole suite on (`npm test` runs it
# through `npx node@…`; test/deploy.test.ts checks the two versions agree).
# Bump both together.
ARG NODE_IMAGE=node:24.9.0-bookworm-slim

# Stage 1: production dependencies only. npm's cache and the lockfile stay here.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error && npm cache clean --force

# Stage 2: the runtime. ffmpeg (libx264, aac, xfade, zoompan, drawtext), a font
# with Chinese glyphs for captions and util-linux's setpriv (ffmpeg dies with its
# worker); the worker checks all three at start and refuses to run without them.
FROM ${NODE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg fonts-noto-cjk fontconfig util-linux \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV NODE_ENV=production

# Owned by root, read-only to the process: the code cannot be changed at run time.
# tsx is a runtime dependency: bin/vgen.js runs the TypeScript sources through it.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY bin ./bin
COPY engine ./engine
COPY api ./api
COPY templates ./templates
COPY worker ./worker
COPY cli ./cli
COPY autoscaler ./autoscaler
COPY assets ./assets
COPY examples ./examples

# Local state (PGlite, fs media) goes to /data when DATABASE_URL / S3 are not set.
RUN mkdir -p /data && chown node:node /data
ENV DATA_DIR=/data
# The image's unprivileged `node` user (uid 1000).
USER node

# API on 3000, worker and autoscaler /metrics on 9464.
EXPOSE 3000 9464
ENTRYPOINT ["node", "bin/vgen.js"]
CMD ["help"]
