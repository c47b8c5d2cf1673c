-- Row integrity for the rows that grant access: MACs made in the token (kms::sealed).
ALTER TABLE access_keys ADD COLUMN mac BLOB NOT NULL DEFAULT x'';
ALTER TABLE identity_policies ADD COLUMN mac BLOB NOT NULL DEFAULT x'';
ALTER TABLE grants ADD COLUMN mac BLOB NOT NULL DEFAULT x'';
