# Sluice container image: a multi-stage build on Debian 12.
#
#   docker build -t sluice .                      # the gateway (default target)
#   docker build -t sluice-mock --target mock .   # the bundled mock provider, for trials
#   docker run -p 8080:8080 -v "$PWD/sluice.yaml:/etc/sluice/sluice.yaml:ro" -e OPENAI_API_KEY sluice
#
# The configuration is read from /etc/sluice/sluice.yaml (SLUICE_CONFIG); mount yours over it.
# The image ships config/sluice.yaml, which expects the mock provider (MOCK_BASE_URL).
# Runs as the unprivileged user `sluice`; SIGTERM drains open requests and streams
# (server.drain_timeout_ms), SIGHUP reloads the mounted file. See docs/operations.md.

ARG DEBIAN_IMAGE=debian:12-slim

# --- build: compilers and -dev packages; nothing of this stage reaches the image ---------------
FROM ${DEBIAN_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config \
        libevent-dev libcurl4-openssl-dev libssl-dev libjansson-dev libyaml-dev libhiredis-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY include ./include
COPY src ./src
COPY mock ./mock
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" --target sluice sluice-mock \
 && strip /build/sluice /build/sluice-mock \
 && /build/sluice --version

# --- runtime base: the shared libraries only, and the user ------------------------------------
FROM ${DEBIAN_IMAGE} AS runtime-base
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libevent-2.1-7 libevent-pthreads-2.1-7 libcurl4 libssl3 libjansson4 libyaml-0-2 libhiredis0.14 \
        ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 sluice \
 && useradd --system --uid 10001 --gid sluice --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin sluice

# --- mock: sluice-mock alone (docker build --target mock) -------------------------------------
FROM runtime-base AS mock
COPY --from=build /build/sluice-mock /usr/local/bin/sluice-mock
USER sluice:sluice
EXPOSE 9001
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sluice-mock", "--listen", "0.0.0.0:9001", "--quiet"]

# --- the gateway (default target) -------------------------------------------------------------
FROM runtime-base AS sluice
COPY --from=build /build/sluice /usr/local/bin/sluice
COPY config/sluice.yaml /etc/sluice/sluice.yaml
ENV SLUICE_CONFIG=/etc/sluice/sluice.yaml \
    SLUICE_LISTEN=0.0.0.0:8080
USER sluice:sluice
EXPOSE 8080
STOPSIGNAL SIGTERM
# /healthz answers while the process is alive (/readyz adds "config loaded, not draining").
# The port follows SLUICE_LISTEN, which the shipped config uses for server.listen.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:${SLUICE_LISTEN##*:}/healthz" || exit 1
# sluice handles SIGTERM/SIGINT/SIGHUP itself and starts no child processes, so it can run as
# PID 1 without an init; `docker run --init` does no harm either.
ENTRYPOINT ["/usr/local/bin/sluice"]
