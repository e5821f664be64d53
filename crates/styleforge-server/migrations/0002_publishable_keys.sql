-- Publishable keys (`pk_...`): keys meant to be embedded in web pages, usable only from the
-- origins listed for them and only for listing styles, uploading images and stylising.
-- Portable SQL (SQLite and PostgreSQL).

ALTER TABLE api_keys ADD COLUMN kind TEXT NOT NULL DEFAULT 'secret';

CREATE TABLE api_key_origins (
    key_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    PRIMARY KEY (key_id, origin)
);
CREATE INDEX api_key_origins_origin ON api_key_origins (origin);
