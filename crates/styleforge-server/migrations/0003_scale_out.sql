-- Scale-out: workers in other processes and on other machines sharing one database.
-- Portable SQL (SQLite and PostgreSQL).

-- What a job needs from its worker: `any`, or `gpu` (claimed only by GPU workers).
ALTER TABLE jobs ADD COLUMN device TEXT NOT NULL DEFAULT 'any';

-- A job has at most one result, whichever worker stores it.
CREATE UNIQUE INDEX results_job ON results (job_id);

-- Blobs about to be stored: written before the blob, removed when a row references it, so the
-- blob of a process that died in between can be found and collected.
CREATE TABLE blob_intents (
    sha256 TEXT NOT NULL,
    token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (sha256, token)
);
CREATE INDEX blob_intents_created ON blob_intents (created_at);
