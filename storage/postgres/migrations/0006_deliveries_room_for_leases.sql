-- Schema version 6: room in the queue's pages for the lease updates (docs/cluster.md, "Claims and
-- leases").
--
-- A claim and a renewal change a pending delivery's lease_owner and lease_until, which no index
-- holds: PostgreSQL can write the new row version in the same page without touching the
-- indexes (a heap-only tuple), but only where the page has room. Pages filled to the brim by
-- ingest had none, so every claimed delivery cost a new entry in each of the table's six
-- indexes. Pages filled to 70% keep room for it. It applies to the pages written from now on.

ALTER TABLE deliveries SET (fillfactor = 70);
