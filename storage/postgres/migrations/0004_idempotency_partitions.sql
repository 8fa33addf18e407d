-- Schema version 4: idempotency keys partitioned by day, so that their expiry drops whole
-- partitions like the events' retention (docs/cluster.md, "idempotency_keys").
--
-- 1. idempotency_keys is PARTITION BY RANGE (created_at), one partition per UTC day
--    (hookd_day_partition), no default partition. A unique constraint of a partitioned table
--    must include its partition key, so the primary key is (token_id, key, created_at) and no
--    longer tells two nodes taking one key apart: a key first used at 23:59 and again at 00:01
--    lands in two partitions.
-- 2. hookd_claim_keys does what ON CONFLICT (token_id, key) did: per key, in a fixed order, it
--    takes a transaction-scoped advisory lock on the key's hash, then looks the key up across
--    the live partitions and inserts it only when no live row holds it. The function is
--    VOLATILE, so each of its queries takes a fresh snapshot: a node that waited on the lock
--    sees the row the lock's previous holder committed, whichever day partition it is in.
-- 3. A key's row then stays where it was written until its day partition is dropped, once every
--    row of that day is past the TTL; an expired key used again gets a new row.

ALTER TABLE idempotency_keys RENAME TO idempotency_keys_v3;
ALTER TABLE idempotency_keys_v3 RENAME CONSTRAINT idempotency_keys_pkey TO idempotency_keys_v3_pkey;
DROP INDEX idempotency_keys_created;

CREATE TABLE idempotency_keys (
  token_id    hookd_id NOT NULL,
  key         text NOT NULL,
  body_hash   bytea NOT NULL CHECK (octet_length(body_hash) = 32),
  event_id    hookd_id NOT NULL,
  type        text NOT NULL,
  event_time  timestamptz NOT NULL,
  deliveries  integer NOT NULL,
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (token_id, key, created_at)
) PARTITION BY RANGE (created_at);

DO $$
DECLARE
  day date;
BEGIN
  FOR day IN SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM idempotency_keys_v3 LOOP
    PERFORM hookd_day_partition('idempotency_keys', day);
  END LOOP;
END
$$;
INSERT INTO idempotency_keys SELECT * FROM idempotency_keys_v3;
DROP TABLE idempotency_keys_v3;

-- Claims the idempotency keys of an ingest: `claims` is the ingest's JSON array of events (the
-- ones with a `token` have a key), `now_at` the new rows' created_at, `cutoff` the oldest
-- created_at still live (now - TTL). Returns, per key, the row that holds it: the new one, or the
-- live one another request wrote first. Keys are locked in hash order, so that two ingests with
-- keys in common cannot deadlock; advisory lock class 1752133483 ("hook") keeps these locks apart
-- from hookd's single-number locks.
CREATE FUNCTION hookd_claim_keys(claims json, now_at timestamptz, cutoff timestamptz)
RETURNS TABLE (claim_token text, claim_key text, claim_event text, claim_fingerprint text,
               claim_type text, claim_event_ms bigint, claim_deliveries integer)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  c record;
  held idempotency_keys%ROWTYPE;
BEGIN
  FOR c IN SELECT * FROM json_to_recordset(claims) AS t(token text, key text, fingerprint text,
                                                        id text, type text, event_ms bigint,
                                                        deliveries integer)
            WHERE t.token IS NOT NULL
            ORDER BY hashtext(t.token || '/' || t.key), t.token, t.key
  LOOP
    PERFORM pg_advisory_xact_lock(1752133483, hashtext(c.token || '/' || c.key));
    SELECT * INTO held FROM idempotency_keys k
     WHERE k.token_id = c.token AND k.key = c.key AND k.created_at >= cutoff
     ORDER BY k.created_at DESC LIMIT 1;
    IF NOT FOUND THEN
      INSERT INTO idempotency_keys (token_id, key, body_hash, event_id, type, event_time,
                                    deliveries, created_at)
      VALUES (c.token, c.key, decode(c.fingerprint, 'hex'), c.id, c.type,
              timestamptz 'epoch' + c.event_ms * interval '1 millisecond', c.deliveries, now_at)
      RETURNING * INTO held;
    END IF;
    claim_token := held.token_id;
    claim_key := held.key;
    claim_event := held.event_id;
    claim_fingerprint := encode(held.body_hash, 'hex');
    claim_type := held.type;
    claim_event_ms := (extract(epoch FROM held.event_time) * 1000)::bigint;
    claim_deliveries := held.deliveries;
    RETURN NEXT;
  END LOOP;
END
$$;

COMMENT ON FUNCTION hookd_day_partition(text, date) IS
  'Creates the partition of events, attempts, delivery_history or idempotency_keys for one UTC day unless it exists';
