-- Schema version 2: the deliveries' tables for the delivery store (docs/cluster.md, "Deliveries,
-- leases and retention").
--
-- 1. An event and everything of it (its finished deliveries, its attempts) live in the partitions
--    of ONE day: the event's `created_at` (when it was ingested). attempts.created_at and
--    delivery_history.event_created_at hold that day's time, not the attempt's or the finish's,
--    so that dropping a day drops whole events, never half of one.
-- 2. `deliveries` holds pending deliveries only (the queue the nodes claim from); a delivery that
--    finishes moves to `delivery_history`, partitioned by its event's day like events and
--    attempts. Retention is then a DROP of whole day partitions of the three tables.
-- 3. No default partitions: a row of a day without its partition is refused (SQLSTATE 23514)
--    instead of landing in a default partition, which would then block creating that day's
--    partition. The store creates partitions days ahead and, should one still be missing, creates
--    it and retries.

CREATE TABLE delivery_history (
  id               hookd_id NOT NULL,
  event_id         hookd_id NOT NULL,
  event_created_at timestamptz NOT NULL,
  webhook_id       hookd_id NOT NULL,
  project_id       hookd_id NOT NULL,
  type             text NOT NULL,
  status           text NOT NULL CHECK (status IN ('succeeded', 'failed')),
  attempts         integer NOT NULL,
  schedule_start   integer NOT NULL,
  reason           text,
  ordering_key     text,
  test             boolean NOT NULL,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  PRIMARY KEY (id, event_created_at)
) PARTITION BY RANGE (event_created_at);
-- Lists are newest first by id (ids start with their creation second), per project or webhook.
CREATE INDEX delivery_history_project ON delivery_history (project_id, id);
CREATE INDEX delivery_history_webhook ON delivery_history (webhook_id, id);
CREATE INDEX delivery_history_event ON delivery_history (event_id);
-- Failed deliveries are few and the ones asked for (lists of failures, recovery): their own
-- small indexes, so that such a list does not walk past every succeeded delivery.
CREATE INDEX delivery_history_project_failed ON delivery_history (project_id, id)
  WHERE status = 'failed';
CREATE INDEX delivery_history_webhook_failed ON delivery_history (webhook_id, id)
  WHERE status = 'failed';

-- The queue's list indexes, by id like the history's.
DROP INDEX deliveries_webhook;
DROP INDEX deliveries_project;
CREATE INDEX deliveries_project ON deliveries (project_id, id);
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, id);

-- Rows written before this version: give every day they use a partition of its own, then move
-- them out of the default partitions (and finished deliveries out of the queue).
DO $$
DECLARE
  day date;
BEGIN
  FOR day IN
    SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM events_default
    UNION SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM attempts_default
    UNION SELECT DISTINCT (event_created_at AT TIME ZONE 'UTC')::date FROM deliveries
  LOOP
    PERFORM hookd_day_partition('delivery_history', day);
  END LOOP;
  ALTER TABLE events DETACH PARTITION events_default;
  ALTER TABLE attempts DETACH PARTITION attempts_default;
  FOR day IN
    SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM events_default
    UNION SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM attempts_default
  LOOP
    PERFORM hookd_day_partition('events', day);
    PERFORM hookd_day_partition('attempts', day);
  END LOOP;
  INSERT INTO events SELECT * FROM events_default;
  INSERT INTO attempts SELECT * FROM attempts_default;
  DROP TABLE events_default;
  DROP TABLE attempts_default;
  WITH finished AS (DELETE FROM deliveries WHERE status <> 'pending' RETURNING *)
  INSERT INTO delivery_history
    SELECT id, event_id, event_created_at, webhook_id, project_id, type, status, attempts,
           schedule_start, reason, ordering_key, test, created_at, updated_at
      FROM finished;
END
$$;

ALTER TABLE deliveries ADD CONSTRAINT deliveries_pending_only CHECK (status = 'pending');
-- Partitions are made ahead; a row of a day without one is refused (see 3. above).
COMMENT ON FUNCTION hookd_day_partition(text, date) IS
  'Creates the partition of events, attempts or delivery_history for one UTC day unless it exists';
