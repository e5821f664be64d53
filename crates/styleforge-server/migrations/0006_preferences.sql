-- Pairwise preferences: an owner saw two results of one photo side by side and chose one. The
-- two arms (style and method) are copied from the results and stored in a canonical order
-- (arm `a` sorts before arm `b` by style, then method), so that the same comparison made again,
-- in either order and with whichever results show it, is the same row and replaces the earlier
-- choice. `winner` is `a` or `b`. Portable SQL (SQLite and PostgreSQL).
CREATE TABLE preferences (
    owner TEXT NOT NULL,
    image_id TEXT NOT NULL,
    style_a TEXT NOT NULL,
    method_a TEXT NOT NULL,
    style_b TEXT NOT NULL,
    method_b TEXT NOT NULL,
    result_a TEXT NOT NULL,
    result_b TEXT NOT NULL,
    winner TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (owner, image_id, style_a, method_a, style_b, method_b)
);
CREATE INDEX preferences_arms ON preferences (style_a, method_a, style_b, method_b);
