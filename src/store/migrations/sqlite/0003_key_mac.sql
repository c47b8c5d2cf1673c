-- Row integrity: a MAC over each key row, made in the token (kms::sealed).
ALTER TABLE keys ADD COLUMN mac BLOB NOT NULL DEFAULT x'';
