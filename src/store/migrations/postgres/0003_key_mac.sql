-- Row integrity: a MAC over each key row, made in the token (kms::sealed).
ALTER TABLE keys ADD COLUMN IF NOT EXISTS mac BYTEA NOT NULL DEFAULT ''::bytea;
