-- Each logged attempt names its job's type, so the error report groups the
-- recent failed attempts by type without looking each job up in `jobs` (a
-- look-up per job in every partition that can hold it).

ALTER TABLE job_executions ADD COLUMN job_type text;

UPDATE job_executions e SET job_type = j.job_type FROM jobs j WHERE j.id = e.job_id;

-- Attempts whose job is gone were already invisible: every report reads them
-- with their job.
DELETE FROM job_executions WHERE job_type IS NULL;

ALTER TABLE job_executions ALTER COLUMN job_type SET NOT NULL;
