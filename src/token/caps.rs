//! Token capabilities: which mechanisms the token offers, probed once at start-up with
//! `C_GetMechanismList` / `C_GetMechanismInfo`. The domain asks these before it chooses how to
//! run an algorithm, so a token that cannot do something answers `UnsupportedOperation`
//! instead of a failure deep in a request.

use cryptoki::context::Pkcs11;
use cryptoki::mechanism::MechanismType;
use cryptoki::slot::Slot;

use super::{HashAlg, Result, TokenError};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `CKM_RSA_PKCS_KEY_PAIR_GEN`: the modulus sizes (bits) it accepts.
    pub rsa_keygen: Option<(usize, usize)>,
    /// `CKM_EC_KEY_PAIR_GEN`.
    pub ec_keygen: bool,
    /// `CKM_ECDSA` sign and verify (over a host-computed digest).
    pub ecdsa: bool,
    /// `CKM_RSA_PKCS` sign and verify (over a host-built DigestInfo).
    pub rsa_pkcs1: bool,
    /// `CKM_RSA_PKCS_PSS` sign and verify (over a host-computed digest).
    pub rsa_pss: bool,
    /// `CKM_RSA_X_509` encrypt and decrypt: raw RSA, with OAEP done on the host.
    pub rsa_raw: bool,
    /// `CKM_GENERIC_SECRET_KEY_GEN`.
    pub secret_keygen: bool,
    /// `CKM_SHA224_HMAC` … `CKM_SHA512_HMAC`, in that order.
    pub hmac: [bool; 4],
    /// `CKM_RSA_PKCS_OAEP` unwrap (which hashes it takes is only known by trying).
    pub rsa_oaep_unwrap: bool,
    /// `CKM_AES_KEY_WRAP_PAD` (RFC 5649) unwrap.
    pub aes_kwp_unwrap: bool,
    /// `CKM_AES_ECB` encrypt: key check values of imported AES keys.
    pub aes_ecb: bool,
    /// `CKM_ECDH1_DERIVE`: the public point of an imported EC private key is found with it.
    pub ecdh_derive: bool,
}

impl Capabilities {
    pub(super) fn probe(ctx: &Pkcs11, slot: Slot) -> Result<Capabilities> {
        let list = ctx
            .get_mechanism_list(slot)
            .map_err(|e| TokenError::ck("C_GetMechanismList", e))?;
        let info = |m: MechanismType| {
            if list.contains(&m) {
                ctx.get_mechanism_info(slot, m).ok()
            } else {
                None
            }
        };
        let sign_verify = |m| info(m).is_some_and(|i| i.sign() && i.verify());
        let hmac = |h: HashAlg| sign_verify(h.hmac_mechanism());
        Ok(Capabilities {
            rsa_keygen: info(MechanismType::RSA_PKCS_KEY_PAIR_GEN)
                .filter(|i| i.generate_key_pair())
                .map(|i| (i.min_key_size(), i.max_key_size())),
            ec_keygen: info(MechanismType::ECC_KEY_PAIR_GEN).is_some_and(|i| i.generate_key_pair()),
            ecdsa: sign_verify(MechanismType::ECDSA),
            rsa_pkcs1: sign_verify(MechanismType::RSA_PKCS),
            rsa_pss: sign_verify(MechanismType::RSA_PKCS_PSS),
            rsa_raw: info(MechanismType::RSA_X_509).is_some_and(|i| i.encrypt() && i.decrypt()),
            secret_keygen: info(MechanismType::GENERIC_SECRET_KEY_GEN)
                .is_some_and(|i| i.generate()),
            rsa_oaep_unwrap: info(MechanismType::RSA_PKCS_OAEP).is_some_and(|i| i.unwrap()),
            aes_kwp_unwrap: info(MechanismType::AES_KEY_WRAP_PAD).is_some_and(|i| i.unwrap()),
            aes_ecb: info(MechanismType::AES_ECB).is_some_and(|i| i.encrypt()),
            ecdh_derive: info(MechanismType::ECDH1_DERIVE).is_some_and(|i| i.derive()),
            hmac: [
                hmac(HashAlg::Sha224),
                hmac(HashAlg::Sha256),
                hmac(HashAlg::Sha384),
                hmac(HashAlg::Sha512),
            ],
        })
    }

    /// Can the token generate RSA keys of this size?
    pub fn rsa_bits(&self, bits: u32) -> bool {
        self.rsa_keygen
            .is_some_and(|(min, max)| (min..=max).contains(&(bits as usize)))
    }

    pub fn hmac(&self, h: HashAlg) -> bool {
        match h {
            HashAlg::Sha224 => self.hmac[0],
            HashAlg::Sha256 => self.hmac[1],
            HashAlg::Sha384 => self.hmac[2],
            HashAlg::Sha512 => self.hmac[3],
            HashAlg::Sha1 => false,
        }
    }
}
