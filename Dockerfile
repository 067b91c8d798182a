# syntax=docker/dockerfile:1
# The resetq container: `make image` (docker build -t resetq:dev .).
# A static binary (CGO_ENABLED=0) on distroless/static: no shell, no package
# manager, CA certificates and tzdata included, running as UID 65532 (nonroot).

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/resetq ./cmd/resetq

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/resetq /resetq
# Numeric, so that Kubernetes' runAsNonRoot can verify it (deploy/kubernetes uses the same UID).
USER 65532:65532
# /metrics, /healthz and /readyz (--metrics-addr :9464).
EXPOSE 9464
ENTRYPOINT ["/resetq"]
CMD ["work"]
