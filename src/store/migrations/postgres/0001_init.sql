-- kms-bridge metadata schema, version 1 (PostgreSQL). Same columns as SQLite's; text that
-- is ordered or paged on compares bytewise (COLLATE "C"), as SQLite does.
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT COLLATE "C" PRIMARY KEY,
    region TEXT NOT NULL,
    account TEXT NOT NULL,
    description TEXT NOT NULL,
    key_spec TEXT NOT NULL,
    key_usage TEXT NOT NULL,
    origin TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deletion_date BIGINT,
    pending_window_days BIGINT,
    rotation_enabled BIGINT NOT NULL,
    rotation_period_days BIGINT,
    rotation_base BIGINT,
    current_version BIGINT NOT NULL,
    policy TEXT NOT NULL,
    revision BIGINT NOT NULL,
    custom_key_store_id TEXT
);
CREATE INDEX IF NOT EXISTS keys_by_scope ON keys(region, account, key_id);
CREATE TABLE IF NOT EXISTS custom_key_stores (
    id TEXT COLLATE "C" PRIMARY KEY,
    region TEXT NOT NULL,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    cluster_id TEXT NOT NULL,
    trust_anchor TEXT NOT NULL,
    sealed_password BYTEA NOT NULL,
    connection_state TEXT NOT NULL,
    connection_error TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE (region, account, name),
    UNIQUE (cluster_id)
);
CREATE TABLE IF NOT EXISTS key_versions (
    key_id TEXT NOT NULL REFERENCES keys(key_id),
    version BIGINT NOT NULL,
    token_object_id BYTEA NOT NULL UNIQUE,
    material_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    rotation_type TEXT,
    pending BIGINT NOT NULL,
    PRIMARY KEY (key_id, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    region TEXT NOT NULL,
    account TEXT NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    key_id TEXT NOT NULL REFERENCES keys(key_id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (region, account, name)
);
CREATE INDEX IF NOT EXISTS aliases_by_key ON aliases(key_id);
CREATE TABLE IF NOT EXISTS principals (
    arn TEXT COLLATE "C" PRIMARY KEY,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS access_keys (
    access_key_id TEXT PRIMARY KEY,
    principal_arn TEXT NOT NULL REFERENCES principals(arn),
    sealed_secret BYTEA NOT NULL,
    active BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS identity_policies (
    principal_arn TEXT NOT NULL REFERENCES principals(arn),
    name TEXT COLLATE "C" NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (principal_arn, name)
);
CREATE TABLE IF NOT EXISTS grants (
    grant_id TEXT COLLATE "C" PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES keys(key_id),
    name TEXT,
    grantee_principal TEXT NOT NULL,
    retiring_principal TEXT,
    issuing_account TEXT NOT NULL,
    operations TEXT NOT NULL,
    constraints TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS grants_by_key ON grants(key_id, grantee_principal);
CREATE INDEX IF NOT EXISTS grants_by_retiring ON grants(retiring_principal);
CREATE TABLE IF NOT EXISTS tags (
    key_id TEXT NOT NULL REFERENCES keys(key_id),
    tag_key TEXT COLLATE "C" NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (key_id, tag_key)
);
CREATE TABLE IF NOT EXISTS imports (
    key_id TEXT PRIMARY KEY REFERENCES keys(key_id),
    wrapping_object_id BYTEA,
    wrapping_algorithm TEXT,
    wrapping_key_spec TEXT,
    nonce BYTEA,
    parameters_valid_to BIGINT,
    expiration_model TEXT,
    valid_to BIGINT,
    check_value BYTEA
);
CREATE INDEX IF NOT EXISTS imports_by_valid_to ON imports(valid_to);
CREATE INDEX IF NOT EXISTS keys_by_store ON keys(custom_key_store_id);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    fence BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
