# Build the manager as a static binary, then ship it on distroless, nonroot.
# `make image` builds the same image without Docker (hack/tools/image): the
# same binary at /manager, user 65532, CA certificates, entrypoint /manager.
FROM golang:1.26 AS builder
ARG TARGETOS=linux
ARG TARGETARCH=amd64
WORKDIR /workspace
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/
COPY senders/ senders/
# timetzdata: quiet hours need time zones whatever the base image holds.
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -tags timetzdata -ldflags "-s -w" -o manager ./cmd

FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager .
USER 65532:65532
ENTRYPOINT ["/manager"]
