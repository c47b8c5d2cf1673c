-- Multi-Region keys: the set a key belongs to (its external id is `mrk-` + these 32 hex
-- digits, the same in every region) and the region of the set's primary key. NULL for
-- single-Region keys. A member's own key_id is derived from (mrk_id, region).
ALTER TABLE keys ADD COLUMN mrk_id TEXT;
ALTER TABLE keys ADD COLUMN primary_region TEXT;
CREATE INDEX IF NOT EXISTS keys_by_mrk ON keys(mrk_id);
