# syntax=docker/dockerfile:1
# Image of the Drawbridge package registry (cmd/drawbridge): HTTPS on :8080 (docs/drawbridge.md).
# Build from the repository root:
#
#   docker build -f deploy/images/drawbridge.Dockerfile -t enarx-drawbridge .
#
# The binary is static and built reproducibly by deploy/images/gobuild.sh
# (the same script deploy/images' test runs twice and compares); the
# runtime image is distroless static (no shell, no libc), running as the
# distroless nonroot user (65532). Pin both base images by digest in a
# release pipeline (docker buildx imagetools inspect <image> prints it).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN sh deploy/images/gobuild.sh ./cmd/drawbridge /out/drawbridge

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/drawbridge /usr/local/bin/drawbridge
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/drawbridge"]
