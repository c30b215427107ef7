# syntax=docker/dockerfile:1
# Image of the Steward attestation CA (cmd/steward): plain HTTP on :3000 (docs/steward.md).
# Build from the repository root:
#
#   docker build -f deploy/images/steward.Dockerfile -t enarx-steward .
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
RUN sh deploy/images/gobuild.sh ./cmd/steward /out/steward

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/steward /usr/local/bin/steward
USER 65532:65532
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/steward"]
