-- Avatars: how a result's photo was framed (the face box used, the square crop, whether a face
-- was found), as JSON; NULL for other results. Portable SQL (SQLite and PostgreSQL).
ALTER TABLE results ADD COLUMN avatar TEXT;
