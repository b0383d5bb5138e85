# syntax=docker/dockerfile:1
#
# RelayHub: ONE image holding the four services (api, edge, worker, audit); the container's command picks the
# binary, e.g. `docker run relayhub:dev edge` or `command: ["worker"]` in Kubernetes.
#
#   docker build -t relayhub:dev .
#
# The builder compiles the four release binaries in one cargo invocation (shared dependency graph, built once),
# selected by binary name (`--bin`), which stays right whatever their packages are called.
# BuildKit cache mounts keep the cargo registry and target/ between builds; the binaries are copied out of the
# cache mount in the same step because a cache mount is not part of the image.

FROM rust:1-bookworm AS builder
WORKDIR /src
# The whole workspace is needed: cargo resolves every member (e2e, loadtest, testkit) even when building four,
# and rh-store embeds the migrations from sql/ at compile time. .dockerignore keeps target/ and .git out.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin api --bin edge --bin worker --bin audit \
 && mkdir -p /out \
 && cp target/release/api target/release/edge target/release/worker target/release/audit /out/

FROM debian:bookworm-slim AS runtime
# ca-certificates: the worker talks HTTPS to OpenAI-compatible providers; keep the system roots in the image for
# any TLS client that reads them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 relayhub \
 && useradd --system --uid 10001 --gid relayhub --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin relayhub
COPY --from=builder /out/api /out/edge /out/worker /out/audit /usr/local/bin/
# The static web client; the api serves it at / when RH_WEB_DIR is set.
COPY web/ /srv/web/
# Containers listen on all interfaces (the binaries' own defaults are loopback, right for a laptop, wrong here).
ENV RH_WEB_DIR=/srv/web \
    RH_API_LISTEN=0.0.0.0:8080 \
    RH_EDGE_LISTEN=0.0.0.0:8081 \
    RH_WORKER_OPS_LISTEN=0.0.0.0:9092 \
    RH_AUDIT_OPS_LISTEN=0.0.0.0:9103 \
    RUST_LOG=info
# Numeric so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080 8081 9092 9103
# No ENTRYPOINT: the command is the binary (api | edge | worker | audit), plus any flags.
# The binaries handle SIGTERM themselves (graceful shutdown), so they can run as PID 1 without an init.
CMD ["api"]
