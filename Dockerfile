# streamguard — multi-stage build.
#   docker build -t streamguard .
#   docker run --rm streamguard migrate          # apply migrations (init step), then exit
#   docker run -p 127.0.0.1:8080:8080 -e DATABASE_URL=... -e STREAMGUARD_TOKENS_FILE=... streamguard
# The runtime image has no shell and no curl: HEALTHCHECK runs `streamguard healthcheck`.

# --- build ---------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src

# Dependencies first, in their own layer: a stub crate with the real manifests, so this
# (slow) layer is rebuilt only when Cargo.toml or Cargo.lock change. The stub test
# and bench files are there because Cargo.toml declares the `api` test and `job_table`
# bench targets, and cargo refuses a manifest whose declared targets are missing.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/api benches \
 && echo 'fn main() {}' > src/main.rs \
 && echo '//! stub' > src/lib.rs \
 && echo '' > tests/api/main.rs \
 && echo 'fn main() {}' > benches/job_table.rs \
 && cargo build --release --locked --bin streamguard \
 && rm -rf src

# The service itself. sqlx embeds migrations/ at compile time.
COPY src ./src
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --bin streamguard \
 && cp target/release/streamguard /streamguard

# --- run -----------------------------------------------------------------------------
# distroless/cc: glibc and CA certificates (for BigQuery over TLS), no shell, ~25 MB;
# the :nonroot tag has user nonroot, uid 65532 (named numerically below).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /streamguard /usr/local/bin/streamguard
ENV STREAMGUARD_LISTEN=0.0.0.0:8080 \
    STREAMGUARD_LOG_FORMAT=json \
    STREAMGUARD_HEALTHCHECK_URL=http://127.0.0.1:8080/healthz
EXPOSE 8080
USER 65532:65532
HEALTHCHECK --interval=15s --timeout=7s --start-period=20s --retries=3 \
  CMD ["/usr/local/bin/streamguard", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/streamguard"]
CMD ["serve"]
