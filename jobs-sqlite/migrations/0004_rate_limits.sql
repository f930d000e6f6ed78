-- The budget of each rate limit in the window under way, shared by every process on the
-- file: when the window opened (µs since the epoch; NULL before its first start) and how
-- many jobs started in it. Claims run on the one writer, so they take turns.
CREATE TABLE job_rate_windows (
    name        TEXT    NOT NULL PRIMARY KEY,
    opened_at   INTEGER,
    used        INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
