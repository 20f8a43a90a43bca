// Starts the Upstash REST stand-in from @humanwhocodes/upstash-redis-server on 127.0.0.1.
//
// The package's own `upstash-redis-server` binary (version 1.0.0) listens on every interface
// and has no setting for the address, so this launcher serves the same app on loopback only.
// Environment: URS_TOKEN (required, the Bearer token), PORT (required), REDIS_URL (required).

import { serve } from "@hono/node-server";
import { createApp } from "@humanwhocodes/upstash-redis-server";

function requireEnv(name) {
    const value = process.env[name];
    if (!value) {
        console.error(`upstash-server: environment variable ${name} is missing or empty`);
        process.exit(2);
    }
    return value;
}

const token = requireEnv("URS_TOKEN");
const redisUrl = requireEnv("REDIS_URL");
const port = Number.parseInt(requireEnv("PORT"), 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    console.error(`upstash-server: invalid PORT "${process.env.PORT}"; expected a TCP port from 1 to 65535`);
    process.exit(2);
}

const app = createApp({ token, redisUrl });
const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port }, (info) => {
    console.log(`upstash-server: listening on http://${info.address}:${info.port}, Redis at ${redisUrl}`);
});

server.on("error", (error) => {
    console.error(`upstash-server: failed to listen on 127.0.0.1:${port}: ${error.message}`);
    process.exit(1);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
    process.on(signal, () => {
        console.log(`upstash-server: received ${signal}, stopping`);
        process.exit(0);
    });
}
