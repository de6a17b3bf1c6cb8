# syntax=docker/dockerfile:1.7

# Dockerfile builds payments-api into a static binary on distroless.
# Build: docker build --build-arg VERSION=$(git describe --tags --always) -t payments-api .
# The builder is pinned to the Go version in go.mod; bump both together.
FROM --platform=$BUILDPLATFORM golang:1.26.8-trixie AS build

WORKDIR /src

# The module download gets its own layer and cache mount so that a source change
# does not download every dependency again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY cmd/ cmd/
COPY internal/ internal/

# TARGETOS and TARGETARCH come from BuildKit (docker buildx --platform …); the build
# cross-compiles on the build platform instead of emulating the target.
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
    -o /out/payments-api ./cmd/payments-api

# Distroless static has no shell, no package manager and no libc: the binary is static
# and the healthcheck is a subcommand of the binary itself.
FROM gcr.io/distroless/static-debian13:nonroot

COPY --from=build /out/payments-api /payments-api

USER 65532:65532
EXPOSE 8001 9090

HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/payments-api", "healthcheck"]

ENTRYPOINT ["/payments-api"]
