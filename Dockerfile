# syntax=docker/dockerfile:1
# chatd, the Parley server, and chatctl beside it. Built by
# docker-compose.yml; on its own:
#   docker build -t parley-chatd .
# Base images are pinned; cmd/chatd's compose test checks that they are.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/chatd ./cmd/chatd && \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/chatctl ./cmd/chatctl

# Two static binaries need no distribution: only CA certificates, for
# https calls (an identity provider's JWKS, OpenAI, Qdrant over TLS), which
# come from the pinned build image.
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/chatd /out/chatctl /usr/local/bin/
# The sample corpus, for: docker compose exec chatd chatctl ingest --prefix housing/ /corpus/housing ...
COPY --from=build /src/docs/corpus /corpus
# nobody:nogroup by number: scratch has no /etc/passwd.
USER 65534:65534
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/chatd"]
