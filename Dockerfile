# MiniDB server image: `docker build -t minidb:0.1.0 .`, then
# `docker run -p 50051:50051 -p 7205:7205 -v minidb-data:/data minidb:0.1.0`.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so that changing MiniDB's own code reuses their layer.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
RUN mkdir -p src clients/cli \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs && cp src/main.rs clients/cli/main.rs \
    && cargo build --release --locked \
    && rm -rf src clients
COPY src src
COPY clients/cli clients/cli
# The stub build left fresh fingerprints behind: touch the real sources so they are rebuilt.
RUN touch src/main.rs src/lib.rs clients/cli/main.rs \
    && cargo build --release --locked --bin minidb --bin minidb-cli

FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 minidb \
    && useradd --system --uid 10001 --gid minidb --home-dir /data --shell /usr/sbin/nologin minidb \
    && mkdir /data && chown minidb:minidb /data
COPY --from=build /src/target/release/minidb /src/target/release/minidb-cli /usr/local/bin/
USER 10001:10001
ENV MINIDB_DATA=/data \
    MINIDB_FLIGHT_ADDR=0.0.0.0:50051 \
    MINIDB_TEXT_ADDR=0.0.0.0:7205
EXPOSE 50051 7205 9205
VOLUME ["/data"]
ENTRYPOINT ["minidb"]
CMD ["serve"]
