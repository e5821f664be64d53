-- For integrators: webhooks, idempotent creation, batches and the link-signing key.
-- Portable SQL (SQLite and PostgreSQL).

-- A job's webhook: the URL and the events it asked for (comma-separated: start, progress,
-- completed); and the batch it belongs to.
ALTER TABLE jobs ADD COLUMN webhook TEXT;
ALTER TABLE jobs ADD COLUMN webhook_events TEXT;
ALTER TABLE jobs ADD COLUMN batch_id TEXT;
CREATE INDEX jobs_batch ON jobs (batch_id, created_at);

-- Webhook deliveries: one row per event, delivered in `seq` order per job. `event_key` keeps
-- an event from being recorded twice (`start`, `completed`, `progress:N`). `state` is
-- `pending` (waiting for `next_attempt_at`), `delivering` (leased by a sender until
-- `lease_expires_at`), `delivered` or `failed` (gave up). `history` is a JSON array of attempts.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event TEXT NOT NULL,
    event_key TEXT NOT NULL,
    url TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    last_status BIGINT,
    last_error TEXT,
    history TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    delivered_at BIGINT,
    UNIQUE (job_id, seq),
    UNIQUE (job_id, event_key)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_owner ON webhook_deliveries (owner, state);

-- The secret webhooks of an owner (an API key, or `anonymous`) are signed with (`whsec_...`);
-- after a rotation, deliveries are also signed with the previous secret for a day.
CREATE TABLE webhook_secrets (
    owner TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    previous_secret TEXT,
    rotated_at BIGINT
);

-- Idempotency keys: the first answer to a POST with an `Idempotency-Key`, replayed to retries.
-- `scope` is the caller (a hash of the API key, or `anonymous`); `request_hash` covers the
-- method, path and body; `state` is `pending` (the first request is running; it holds the key
-- until `locked_until`) or `done` (the answer is stored: status, headers as JSON, body in
-- base64).
CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    status BIGINT,
    headers TEXT,
    body TEXT,
    locked_until BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (scope, idem_key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);

-- Batches: many images × styles, one job per pair (jobs.batch_id).
CREATE TABLE batches (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    request TEXT NOT NULL,
    total BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX batches_owner ON batches (owner, created_at);

-- Secrets the server makes for itself on first use (the default key of signed result links),
-- shared by every process on the database.
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
