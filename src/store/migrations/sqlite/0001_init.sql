-- kms-bridge metadata schema, version 1 (SQLite). IF NOT EXISTS: databases created before
-- versioned migrations already hold these tables.
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    account TEXT NOT NULL,
    description TEXT NOT NULL,
    key_spec TEXT NOT NULL,
    key_usage TEXT NOT NULL,
    origin TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    deletion_date INTEGER,
    pending_window_days INTEGER,
    rotation_enabled INTEGER NOT NULL,
    rotation_period_days INTEGER,
    rotation_base INTEGER,
    current_version INTEGER NOT NULL,
    policy TEXT NOT NULL,
    revision INTEGER NOT NULL,
    custom_key_store_id TEXT
);
CREATE INDEX IF NOT EXISTS keys_by_scope ON keys(region, account, key_id);
CREATE TABLE IF NOT EXISTS custom_key_stores (
    id TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    cluster_id TEXT NOT NULL,
    trust_anchor TEXT NOT NULL,
    sealed_password BLOB NOT NULL,
    connection_state TEXT NOT NULL,
    connection_error TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (region, account, name),
    UNIQUE (cluster_id)
);
CREATE TABLE IF NOT EXISTS key_versions (
    key_id TEXT NOT NULL REFERENCES keys(key_id),
    version INTEGER NOT NULL,
    token_object_id BLOB NOT NULL UNIQUE,
    material_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    rotation_type TEXT,
    pending INTEGER NOT NULL,
    PRIMARY KEY (key_id, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    region TEXT NOT NULL,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    key_id TEXT NOT NULL REFERENCES keys(key_id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (region, account, name)
);
CREATE INDEX IF NOT EXISTS aliases_by_key ON aliases(key_id);
CREATE TABLE IF NOT EXISTS principals (
    arn TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS access_keys (
    access_key_id TEXT PRIMARY KEY,
    principal_arn TEXT NOT NULL REFERENCES principals(arn),
    sealed_secret BLOB NOT NULL,
    active INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS identity_policies (
    principal_arn TEXT NOT NULL REFERENCES principals(arn),
    name TEXT NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (principal_arn, name)
);
CREATE TABLE IF NOT EXISTS grants (
    grant_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES keys(key_id),
    name TEXT,
    grantee_principal TEXT NOT NULL,
    retiring_principal TEXT,
    issuing_account TEXT NOT NULL,
    operations TEXT NOT NULL,
    constraints TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS grants_by_key ON grants(key_id, grantee_principal);
CREATE INDEX IF NOT EXISTS grants_by_retiring ON grants(retiring_principal);
CREATE TABLE IF NOT EXISTS tags (
    key_id TEXT NOT NULL REFERENCES keys(key_id),
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (key_id, tag_key)
);
CREATE TABLE IF NOT EXISTS imports (
    key_id TEXT PRIMARY KEY REFERENCES keys(key_id),
    wrapping_object_id BLOB,
    wrapping_algorithm TEXT,
    wrapping_key_spec TEXT,
    nonce BLOB,
    parameters_valid_to INTEGER,
    expiration_model TEXT,
    valid_to INTEGER,
    check_value BLOB
);
CREATE INDEX IF NOT EXISTS imports_by_valid_to ON imports(valid_to);
CREATE INDEX IF NOT EXISTS keys_by_store ON keys(custom_key_store_id);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    fence INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
