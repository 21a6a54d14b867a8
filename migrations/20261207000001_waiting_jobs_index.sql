-- Waiting jobs per queue in id order: the workers check them against Redis a page
-- at a time to find ids Redis lost while keeping its generation marker (failover
-- to a lagging replica, an older snapshot, eviction). Partial, so it holds only
-- waiting jobs: its size follows the backlog, not the history, and a claim or a
-- completion adds no entry to it.
CREATE INDEX jobs_waiting_idx ON jobs (queue_name, id)
    WHERE status IN ('PENDING', 'DELAYED', 'RETRYING');
