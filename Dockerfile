# syntax=docker/dockerfile:1
#
# tollgate container image: docker build -t ghcr.io/tollgate-dev/tollgate:0.1.0 .
#
# Build stage: the release binary, from the committed Cargo.lock (--locked).
# The Rust version must be at least the highest rust-version among the
# locked dependencies (notify-types needs 1.91); it is an argument so CI can
# follow the toolchain the tests run on. Bookworm matches the runtime
# stage's glibc (Debian 12).
ARG RUST_VERSION=1.94
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tollgate \
    && install -D -m 0755 target/release/tollgate /out/tollgate

# Runtime stage: distroless (glibc, libgcc, CA certificates, no shell), as
# the unprivileged user 65532 (nonroot). The listeners use unprivileged
# ports, so no capability is needed; the root filesystem can be read-only.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/tollgate /usr/local/bin/tollgate
USER 65532:65532
# HTTP, HTTPS, admin (/healthz, /readyz, /metrics)
EXPOSE 8080 8443 9180
ENTRYPOINT ["tollgate"]
CMD ["run"]
