# vgen: one image for every role; the command picks it (`api`, `worker`, `up`, …).
#   docker build -t vgen .
#   docker run --rm vgen help
# Node 24 is a supported LTS (Node 20 reached end of life in April 2026).
FROM node:24-bookworm-slim

# ffmpeg (libx264, aac, xfade, zoompan, drawtext) and a font with Chinese glyphs
# for captions; the worker checks both at start and refuses to run without them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg fonts-noto-cjk fontconfig \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV NODE_ENV=production

# Dependencies first, so a source change does not reinstall them. tsx is a
# runtime dependency: bin/vgen.js runs the TypeScript sources through it.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY tsconfig.json ./
COPY bin ./bin
COPY engine ./engine
COPY api ./api
COPY worker ./worker
COPY cli ./cli
COPY autoscaler ./autoscaler
COPY assets ./assets
COPY examples ./examples

# Local state (PGlite, fs media) goes to /data when DATABASE_URL / S3 are not set.
RUN mkdir -p /data && chown node:node /data
ENV DATA_DIR=/data
USER node

ENTRYPOINT ["node", "bin/vgen.js"]
CMD ["help"]
