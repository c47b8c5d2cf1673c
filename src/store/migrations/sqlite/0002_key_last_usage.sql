-- GetKeyLastUsage: the newest successful cryptographic use of each key (written in batches).
CREATE TABLE IF NOT EXISTS key_last_usage (
    key_id TEXT PRIMARY KEY,
    operation TEXT NOT NULL,
    used_at INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    request_id TEXT NOT NULL
);
