# syntax=docker/dockerfile:1
# The AWS Batch worker image: `tandem worker` on a slim Debian base, built in a
# separate stage so the image holds the binary and CA certificates, not a toolchain.
# The pipeline stack (infra/) builds it with `cdk deploy` and pushes it to ECR.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p tandem-cli \
 && cp target/release/tandem /usr/local/bin/tandem

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 1000 --user-group --no-create-home --shell /usr/sbin/nologin tandem
COPY --from=build /usr/local/bin/tandem /usr/local/bin/tandem
# The same non-root user as the EFS access point's POSIX user.
USER 1000:1000
ENTRYPOINT ["/usr/local/bin/tandem"]
CMD ["worker"]
