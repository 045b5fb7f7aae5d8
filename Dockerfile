# syntax=docker/dockerfile:1
# chatd, the Parley server. Built by docker-compose.yml; on its own:
#   docker build -t parley-chatd .

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/chatd ./cmd/chatd && \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/chatctl ./cmd/chatctl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/chatd /out/chatctl /usr/local/bin/
# The sample corpus, for: docker compose exec chatd chatctl ingest --prefix housing/ /corpus/housing ...
COPY --from=build /src/docs/corpus /corpus
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/chatd"]
