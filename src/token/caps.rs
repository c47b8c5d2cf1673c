//! Token capabilities: which mechanisms the token offers, probed once at start-up with
//! `C_GetMechanismList` / `C_GetMechanismInfo`. The domain asks these before it chooses how to
//! run an algorithm, so a token that cannot do something answers `UnsupportedOperation`
//! instead of a failure deep in a request.

use cryptoki::context::Pkcs11;
use cryptoki::mechanism::vendor_defined::VendorDefinedMechanism;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::Attribute;
use cryptoki::session::Session;
use cryptoki::slot::Slot;

use super::{HashAlg, Result, TokenError};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `CKM_RSA_PKCS_KEY_PAIR_GEN`: the modulus sizes (bits) it accepts.
    pub rsa_keygen: Option<(usize, usize)>,
    /// `CKM_EC_KEY_PAIR_GEN`.
    pub ec_keygen: bool,
    /// The `CKA_EC_PARAMS` of the curves (of `EC_CURVES`) the token generated a key pair on
    /// when probed: tokens list one EC mechanism for all their curves (Kryoptic has no
    /// secp256k1, and answers CKR_GENERAL_ERROR for it).
    ec_curves: Vec<Vec<u8>>,
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
    /// AES key wrap with padding (RFC 5649) unwrap, by `kwp_mechanism`.
    pub aes_kwp_unwrap: bool,
    /// Which mechanism does RFC 5649: `CKM_AES_KEY_WRAP_PAD` (SoftHSM) or, where that is
    /// missing, PKCS #11 3.0's `CKM_AES_KEY_WRAP_KWP` (Kryoptic).
    kwp: Option<MechanismType>,
    /// `CKM_AES_ECB` encrypt: key check values of imported AES keys.
    pub aes_ecb: bool,
    /// `CKM_ECDH1_DERIVE`: the public point of an imported EC private key is found with it.
    pub ecdh_derive: bool,
    /// `CKM_EC_EDWARDS_KEY_PAIR_GEN` and `CKM_EDDSA`: Ed25519 keys.
    pub eddsa: bool,
    /// `CKM_ML_DSA_KEY_PAIR_GEN` and `CKM_ML_DSA`: ML-DSA keys (PKCS #11 3.2).
    pub ml_dsa: bool,
    /// `CKM_ML_KEM_KEY_PAIR_GEN` and `CKM_ML_KEM` (`C_EncapsulateKey`/`C_DecapsulateKey`).
    pub ml_kem: bool,
}

impl Capabilities {
    /// `session` (logged in) makes the probe's session objects, destroyed here.
    pub(super) fn probe(ctx: &Pkcs11, slot: Slot, session: &Session) -> Result<Capabilities> {
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
        let unwraps = |m| info(m).is_some_and(|i| i.unwrap());
        // cryptoki 0.12 names only the older one and drops unnamed ones from the list.
        let kwp = [MechanismType::AES_KEY_WRAP_PAD, aes_key_wrap_kwp()]
            .into_iter()
            .find(|m| ctx.get_mechanism_info(slot, *m).is_ok_and(|i| i.unwrap()));
        let hmac = |h: HashAlg| sign_verify(h.hmac_mechanism());
        let ec_keygen =
            info(MechanismType::ECC_KEY_PAIR_GEN).is_some_and(|i| i.generate_key_pair());
        let ec_curves = if ec_keygen {
            EC_CURVES
                .iter()
                .filter(|params| generates_on(session, params))
                .map(|params| params.to_vec())
                .collect()
        } else {
            Vec::new()
        };
        Ok(Capabilities {
            rsa_keygen: info(MechanismType::RSA_PKCS_KEY_PAIR_GEN)
                .filter(|i| i.generate_key_pair())
                .map(|i| (i.min_key_size(), i.max_key_size())),
            ec_keygen,
            ec_curves,
            ecdsa: sign_verify(MechanismType::ECDSA),
            rsa_pkcs1: sign_verify(MechanismType::RSA_PKCS),
            rsa_pss: sign_verify(MechanismType::RSA_PKCS_PSS),
            rsa_raw: info(MechanismType::RSA_X_509).is_some_and(|i| i.encrypt() && i.decrypt()),
            secret_keygen: info(MechanismType::GENERIC_SECRET_KEY_GEN)
                .is_some_and(|i| i.generate()),
            rsa_oaep_unwrap: unwraps(MechanismType::RSA_PKCS_OAEP),
            aes_kwp_unwrap: kwp.is_some(),
            kwp,
            aes_ecb: info(MechanismType::AES_ECB).is_some_and(|i| i.encrypt()),
            ecdh_derive: info(MechanismType::ECDH1_DERIVE).is_some_and(|i| i.derive()),
            eddsa: info(MechanismType::ECC_EDWARDS_KEY_PAIR_GEN)
                .is_some_and(|i| i.generate_key_pair())
                && sign_verify(MechanismType::EDDSA),
            ml_dsa: info(MechanismType::ML_DSA_KEY_PAIR_GEN).is_some_and(|i| i.generate_key_pair())
                && sign_verify(MechanismType::ML_DSA),
            ml_kem: info(MechanismType::ML_KEM_KEY_PAIR_GEN).is_some_and(|i| i.generate_key_pair())
                && list.contains(&MechanismType::ML_KEM),
            hmac: [
                hmac(HashAlg::Sha224),
                hmac(HashAlg::Sha256),
                hmac(HashAlg::Sha384),
                hmac(HashAlg::Sha512),
            ],
        })
    }

    /// Everything a token could offer (unit tests of the domain's choices).
    pub fn everything() -> Capabilities {
        Capabilities {
            rsa_keygen: Some((512, 16384)),
            ec_keygen: true,
            ec_curves: EC_CURVES.iter().map(|c| c.to_vec()).collect(),
            ecdsa: true,
            rsa_pkcs1: true,
            rsa_pss: true,
            rsa_raw: true,
            secret_keygen: true,
            hmac: [true; 4],
            rsa_oaep_unwrap: true,
            aes_kwp_unwrap: true,
            kwp: Some(MechanismType::AES_KEY_WRAP_PAD),
            aes_ecb: true,
            ecdh_derive: true,
            eddsa: true,
            ml_dsa: true,
            ml_kem: true,
        }
    }

    /// Can the token generate EC key pairs on the curve of these `CKA_EC_PARAMS`?
    pub fn ec_curve(&self, params: &[u8]) -> bool {
        self.ec_keygen && self.ec_curves.iter().any(|c| c == params)
    }

    /// The RFC 5649 unwrap mechanism, if the token has one.
    pub(super) fn kwp_mechanism(&self) -> Option<Mechanism<'static>> {
        match self.kwp? {
            m if m == MechanismType::AES_KEY_WRAP_PAD => Some(Mechanism::AesKeyWrapPad),
            m => Some(Mechanism::VendorDefined(VendorDefinedMechanism::new::<()>(
                m, None,
            ))),
        }
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

/// `CKM_AES_KEY_WRAP_KWP` (0x210B, PKCS #11 3.0: RFC 5649), which cryptoki 0.12 cannot name.
fn aes_key_wrap_kwp() -> MechanismType {
    const CKM_AES_KEY_WRAP_KWP: std::os::raw::c_ulong = 0x210B;
    // SAFETY: `MechanismType` is `#[repr(transparent)]` over `CK_MECHANISM_TYPE` (a
    // `c_ulong`) and has no invariant beyond holding a mechanism number; this one is defined
    // by the PKCS #11 3.0 standard. The value is only passed back to the token.
    unsafe { std::mem::transmute::<std::os::raw::c_ulong, MechanismType>(CKM_AES_KEY_WRAP_KWP) }
}

/// The named curves (DER OIDs as `CKA_EC_PARAMS`) probed at start-up: P-256, P-384, P-521,
/// secp256k1.
const EC_CURVES: [&[u8]; 4] = [
    &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
    &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
    &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23],
    &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a],
];

/// Does the token make a (session) EC key pair on this curve? The pair is destroyed.
fn generates_on(s: &Session, params: &[u8]) -> bool {
    let public = [
        Attribute::Token(false),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::EcParams(params.to_vec()),
    ];
    let private = [
        Attribute::Token(false),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Sign(true),
    ];
    match s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private) {
        Ok((public, private)) => {
            let _ = s.destroy_object(public);
            let _ = s.destroy_object(private);
            true
        }
        Err(_) => false,
    }
}
