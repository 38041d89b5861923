# firstcall: build the release binary, then run it on a slim Debian.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin firstcall

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/firstcall --create-home firstcall
COPY --from=build /src/target/release/firstcall /usr/local/bin/firstcall
COPY config /etc/firstcall
WORKDIR /var/lib/firstcall
USER firstcall
ENV FIRSTCALL_CONFIG_DIR=/etc/firstcall \
    FIRSTCALL__HTTP__HOST=0.0.0.0
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
CMD ["firstcall", "serve"]
