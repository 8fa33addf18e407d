#!/usr/bin/env node
// A webhook receiver that verifies every request with the npm `standardwebhooks` library, the way
// a receiver of hookd's deliveries would (docs/openapi.yaml). Used by tests/http/outbound/standardwebhooks_test.cpp.
//
//   node standardwebhooks-receiver.js --secret whsec_... [--max-seconds 120]
//
// Listens on 127.0.0.1, port 0 (a free one). Prints one JSON line per event on stdout:
//   {"event":"listening","port":N}
//   {"event":"request","path":...,"id":...,"timestamp":...,"verified":true|false,"error":...,
//    "type":...,"data":...}
// Answers 204 to a request that verifies and 401 to one that does not. Exits on SIGTERM/SIGINT,
// and by itself after --max-seconds (default 120) so that it never outlives a test.
"use strict";

const http = require("node:http");
const { Webhook } = require("standardwebhooks");

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const secret = option("--secret");
if (!secret) {
  process.stderr.write("usage: standardwebhooks-receiver.js --secret whsec_... [--max-seconds N]\n");
  process.exit(2);
}
const maxSeconds = Number(option("--max-seconds", "120"));
const kMaxBodyBytes = 1024 * 1024;
const webhook = new Webhook(secret);

function line(object) {
  process.stdout.write(JSON.stringify(object) + "\n");
}

const server = http.createServer((req, res) => {
  const chunks = [];
  let size = 0;
  req.on("data", (chunk) => {
    size += chunk.length;
    if (size > kMaxBodyBytes) {
      res.writeHead(413).end();
      req.destroy();
      return;
    }
    chunks.push(chunk);
  });
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    const entry = {
      event: "request",
      path: req.url,
      id: req.headers["webhook-id"] ?? null,
      timestamp: req.headers["webhook-timestamp"] ?? null,
      verified: false,
      error: null,
      type: null,
      data: null,
    };
    try {
      // Node lowercases header names; verify() looks them up by their lowercase names.
      const payload = webhook.verify(body, req.headers);
      entry.verified = true;
      entry.type = payload.type ?? null;
      entry.data = payload.data ?? null;
    } catch (e) {
      entry.error = String(e && e.message ? e.message : e);
    }
    line(entry);
    res.writeHead(entry.verified ? 204 : 401).end();
  });
});

server.listen(0, "127.0.0.1", () => {
  line({ event: "listening", port: server.address().port });
});

function stop() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
setTimeout(stop, maxSeconds * 1000).unref();
