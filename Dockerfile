# syntax=docker/dockerfile:1
# One image for the whole suite: the five services and sagactl. docker-compose.yml runs each
# service from it by its `command` (orchestrator, inventory, payment, shipping, notification).
#
#   docker build -t saga-suite:local .
#   docker run --rm -e DATABASE_URL=… -e HOST=0.0.0.0 -p 8082:8082 saga-suite:local payment

# ---- build: release binaries of the workspace (Rust 1.94 or newer: see Cargo.toml rust-version)
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the registry and target/ between builds; the binaries are copied out of
# the cached target/ in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --workspace --bins \
 && mkdir -p /out \
 && for bin in orchestrator inventory payment shipping notification sagactl; do \
        cp "target/release/$bin" /out/ || exit 1; \
    done

# ---- runtime: small Debian, non-root
FROM debian:bookworm-slim AS runtime
# curl is for the compose health checks (GET /readyz); ca-certificates for any https URL.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 saga \
 && useradd --system --uid 10001 --gid saga --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin saga
COPY --from=build /out/ /usr/local/bin/
USER saga:saga
WORKDIR /tmp
# orchestrator 8080, inventory 8081, payment 8082, shipping 8083, notification 8084
EXPOSE 8080 8081 8082 8083 8084
# The services stop gracefully on SIGTERM (SHUTDOWN_GRACE_MS).
STOPSIGNAL SIGTERM
# No ENTRYPOINT: the command is the binary to run (see docker-compose.yml).
CMD ["orchestrator"]
