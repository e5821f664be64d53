-- Videos and animations as uploads: what an image row holds (`image`, `animation` or `video`),
-- with the frame count and duration read from the container. Portable SQL (SQLite and
-- PostgreSQL).
ALTER TABLE images ADD COLUMN media TEXT NOT NULL DEFAULT 'image';
ALTER TABLE images ADD COLUMN frames BIGINT;
ALTER TABLE images ADD COLUMN duration_ms BIGINT;
