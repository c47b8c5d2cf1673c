//! Vocabulary shared by the domain and the store: key states, specs, usages, origins.
//! Each is parsed once from its wire/database string and carried as an enum.

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$variant),)+ _ => None }
            }

            /// The allowed values, as listed in validation messages.
            pub fn allowed() -> String {
                let v: Vec<&str> = Self::ALL.iter().map(|x| x.as_str()).collect();
                format!("[{}]", v.join(", "))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// Key states as AWS names them. `Creating` is also the crash-safety intent state.
    KeyState {
        Creating = "Creating",
        Enabled = "Enabled",
        Disabled = "Disabled",
        PendingDeletion = "PendingDeletion",
        PendingImport = "PendingImport",
        // A multi-Region primary key scheduled for deletion while it still has replicas: its
        // waiting period starts when the last replica is gone.
        PendingReplicaDeletion = "PendingReplicaDeletion",
        Unavailable = "Unavailable",
        // A multi-Region key whose primary Region is being changed (UpdatePrimaryRegion).
        Updating = "Updating",
        // Internal tombstone: never shown; the key id answers NotFoundException forever.
        Deleted = "Deleted",
    }
);

string_enum!(
    KeySpec {
        SymmetricDefault = "SYMMETRIC_DEFAULT",
        Rsa2048 = "RSA_2048",
        Rsa3072 = "RSA_3072",
        Rsa4096 = "RSA_4096",
        EccNistP256 = "ECC_NIST_P256",
        EccNistP384 = "ECC_NIST_P384",
        EccNistP521 = "ECC_NIST_P521",
        EccSecgP256k1 = "ECC_SECG_P256K1",
        Hmac224 = "HMAC_224",
        Hmac256 = "HMAC_256",
        Hmac384 = "HMAC_384",
        Hmac512 = "HMAC_512",
        Sm2 = "SM2",
        MlDsa44 = "ML_DSA_44",
        MlDsa65 = "ML_DSA_65",
        MlDsa87 = "ML_DSA_87",
        EccNistEdwards25519 = "ECC_NIST_EDWARDS25519",
        MlKem512 = "ML_KEM_512",
        MlKem768 = "ML_KEM_768",
        MlKem1024 = "ML_KEM_1024",
    }
);

string_enum!(
    KeyUsage {
        EncryptDecrypt = "ENCRYPT_DECRYPT",
        SignVerify = "SIGN_VERIFY",
        GenerateVerifyMac = "GENERATE_VERIFY_MAC",
        KeyAgreement = "KEY_AGREEMENT",
        EncapsulateDecapsulate = "ENCAPSULATE_DECAPSULATE",
    }
);

string_enum!(
    Origin {
        AwsKms = "AWS_KMS",
        External = "EXTERNAL",
        AwsCloudHsm = "AWS_CLOUDHSM",
        ExternalKeyStore = "EXTERNAL_KEY_STORE",
    }
);

string_enum!(
    RotationType {
        Automatic = "AUTOMATIC",
        OnDemand = "ON_DEMAND",
    }
);

string_enum!(
    DataKeySpec {
        Aes256 = "AES_256",
        Aes128 = "AES_128",
    }
);

string_enum!(
    EncryptionAlgorithm {
        SymmetricDefault = "SYMMETRIC_DEFAULT",
        RsaesOaepSha1 = "RSAES_OAEP_SHA_1",
        RsaesOaepSha256 = "RSAES_OAEP_SHA_256",
        Sm2Pke = "SM2PKE",
    }
);

string_enum!(
    SigningAlgorithm {
        RsassaPssSha256 = "RSASSA_PSS_SHA_256",
        RsassaPssSha384 = "RSASSA_PSS_SHA_384",
        RsassaPssSha512 = "RSASSA_PSS_SHA_512",
        RsassaPkcs1V15Sha256 = "RSASSA_PKCS1_V1_5_SHA_256",
        RsassaPkcs1V15Sha384 = "RSASSA_PKCS1_V1_5_SHA_384",
        RsassaPkcs1V15Sha512 = "RSASSA_PKCS1_V1_5_SHA_512",
        EcdsaSha256 = "ECDSA_SHA_256",
        EcdsaSha384 = "ECDSA_SHA_384",
        EcdsaSha512 = "ECDSA_SHA_512",
        Sm2dsa = "SM2DSA",
        MlDsaShake256 = "ML_DSA_SHAKE_256",
        Ed25519Sha512 = "ED25519_SHA_512",
        Ed25519PhSha512 = "ED25519_PH_SHA_512",
    }
);

string_enum!(
    MacAlgorithm {
        HmacSha224 = "HMAC_SHA_224",
        HmacSha256 = "HMAC_SHA_256",
        HmacSha384 = "HMAC_SHA_384",
        HmacSha512 = "HMAC_SHA_512",
    }
);

string_enum!(
    MessageType {
        Raw = "RAW",
        Digest = "DIGEST",
        ExternalMu = "EXTERNAL_MU",
    }
);

string_enum!(
    DataKeyPairSpec {
        Rsa2048 = "RSA_2048",
        Rsa3072 = "RSA_3072",
        Rsa4096 = "RSA_4096",
        EccNistP256 = "ECC_NIST_P256",
        EccNistP384 = "ECC_NIST_P384",
        EccNistP521 = "ECC_NIST_P521",
        EccSecgP256k1 = "ECC_SECG_P256K1",
        Sm2 = "SM2",
        EccNistEdwards25519 = "ECC_NIST_EDWARDS25519",
        MlKem512 = "ML_KEM_512",
        MlKem768 = "ML_KEM_768",
        MlKem1024 = "ML_KEM_1024",
    }
);

impl KeySpec {
    /// RSA modulus size in bits, for RSA specs.
    pub fn rsa_bits(self) -> Option<u32> {
        match self {
            KeySpec::Rsa2048 => Some(2048),
            KeySpec::Rsa3072 => Some(3072),
            KeySpec::Rsa4096 => Some(4096),
            _ => None,
        }
    }

    /// A key pair (GetPublicKey answers for it)?
    pub fn is_asymmetric(self) -> bool {
        self.rsa_bits().is_some()
            || self.is_ecc()
            || matches!(
                self,
                KeySpec::EccNistEdwards25519
                    | KeySpec::MlDsa44
                    | KeySpec::MlDsa65
                    | KeySpec::MlDsa87
                    | KeySpec::MlKem512
                    | KeySpec::MlKem768
                    | KeySpec::MlKem1024
            )
    }

    pub fn is_ecc(self) -> bool {
        matches!(
            self,
            KeySpec::EccNistP256
                | KeySpec::EccNistP384
                | KeySpec::EccNistP521
                | KeySpec::EccSecgP256k1
        )
    }

    /// The HMAC algorithm of an HMAC spec.
    pub fn mac_algorithm(self) -> Option<MacAlgorithm> {
        match self {
            KeySpec::Hmac224 => Some(MacAlgorithm::HmacSha224),
            KeySpec::Hmac256 => Some(MacAlgorithm::HmacSha256),
            KeySpec::Hmac384 => Some(MacAlgorithm::HmacSha384),
            KeySpec::Hmac512 => Some(MacAlgorithm::HmacSha512),
            _ => None,
        }
    }

    /// `EncryptionAlgorithms` as AWS reports them for a key of this spec and usage.
    pub fn encryption_algorithms(self, usage: KeyUsage) -> &'static [EncryptionAlgorithm] {
        use EncryptionAlgorithm as E;
        match (self, usage) {
            (KeySpec::SymmetricDefault, KeyUsage::EncryptDecrypt) => &[E::SymmetricDefault],
            (s, KeyUsage::EncryptDecrypt) if s.rsa_bits().is_some() => {
                &[E::RsaesOaepSha1, E::RsaesOaepSha256]
            }
            _ => &[],
        }
    }

    /// `SigningAlgorithms` as AWS reports them for a key of this spec and usage.
    pub fn signing_algorithms(self, usage: KeyUsage) -> &'static [SigningAlgorithm] {
        use SigningAlgorithm as S;
        if usage != KeyUsage::SignVerify {
            return &[];
        }
        match self {
            KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096 => &[
                S::RsassaPssSha256,
                S::RsassaPssSha384,
                S::RsassaPssSha512,
                S::RsassaPkcs1V15Sha256,
                S::RsassaPkcs1V15Sha384,
                S::RsassaPkcs1V15Sha512,
            ],
            KeySpec::EccNistP256 | KeySpec::EccSecgP256k1 => &[S::EcdsaSha256],
            KeySpec::EccNistP384 => &[S::EcdsaSha384],
            KeySpec::EccNistP521 => &[S::EcdsaSha512],
            KeySpec::EccNistEdwards25519 => &[S::Ed25519Sha512, S::Ed25519PhSha512],
            KeySpec::MlDsa44 | KeySpec::MlDsa65 | KeySpec::MlDsa87 => &[S::MlDsaShake256],
            _ => &[],
        }
    }

    /// `MacAlgorithms` as AWS reports them.
    pub fn mac_algorithms(self, usage: KeyUsage) -> Vec<MacAlgorithm> {
        match (self.mac_algorithm(), usage) {
            (Some(a), KeyUsage::GenerateVerifyMac) => vec![a],
            _ => Vec::new(),
        }
    }
}

string_enum!(
    /// `WrappingAlgorithm` of GetParametersForImport.
    WrappingAlgorithm {
        RsaesPkcs1V15 = "RSAES_PKCS1_V1_5",
        RsaesOaepSha1 = "RSAES_OAEP_SHA_1",
        RsaesOaepSha256 = "RSAES_OAEP_SHA_256",
        RsaAesKeyWrapSha1 = "RSA_AES_KEY_WRAP_SHA_1",
        RsaAesKeyWrapSha256 = "RSA_AES_KEY_WRAP_SHA_256",
        Sm2Pke = "SM2PKE",
    }
);

string_enum!(
    /// `WrappingKeySpec` of GetParametersForImport.
    WrappingKeySpec {
        Rsa2048 = "RSA_2048",
        Rsa3072 = "RSA_3072",
        Rsa4096 = "RSA_4096",
        Sm2 = "SM2",
    }
);

string_enum!(
    /// `ExpirationModel` of imported key material.
    ExpirationModel {
        KeyMaterialExpires = "KEY_MATERIAL_EXPIRES",
        KeyMaterialDoesNotExpire = "KEY_MATERIAL_DOES_NOT_EXPIRE",
    }
);

string_enum!(
    /// `ImportType` of ImportKeyMaterial.
    ImportType {
        NewKeyMaterial = "NEW_KEY_MATERIAL",
        ExistingKeyMaterial = "EXISTING_KEY_MATERIAL",
    }
);

string_enum!(
    /// `KeyMaterialState` of a ListKeyRotations entry.
    KeyMaterialState {
        NonCurrent = "NON_CURRENT",
        Current = "CURRENT",
        PendingRotation = "PENDING_ROTATION",
    }
);

string_enum!(
    /// `KeyManager`: keys the customer manages, or AWS managed keys (`alias/aws/<service>`).
    KeyManager {
        Customer = "CUSTOMER",
        Aws = "AWS",
    }
);
