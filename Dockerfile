# syntax=docker/dockerfile:1
# The ECS server and Config Studio in one small image, built in three stages:
# Studio (Node), the `ecs` binary (Rust), and a distroless runtime that runs as
# an unprivileged user. Build: docker build -t ecs .
# Run: docker run -e ECS_NATS_URL=... -e ECS_DATABASE_URL=... -e ECS_ADMIN_TOKEN_FILE=... ecs

FROM node:22-bookworm-slim AS studio
WORKDIR /src/studio
COPY studio/package.json studio/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY studio/ ./
RUN npm run build

FROM rust:1.88-bookworm AS server
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ecs-api --bin ecs \
    && cp target/release/ecs /usr/local/bin/ecs

# glibc and CA certificates, no shell, no package manager; uid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=server /usr/local/bin/ecs /usr/local/bin/ecs
COPY --from=studio /src/studio/dist /usr/share/ecs/studio
ENV ECS_LISTEN=0.0.0.0:8080 \
    ECS_STUDIO_DIR=/usr/share/ecs/studio
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/ecs"]
CMD ["serve"]
