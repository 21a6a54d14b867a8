# syntax=docker/dockerfile:1
# Conveyor's container image: conveyor-api, conveyor-worker, conveyor-scheduler and
# conveyorctl on a slim Debian, running as an unprivileged user.
#
#   docker build -t conveyor:local .
#   docker run --rm conveyor:local conveyorctl --help
#
# The default command is conveyor-api; docker-compose.yml runs every binary from this
# one image. The migrations are embedded in the binaries (`sqlx::migrate!` in
# queue-core), so only config/ is copied next to them.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# --- cargo-chef: compile the dependencies in a layer of their own ----------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
ARG CARGO_CHEF_VERSION=0.1.78
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

# The recipe lists the manifests and lock file only: it changes when a dependency
# does, not when our code does.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json \
        -p conveyor-api -p conveyor-worker -p conveyor-scheduler -p conveyorctl
COPY . .
RUN cargo build --release --locked \
        -p conveyor-api -p conveyor-worker -p conveyor-scheduler -p conveyorctl \
    && mkdir -p /out \
    && cp target/release/conveyor-api target/release/conveyor-worker \
          target/release/conveyor-scheduler target/release/conveyorctl /out/

# --- runtime -----------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: the provider and Wikidata clients speak HTTPS.
# curl: the health checks of docker-compose.yml.
# Not pinned to versions: the image takes Debian stable's security updates on
# every rebuild, and a pinned version vanishes from the archive when one lands.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
# A fixed uid/gid so that volumes keep their owner across rebuilds. The storage
# directories exist in the image, owned by that user, so that a named volume
# mounted on them starts out writable.
RUN groupadd --system --gid 10001 conveyor \
    && useradd --system --uid 10001 --gid conveyor --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin conveyor \
    && install -d -o conveyor -g conveyor /var/lib/conveyor/epub /var/lib/conveyor/avatars
WORKDIR /app
COPY --from=builder /out/ /usr/local/bin/
COPY config/ /app/config/
ENV CONVEYOR_CONFIG=/app/config/conveyor.toml \
    CONVEYOR_API_ADDR=0.0.0.0:8080 \
    CONVEYOR__STORAGE__EPUB_DIR=/var/lib/conveyor/epub \
    CONVEYOR__STORAGE__AVATAR_DIR=/var/lib/conveyor/avatars
USER 10001:10001
# 8080: conveyor-api; 9101: a worker's --metrics-addr.
EXPOSE 8080 9101
CMD ["conveyor-api"]
