-- Schema version 1: every table of hookd's cluster mode (docs/cluster.md, "Tables").
-- Ids are the 24 lowercase hex digits the API shows; times are timestamptz (hookd keeps
-- milliseconds); sealed values are AES-256-GCM under the master key (nonce | ciphertext | tag).
-- Applied once, in one transaction, by `hookd migrate` or a node's start; never edited after a
-- release: a change is a new file.

CREATE DOMAIN hookd_id AS text CHECK (VALUE ~ '^[0-9a-f]{24}$');

CREATE TABLE organizations (
  id         hookd_id PRIMARY KEY,
  name       text NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);

CREATE TABLE projects (
  id              hookd_id PRIMARY KEY,
  organization_id hookd_id NOT NULL REFERENCES organizations (id) DEFERRABLE INITIALLY DEFERRED,
  name            text NOT NULL,
  slug            text NOT NULL,
  description     text,
  status          text NOT NULL CHECK (status IN ('draft', 'active', 'archived')),
  app_icon_url    text,
  created_at      timestamptz NOT NULL,
  updated_at      timestamptz NOT NULL,
  CONSTRAINT projects_slug_unique UNIQUE (organization_id, slug)
);

CREATE TABLE tokens (
  id         hookd_id PRIMARY KEY,
  name       text NOT NULL,
  scopes     text[] NOT NULL,
  digest     bytea NOT NULL CHECK (octet_length(digest) = 32),
  created_at timestamptz NOT NULL,
  CONSTRAINT tokens_digest_unique UNIQUE (digest)
);

-- The organizations a token may act on, in the order the token lists them.
CREATE TABLE token_organizations (
  token_id        hookd_id NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
  organization_id hookd_id NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
  position        integer NOT NULL,
  PRIMARY KEY (token_id, organization_id)
);
CREATE INDEX token_organizations_organization ON token_organizations (organization_id);

CREATE TABLE webhooks (
  id                      hookd_id PRIMARY KEY,
  organization_id         hookd_id NOT NULL REFERENCES organizations (id) DEFERRABLE INITIALLY DEFERRED,
  project_id              hookd_id NOT NULL REFERENCES projects (id) DEFERRABLE INITIALLY DEFERRED,
  name                    text NOT NULL,
  url                     text NOT NULL,
  active                  boolean NOT NULL,
  events                  text[] NOT NULL,
  signing                 text NOT NULL CHECK (signing IN ('v1', 'v1a')),
  secret_sealed           bytea NOT NULL,
  headers_sealed          bytea NOT NULL,
  previous_secrets_sealed bytea,
  filter                  json CHECK (filter IS NULL OR json_typeof(filter) = 'object'),
  rate_limit              integer CHECK (rate_limit BETWEEN 1 AND 10000),
  disabled_reason         text,
  disabled_at             timestamptz,
  created_at              timestamptz NOT NULL,
  updated_at              timestamptz NOT NULL
);
CREATE INDEX webhooks_project ON webhooks (project_id);
CREATE INDEX webhooks_organization ON webhooks (organization_id);

-- Ingest idempotency: the first answer for a key, per token, until it expires.
CREATE TABLE idempotency_keys (
  token_id    hookd_id NOT NULL,
  key         text NOT NULL,
  body_hash   bytea NOT NULL CHECK (octet_length(body_hash) = 32),
  event_id    hookd_id NOT NULL,
  type        text NOT NULL,
  event_time  timestamptz NOT NULL,
  deliveries  integer NOT NULL,
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (token_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Events and attempts are partitioned by day, so that retention drops whole partitions.
-- hookd_day_partition creates one day's partition; rows of days without one land in the
-- default partition.
CREATE TABLE events (
  id              hookd_id NOT NULL,
  organization_id hookd_id NOT NULL,
  project_id      hookd_id NOT NULL,
  type            text NOT NULL,
  data            text NOT NULL,
  event_time      timestamptz NOT NULL,
  subject         text,
  ordering_key    text,
  traceparent     text,
  created_at      timestamptz NOT NULL,
  PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE events_default PARTITION OF events DEFAULT;
CREATE INDEX events_project ON events (project_id, created_at);
CREATE INDEX events_subject ON events (project_id, subject) WHERE subject IS NOT NULL;

CREATE TABLE deliveries (
  id               hookd_id PRIMARY KEY,
  event_id         hookd_id NOT NULL,
  event_created_at timestamptz NOT NULL,
  webhook_id       hookd_id NOT NULL,
  project_id       hookd_id NOT NULL,
  type             text NOT NULL,
  status           text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
  attempts         integer NOT NULL DEFAULT 0,
  schedule_start   integer NOT NULL DEFAULT 0,
  due_at           timestamptz,
  reason           text,
  ordering_key     text,
  test             boolean NOT NULL DEFAULT false,
  lease_owner      text,
  lease_until      timestamptz,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  CHECK ((status = 'pending') = (due_at IS NOT NULL))
);
-- What the schedulers poll: pending deliveries by due time.
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE status = 'pending';
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, created_at);
CREATE INDEX deliveries_project ON deliveries (project_id, created_at);
CREATE INDEX deliveries_event ON deliveries (event_id);

CREATE TABLE attempts (
  delivery_id hookd_id NOT NULL,
  number      integer NOT NULL CHECK (number >= 1),
  at          timestamptz NOT NULL,
  duration_ms integer NOT NULL,
  status_code integer,
  response    text NOT NULL,
  error       text,
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (delivery_id, number, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE attempts_default PARTITION OF attempts DEFAULT;

-- The change feed: one row per catalog change, in commit order; nodes read the rows past the
-- last they saw when notified on channel hookd_changes.
CREATE TABLE changes (
  seq    bigserial PRIMARY KEY,
  entity text NOT NULL CHECK (entity IN ('organization', 'project', 'token', 'webhook')),
  id     hookd_id NOT NULL,
  at     timestamptz NOT NULL DEFAULT now()
);

-- Creates the partition of `parent` (events or attempts) for `day` (a UTC day), named <parent>_YYYYMMDD,
-- unless it exists. Must run before rows of that day arrive: the default partition may not hold
-- rows of a day that gets its own partition.
CREATE FUNCTION hookd_day_partition(parent text, day date) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                 parent || '_' || to_char(day, 'YYYYMMDD'), parent,
                 day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
END
$$;
