# walvault's container image: wal-push, wal-fetch and walvault in /usr/local/bin of a small
# Debian 12 image, run as an unprivileged user (uid 10001).
#
#   docker build --build-arg WALVAULT_GIT_REV="$(git rev-parse --short=12 HEAD)" -t walvault .
#   docker run --rm walvault --version
#
# deploy/docker/Dockerfile.postgres copies the three binaries from this image into PostgreSQL's
# (for archive_command and restore_command); docker-compose.yml builds both. Both files are
# linted with hadolint, and the commands docker-compose.yml runs with them are exercised, outside
# containers, by tests/pg-integration/deploy_compose.rs.

# The toolchain of rust-toolchain.toml (the test above checks that they agree), on Debian 12
# like the runtime stage, so that the binaries link against the glibc they run with.
# rust-toolchain.toml itself is not copied in: it would make rustup download rustfmt and clippy.
FROM rust:1.95.0-bookworm AS build
WORKDIR /src

# The dependencies first, in a layer of their own that only a change of Cargo.toml, Cargo.lock
# or build.rs rebuilds. Stubs stand in for the sources (cargo wants every target that
# Cargo.toml lists to exist, also those not built here).
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src bin bench tests/pg-integration \
    && touch src/lib.rs tests/pg-integration/main.rs \
    && for stub in bin/wal-push bin/wal-fetch bin/walvault bench/latency_proxy; do \
         echo 'fn main() {}' > "$stub.rs"; \
       done \
    && cargo build --release --locked --bin walvault --bin wal-push --bin wal-fetch

# Then walvault itself. .git is not in the build context (see .dockerignore): the revision that
# `--version` shows comes in as a build argument, read by build.rs.
COPY src src
COPY bin bin
ARG WALVAULT_GIT_REV=unknown
ENV WALVAULT_GIT_REV=${WALVAULT_GIT_REV}
# touch: COPY keeps the files' own times, which may be older than the stubs' build.
RUN touch src/lib.rs bin/*.rs \
    && cargo build --release --locked --bin walvault --bin wal-push --bin wal-fetch \
    && ./target/release/walvault --version

FROM debian:bookworm-20260803-slim AS runtime
# ca-certificates: TLS to the object stores and to PostgreSQL. Not pinned to a package version
# on purpose (DL3008): Debian's archive keeps only the newest version of a package, so a pin
# breaks the build at the package's next security update; the base image tag is the pin.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/walvault --create-home \
         --shell /usr/sbin/nologin walvault
COPY --from=build /src/target/release/walvault /src/target/release/wal-push /src/target/release/wal-fetch /usr/local/bin/
# Numeric, so that a runtime can tell it is not root without reading /etc/passwd
# (Kubernetes' runAsNonRoot).
USER 10001:10001
WORKDIR /var/lib/walvault
ENTRYPOINT ["walvault"]
CMD ["--help"]
