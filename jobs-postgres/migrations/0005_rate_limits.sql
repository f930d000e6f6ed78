-- The budget of each rate limit in the window under way, shared by every process: when
-- the window opened (NULL: no start yet) and how many jobs started in it. A claim under
-- a limit locks its rows, so claims that share a limit take turns.
CREATE TABLE {schema}.job_rate_windows (
    name        text        PRIMARY KEY,
    opened_at   timestamptz,
    used        bigint      NOT NULL DEFAULT 0
);
