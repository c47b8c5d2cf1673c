-- Several key materials per imported key (ImportType, KeyMaterialId): one row per material of
-- an EXTERNAL key, kept while the material is deleted or expired (the same material comes back
-- at the same version, so ciphertexts naming that version decrypt again). `imported` says
-- whether the material is in the token now; `version` is its token object's version.
CREATE TABLE IF NOT EXISTS key_materials (
    key_id TEXT NOT NULL REFERENCES keys(key_id),
    version BIGINT NOT NULL,
    check_value BYTEA NOT NULL,
    description TEXT,
    expiration_model TEXT NOT NULL,
    valid_to BIGINT,
    imported BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    rotated_at BIGINT,
    rotation_type TEXT,
    PRIMARY KEY (key_id, version)
);
CREATE INDEX IF NOT EXISTS key_materials_by_valid_to ON key_materials(valid_to);
-- The one material of keys imported before: version 1, in the token if its version is.
INSERT INTO key_materials (key_id, version, check_value, description, expiration_model,
                           valid_to, imported, created_at, rotated_at, rotation_type)
SELECT i.key_id, 1, i.check_value, NULL,
       COALESCE(i.expiration_model, 'KEY_MATERIAL_DOES_NOT_EXPIRE'), i.valid_to,
       CASE WHEN EXISTS (SELECT 1 FROM key_versions v WHERE v.key_id = i.key_id
                         AND v.version = 1 AND v.pending = 0) THEN 1 ELSE 0 END,
       0, NULL, NULL
FROM imports i WHERE i.check_value IS NOT NULL;
