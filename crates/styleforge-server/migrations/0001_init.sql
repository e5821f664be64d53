-- styleforge server schema. Portable SQL (SQLite and PostgreSQL): text identifiers, BIGINT
-- timestamps in milliseconds since the Unix epoch, BOOLEAN flags, no engine-specific types.

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    rate_limit_per_minute BIGINT,
    quota_bytes BIGINT,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);

CREATE TABLE images (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    format TEXT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX images_owner ON images (owner, kind, created_at);
CREATE INDEX images_sha256 ON images (sha256);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    state TEXT NOT NULL,
    method TEXT NOT NULL,
    style TEXT NOT NULL,
    image_id TEXT NOT NULL,
    spec TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    heartbeat_at BIGINT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    fraction DOUBLE PRECISION NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT 'queued',
    iteration BIGINT,
    iterations BIGINT,
    eta_ms BIGINT,
    error_code TEXT,
    error_message TEXT,
    result_id TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_claim ON jobs (state, created_at);
CREATE INDEX jobs_owner ON jobs (owner, created_at);

CREATE TABLE results (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    job_id TEXT NOT NULL,
    image_id TEXT NOT NULL,
    style TEXT NOT NULL,
    method TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    format TEXT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    timings TEXT NOT NULL,
    content_loss DOUBLE PRECISION,
    style_loss DOUBLE PRECISION,
    created_at BIGINT NOT NULL
);
CREATE INDEX results_owner ON results (owner, created_at);
CREATE INDEX results_sha256 ON results (sha256);

CREATE TABLE ratings (
    result_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    style TEXT NOT NULL,
    method TEXT NOT NULL,
    score BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (result_id, owner)
);
CREATE INDEX ratings_style ON ratings (style, method);
