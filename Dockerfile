# syntax=docker/dockerfile:1
# For people with Docker: the same images `make images` assembles without
# one (deploy/cmd/images), one target per binary, each a static binary
# (CGO_ENABLED=0, -trimpath) at /usr/local/bin/<name> on a base with a CA
# bundle and tzdata, user 65532, no shell, OCI labels:
#
#   docker build --target store \
#     --build-arg REVISION=$(git rev-parse HEAD) --build-arg VERSION=$(git describe --tags --always) \
#     -t mailroom/store .
#
# Targets: auth ingest classifier store gateway mailroom nats-server.
# (CI has no Docker engine and does not run this file; `make images` is the
# reference, byte for byte reproducible and checked.)
FROM golang:1.26 AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build --mount=type=cache,target=/go/pkg/mod \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/ \
      ./services/auth/cmd/auth ./services/ingest/cmd/ingest ./services/classifier/cmd/classifier \
      ./services/store/cmd/store ./gateway/cmd/gateway ./cmd/mailroom github.com/nats-io/nats-server/v2

# distroless/static: CA certificates, tzdata, /etc/passwd with nonroot
# (65532), no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot AS base
ARG SOURCE=https://github.com/mailroom/mailroom
ARG REVISION=unknown
ARG VERSION=dev
LABEL org.opencontainers.image.source=$SOURCE \
      org.opencontainers.image.revision=$REVISION \
      org.opencontainers.image.version=$VERSION
USER 65532:65532

FROM base AS auth
COPY --from=build /out/auth /usr/local/bin/auth
ENTRYPOINT ["/usr/local/bin/auth"]

FROM base AS ingest
COPY --from=build /out/ingest /usr/local/bin/ingest
ENTRYPOINT ["/usr/local/bin/ingest"]

FROM base AS classifier
COPY --from=build /out/classifier /usr/local/bin/classifier
ENTRYPOINT ["/usr/local/bin/classifier"]

FROM base AS store
COPY --from=build /out/store /usr/local/bin/store
ENTRYPOINT ["/usr/local/bin/store"]

FROM base AS mailroom
COPY --from=build /out/mailroom /usr/local/bin/mailroom
ENTRYPOINT ["/usr/local/bin/mailroom"]

FROM base AS nats-server
COPY --from=build /out/nats-server /usr/local/bin/nats-server
ENTRYPOINT ["/usr/local/bin/nats-server"]

# Last, so a plain `docker build .` gives the gateway.
FROM base AS gateway
COPY --from=build /out/gateway /usr/local/bin/gateway
ENTRYPOINT ["/usr/local/bin/gateway"]
