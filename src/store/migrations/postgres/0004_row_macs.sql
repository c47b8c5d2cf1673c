-- Row integrity for the rows that grant access: MACs made in the token (kms::sealed).
ALTER TABLE access_keys ADD COLUMN IF NOT EXISTS mac BYTEA NOT NULL DEFAULT ''::bytea;
ALTER TABLE identity_policies ADD COLUMN IF NOT EXISTS mac BYTEA NOT NULL DEFAULT ''::bytea;
ALTER TABLE grants ADD COLUMN IF NOT EXISTS mac BYTEA NOT NULL DEFAULT ''::bytea;
