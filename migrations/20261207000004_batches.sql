-- Batch parents: a job whose handler created children waits for them without a
-- worker. Its attempt writes the children and leaves the parent RUNNING with no
-- lease (lease recovery never touches it) and `result` = the tally
-- {total, completed, failed, cancelled}. This trigger keeps the tally in the same
-- transaction as every child's move into or out of a terminal status, whoever
-- writes it (a completion, lease recovery, a cancel, an admin retry), and
-- completes the parent when the last child is terminal: COMPLETED, or CANCELLED if
-- its cancellation was requested, with progress = the share of children terminal.

CREATE FUNCTION conveyor_batch_tally() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    parents   uuid[];
    completed int[];
    failed    int[];
    cancelled int[];
BEGIN
    -- Per parent: children that became terminal minus those that stopped being so.
    SELECT array_agg(parent_id ORDER BY parent_id), array_agg(dc ORDER BY parent_id),
           array_agg(df ORDER BY parent_id), array_agg(dx ORDER BY parent_id)
    INTO parents, completed, failed, cancelled
    FROM (
        SELECT parent_id,
               COALESCE(sum(n) FILTER (WHERE status = 'COMPLETED'), 0)::int AS dc,
               COALESCE(sum(n) FILTER (WHERE status = 'FAILED'), 0)::int AS df,
               COALESCE(sum(n) FILTER (WHERE status = 'CANCELLED'), 0)::int AS dx
        FROM (
            SELECT parent_id, status, 1 AS n FROM new_jobs
            WHERE parent_id IS NOT NULL AND status IN ('COMPLETED', 'FAILED', 'CANCELLED')
            UNION ALL
            SELECT parent_id, status, -1 FROM old_jobs
            WHERE parent_id IS NOT NULL AND status IN ('COMPLETED', 'FAILED', 'CANCELLED')
        ) moves
        GROUP BY parent_id
    ) deltas
    WHERE dc <> 0 OR df <> 0 OR dx <> 0;
    IF parents IS NULL THEN
        RETURN NULL;
    END IF;
    -- Parents are locked in id order, so two writers of children of the same
    -- parents never wait for each other in a cycle.
    PERFORM 1 FROM jobs WHERE id = ANY (parents) ORDER BY id FOR UPDATE;
    UPDATE jobs p SET
        result = t.tally,
        progress = CASE WHEN t.total = 0 THEN 100 ELSE (100 * t.done / t.total)::smallint END,
        progress_message = t.done || ' of ' || t.total || ' children finished',
        status = CASE WHEN t.done < t.total THEN 'RUNNING'
                      WHEN p.cancel_requested THEN 'CANCELLED' ELSE 'COMPLETED' END,
        error = CASE WHEN t.done >= t.total AND p.cancel_requested THEN 'cancelled by request' END,
        completed_at = CASE WHEN t.done >= t.total THEN now() END
    FROM (
        SELECT d.parent_id, (j.result->>'total')::int AS total,
               jsonb_build_object(
                   'total', (j.result->>'total')::int,
                   'completed', (j.result->>'completed')::int + d.dc,
                   'failed', (j.result->>'failed')::int + d.df,
                   'cancelled', (j.result->>'cancelled')::int + d.dx) AS tally,
               (j.result->>'completed')::int + d.dc + (j.result->>'failed')::int + d.df
                   + (j.result->>'cancelled')::int + d.dx AS done
        FROM unnest(parents, completed, failed, cancelled) AS d(parent_id, dc, df, dx)
        JOIN jobs j ON j.id = d.parent_id
        -- Waiting for children: RUNNING without a lease (a claimed attempt always has one).
        WHERE j.status = 'RUNNING' AND j.lease_expires_at IS NULL AND j.result ? 'total'
    ) t
    WHERE p.id = t.parent_id;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_batch_tally AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor_batch_tally();
