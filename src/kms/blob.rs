//! The symmetric ciphertext blob (format versions 1 and 2).
//!
//! ```text
//! offset  size  field
//! 0       3     magic "KBR"
//! 3       1     format version: 1 = single-Region key, 2 = multi-Region key
//! 4       16    key id (UUID bytes; for version 2 the multi-Region set's id, the 32 hex
//!               digits of `mrk-…`, which names the related key in every region)
//! 20      4     key version (big-endian u32; 1 = original material)
//! 24      12    AES-GCM IV (fresh from the token's RNG)
//! 36      n+16  AES-GCM ciphertext followed by the 128-bit tag
//! ```
//!
//! The AAD given to the token is `header (bytes 0..24) ‖ canonical(encryption context)`, so the
//! header and the context are authenticated; the IV is authenticated by GCM itself. The AAD is
//! therefore never empty.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::token::{GCM_IV_LEN, GCM_TAG_LEN};

pub const MAGIC: &[u8; 3] = b"KBR";
pub const FORMAT_V1: u8 = 1;
/// A multi-Region key's blob: the key id field holds the set's id, so a related key in any
/// region finds its own copy of the material (`ids::mrk_row_id`).
pub const FORMAT_V2_MRK: u8 = 2;
pub const HEADER_LEN: usize = 3 + 1 + 16 + 4;
pub const OVERHEAD: usize = HEADER_LEN + GCM_IV_LEN + GCM_TAG_LEN;

/// Encryption context; a BTreeMap so the canonical encoding is ordered by key.
pub type EncryptionContext = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The key id, or for a multi-Region key (`multi_region`) the set's id.
    pub key_id: Uuid,
    pub key_version: u32,
    pub multi_region: bool,
}

impl Header {
    /// The key a blob names as callers write it.
    pub fn key_name(&self) -> super::ids::KeyName {
        if self.multi_region {
            super::ids::KeyName::Mrk(self.key_id)
        } else {
            super::ids::KeyName::Uuid(self.key_id)
        }
    }
}

impl Header {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..3].copy_from_slice(MAGIC);
        h[3] = if self.multi_region {
            FORMAT_V2_MRK
        } else {
            FORMAT_V1
        };
        h[4..20].copy_from_slice(self.key_id.as_bytes());
        h[20..24].copy_from_slice(&self.key_version.to_be_bytes());
        h
    }

    /// The AAD for this header and context.
    pub fn aad(&self, ctx: &EncryptionContext) -> Vec<u8> {
        let mut aad = Vec::with_capacity(HEADER_LEN + 4 + ctx.len() * 32);
        aad.extend_from_slice(&self.encode());
        aad.extend_from_slice(&(ctx.len() as u32).to_be_bytes());
        for (k, v) in ctx {
            for part in [k, v] {
                aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
                aad.extend_from_slice(part.as_bytes());
            }
        }
        aad
    }
}

/// A parsed blob: header, IV and ciphertext‖tag.
#[derive(Debug, Clone)]
pub struct Blob {
    pub header: Header,
    pub iv: [u8; GCM_IV_LEN],
    pub ciphertext: Vec<u8>,
}

impl Blob {
    pub fn encode(header: &Header, iv: &[u8; GCM_IV_LEN], ciphertext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + GCM_IV_LEN + ciphertext.len());
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(iv);
        out.extend_from_slice(ciphertext);
        out
    }

    /// Parse a blob; `None` for anything that is not a well-formed blob of a known version.
    pub fn parse(bytes: &[u8]) -> Option<Blob> {
        if bytes.len() <= OVERHEAD || &bytes[0..3] != MAGIC {
            return None;
        }
        let multi_region = match bytes[3] {
            FORMAT_V1 => false,
            FORMAT_V2_MRK => true,
            _ => return None,
        };
        let key_id = Uuid::from_slice(&bytes[4..20]).ok()?;
        let key_version = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
        if key_version == 0 {
            return None;
        }
        let iv: [u8; GCM_IV_LEN] = bytes[HEADER_LEN..HEADER_LEN + GCM_IV_LEN].try_into().ok()?;
        Some(Blob {
            header: Header {
                key_id,
                key_version,
                multi_region,
            },
            iv,
            ciphertext: bytes[HEADER_LEN + GCM_IV_LEN..].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            key_id: Uuid::from_u128(0x1234),
            key_version: 3,
            multi_region: false,
        }
    }

    #[test]
    fn multi_region_round_trip() {
        let h = Header {
            multi_region: true,
            ..header()
        };
        let bytes = Blob::encode(&h, &[1; GCM_IV_LEN], &[2; 20]);
        assert_eq!(bytes[3], FORMAT_V2_MRK);
        assert_eq!(Blob::parse(&bytes).unwrap().header, h);
        // The version byte is part of the AAD: a blob cannot pass for the other kind.
        assert_ne!(
            h.aad(&EncryptionContext::new()),
            header().aad(&EncryptionContext::new())
        );
    }

    #[test]
    fn round_trip() {
        let iv = [7u8; GCM_IV_LEN];
        let ct = vec![9u8; 40];
        let bytes = Blob::encode(&header(), &iv, &ct);
        assert_eq!(bytes.len(), HEADER_LEN + GCM_IV_LEN + 40);
        let b = Blob::parse(&bytes).unwrap();
        assert_eq!(b.header, header());
        assert_eq!(b.iv, iv);
        assert_eq!(b.ciphertext, ct);
    }

    #[test]
    fn rejects_malformed() {
        let bytes = Blob::encode(&header(), &[0; GCM_IV_LEN], &[1; 17]);
        assert!(Blob::parse(&bytes[..OVERHEAD]).is_none(), "too short");
        let mut m = bytes.clone();
        m[0] ^= 1;
        assert!(Blob::parse(&m).is_none(), "magic");
        let mut v = bytes.clone();
        v[3] = 3;
        assert!(Blob::parse(&v).is_none(), "format version");
        let mut z = bytes;
        z[20..24].copy_from_slice(&0u32.to_be_bytes());
        assert!(Blob::parse(&z).is_none(), "key version 0");
    }

    #[test]
    fn aad_is_unambiguous_and_ordered() {
        let h = header();
        let a: EncryptionContext = [("ab".into(), "c".into())].into();
        let b: EncryptionContext = [("a".into(), "bc".into())].into();
        assert_ne!(h.aad(&a), h.aad(&b));
        let empty = h.aad(&EncryptionContext::new());
        assert_eq!(&empty[..HEADER_LEN], &h.encode());
        assert!(!empty.is_empty());
        let mut x = EncryptionContext::new();
        x.insert("z".into(), "1".into());
        x.insert("a".into(), "2".into());
        let mut y = EncryptionContext::new();
        y.insert("a".into(), "2".into());
        y.insert("z".into(), "1".into());
        assert_eq!(h.aad(&x), h.aad(&y));
    }
}
