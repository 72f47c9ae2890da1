# syntax=docker/dockerfile:1
# One image per binary:
#   docker build --build-arg TARGET=services/store/cmd/store -t mailroom/store .
#   docker build --build-arg TARGET=gateway/cmd/gateway -t mailroom/gateway .
# (No Docker engine runs on the build machines; this file is not exercised by CI.)
FROM golang:1.26 AS build
ARG TARGET
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/root/.cache/go-build --mount=type=cache,target=/go/pkg/mod \
    CGO_ENABLED=0 go build -trimpath -ldflags=-s -o /out/app ./${TARGET}

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/app /app
USER 65532:65532
ENTRYPOINT ["/app"]
