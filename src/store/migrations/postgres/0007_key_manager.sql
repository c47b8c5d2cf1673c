-- AWS managed keys (alias/aws/<service>): KeyManager AWS, fixed when the key is created.
ALTER TABLE keys ADD COLUMN IF NOT EXISTS key_manager TEXT NOT NULL DEFAULT 'CUSTOMER';
