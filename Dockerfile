# syntax=docker/dockerfile:1
# One image for the three services (auth-service, order-service, payment-service) and the admin
# CLI authctl. The container's command picks the binary (see docker-compose.yml), e.g.
#   docker build -t auth-service .
#   docker run --rm -p 50051:50051 -p 8080:8080 auth-service   # SQLite in /var/lib/auth-service
#   docker run --rm auth-service order-service --help
#   docker exec -it <container> authctl --help
# BuildKit (the default builder of Docker 23 and later) is needed for the cache mounts below.

# --- build: release binaries ---------------------------------------------------------------
# The builder and the runtime stage must share a Debian release (the binaries link its glibc).
FROM rust:1.95-slim-trixie AS builder
WORKDIR /src

# Only what the build reads, so editing docs or examples does not invalidate this layer.
# protoc is vendored (protoc-bin-vendored), and aws-lc-sys builds with the image's C compiler.
# Cargo loads every workspace member's manifest, so loadtest/ comes too (not built here).
COPY Cargo.toml Cargo.lock build.rs ./
COPY src/ src/
COPY proto/ proto/
COPY auth-service/ auth-service/
COPY authctl/ authctl/
COPY demo-services/ demo-services/
COPY loadtest/ loadtest/

ENV CARGO_TERM_COLOR=never \
    CARGO_PROFILE_RELEASE_STRIP=symbols
# The registry and target/ live in cache mounts, so a rebuild after a code change recompiles only
# what changed instead of every dependency; the binaries are copied out of the mount in the same
# step (a cache mount is not part of the image).
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
        -p auth-service --bin auth-service \
        -p authctl --bin authctl \
        -p demo-services --bin order-service --bin payment-service \
    && mkdir -p /out \
    && cp target/release/auth-service target/release/authctl \
        target/release/order-service target/release/payment-service /out/

# --- runtime: the binaries, a non-root user, nothing else ----------------------------------
FROM debian:trixie-slim AS runtime

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/auth-service \
    && chown app:app /var/lib/auth-service

COPY --from=builder /out/ /usr/local/bin/

# In a container, listen on every interface: gRPC on 50051, HTTP (the JWKS URL, /healthz,
# /readyz, /metrics) on 8080. SQLite (used when DATABASE_URL is unset) goes to a directory the
# app user owns. Plain log lines without colour codes.
ENV AUTH_LISTEN_ADDR=0.0.0.0:50051 \
    AUTH_HTTP_ADDR=0.0.0.0:8080 \
    AUTH_DATA_DIR=/var/lib/auth-service \
    ORDER_LISTEN_ADDR=0.0.0.0:50061 \
    PAYMENT_LISTEN_ADDR=0.0.0.0:50062 \
    NO_COLOR=1

USER 10001:10001
WORKDIR /var/lib/auth-service
EXPOSE 50051 8080 50061 50062

# No HEALTHCHECK here: the image also runs the demo services. Where auth-service runs, probe it
# with `auth-service healthcheck` (readiness) and `auth-service healthcheck --live` (liveness),
# as docker-compose.yml and deploy/kubernetes/ do.

# The services handle SIGTERM (health turns NOT_SERVING, then a bounded drain).
STOPSIGNAL SIGTERM
CMD ["auth-service"]
