#!/usr/bin/env node
// A webhook receiver that verifies every request the way a receiver of hookd's deliveries would
// (docs/delivery.md, "Signing"): `v1` HMAC entries with the npm `standardwebhooks` library, `v1a`
// Ed25519 entries with Node's own `crypto.verify`. Used by tests/http/outbound/standardwebhooks_test.cpp
// and tests/http/outbound/signing_e2e_test.cpp.
//
//   node standardwebhooks-receiver.js (--secret whsec_... | --public-key whpk_...)...
//                                     [--max-seconds 120]
//
// Each --secret (checked with `new Webhook(secret).verify(body, headers)`) and --public-key
// (each "v1a,<sig>" entry of webhook-signature checked with crypto.verify over
// "{webhook-id}.{webhook-timestamp}.{body}", the timestamp within 5 minutes) is one key, in the
// order given. Listens on 127.0.0.1, port 0 (a free one). Prints one JSON line per event on stdout:
//   {"event":"listening","port":N}
//   {"event":"request","path":...,"id":...,"timestamp":...,"signature":...,"verified":true|false,
//    "results":[true|false per key],"error":...,"type":...,"data":...}
// `verified` is true when any key verifies. Answers 204 to a request that verifies and 401 to one
// that does not. Exits on SIGTERM/SIGINT, and by itself after --max-seconds (default 120) so that
// it never outlives a test.
"use strict";

const crypto = require("node:crypto");
const http = require("node:http");
const { Webhook } = require("standardwebhooks");

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

// An Ed25519 public key as Node takes it: the 32 raw bytes after the fixed DER SubjectPublicKeyInfo
// prefix of RFC 8410 (algorithm id 1.3.101.112).
const kEd25519SpkiPrefix = Buffer.from("302a300506032b6570032100", "hex");
const kToleranceSeconds = 5 * 60;

const keys = [];
for (let i = 2; i + 1 < process.argv.length; ++i) {
  const name = process.argv[i];
  const value = process.argv[i + 1];
  if (name === "--secret") {
    const webhook = new Webhook(value);
    keys.push((body, headers) => {
      webhook.verify(body, headers);  // throws when no v1 entry matches
    });
    ++i;
  } else if (name === "--public-key") {
    if (!value.startsWith("whpk_")) throw new Error("--public-key must start with whpk_");
    const raw = Buffer.from(value.slice(5), "base64");
    const key = crypto.createPublicKey({
      key: Buffer.concat([kEd25519SpkiPrefix, raw]),
      format: "der",
      type: "spki",
    });
    keys.push((body, headers) => {
      const id = headers["webhook-id"];
      const ts = headers["webhook-timestamp"];
      const header = headers["webhook-signature"];
      if (!id || !ts || !header) throw new Error("Missing required headers");
      if (!/^[0-9]+$/.test(ts)) throw new Error("Invalid timestamp");
      if (Math.abs(Math.floor(Date.now() / 1000) - Number(ts)) > kToleranceSeconds) {
        throw new Error("Timestamp out of tolerance");
      }
      const content = Buffer.from(`${id}.${ts}.${body}`, "utf8");
      for (const entry of header.split(" ")) {
        const [version, signature] = entry.split(",");
        if (version !== "v1a" || !signature) continue;
        if (crypto.verify(null, content, key, Buffer.from(signature, "base64"))) return;
      }
      throw new Error("No matching v1a signature found");
    });
    ++i;
  }
}
if (keys.length === 0) {
  process.stderr.write(
      "usage: standardwebhooks-receiver.js (--secret whsec_... | --public-key whpk_...)... " +
      "[--max-seconds N]\n");
  process.exit(2);
}
const maxSeconds = Number(option("--max-seconds", "120"));
const kMaxBodyBytes = 1024 * 1024;

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
      signature: req.headers["webhook-signature"] ?? null,
      verified: false,
      results: [],
      error: null,
      type: null,
      data: null,
    };
    const errors = [];
    // Node lowercases header names; both checks look them up by their lowercase names.
    for (const check of keys) {
      try {
        check(body, req.headers);
        entry.results.push(true);
      } catch (e) {
        entry.results.push(false);
        errors.push(String(e && e.message ? e.message : e));
      }
    }
    entry.verified = entry.results.includes(true);
    if (entry.verified) {
      const payload = JSON.parse(body);
      entry.type = payload.type ?? null;
      entry.data = payload.data ?? null;
    } else {
      entry.error = errors.join("; ");
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
