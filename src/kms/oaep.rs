//! RSAES-OAEP encoding and decoding (RFC 8017 §7.1) on the host, around a raw RSA operation in
//! the token (`CKM_RSA_X_509`). Tokens differ in the OAEP hashes they accept (SoftHSM: SHA-1
//! only), so OAEP itself lives here; the private key never leaves the token.
//!
//! Decoding is constant-time in the padding: every check is folded into one `Choice` and every
//! failure gives the same `None`, so callers answer one `InvalidCiphertextException` (no padding
//! oracle). Hash and MGF1 use the same function; the label is empty, as in AWS KMS.

use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use crate::token::HashAlg;

/// Hash of the concatenation of `parts`.
pub fn hash(h: HashAlg, parts: &[&[u8]]) -> Vec<u8> {
    fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
        let mut d = D::new();
        for p in parts {
            d.update(p);
        }
        d.finalize().to_vec()
    }
    match h {
        HashAlg::Sha1 => run::<Sha1>(parts),
        HashAlg::Sha224 => run::<Sha224>(parts),
        HashAlg::Sha256 => run::<Sha256>(parts),
        HashAlg::Sha384 => run::<Sha384>(parts),
        HashAlg::Sha512 => run::<Sha512>(parts),
    }
}

/// `out ^= MGF1(seed, out.len())`.
fn mgf1_xor(h: HashAlg, seed: &[u8], out: &mut [u8]) {
    for (counter, chunk) in out.chunks_mut(h.output_len()).enumerate() {
        let mask = hash(h, &[seed, &(counter as u32).to_be_bytes()]);
        for (o, m) in chunk.iter_mut().zip(mask) {
            *o ^= m;
        }
    }
}

/// The longest message OAEP can carry in a `k`-byte modulus.
pub fn max_message_len(h: HashAlg, k: usize) -> usize {
    k.saturating_sub(2 * h.output_len() + 2)
}

/// EM = 0x00 ‖ maskedSeed ‖ maskedDB for a `k`-byte modulus; `None` if the message is too long.
pub fn encode(h: HashAlg, k: usize, msg: &[u8], seed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let hl = h.output_len();
    if msg.len() > max_message_len(h, k) || seed.len() != hl || k < 2 * hl + 2 {
        return None;
    }
    let mut em = Zeroizing::new(vec![0u8; k]);
    let (seed_part, db) = em[1..].split_at_mut(hl);
    db[..hl].copy_from_slice(&hash(h, &[]));
    let one = db.len() - msg.len() - 1;
    db[one] = 1;
    db[one + 1..].copy_from_slice(msg);
    seed_part.copy_from_slice(seed);
    mgf1_xor(h, seed_part, db);
    mgf1_xor(h, db, seed_part);
    Some(em)
}

/// Decode EM (the raw RSA output, `k` bytes). `None` on any padding failure.
pub fn decode(h: HashAlg, em: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let hl = h.output_len();
    let k = em.len();
    if k < 2 * hl + 2 {
        return None;
    }
    let mut buf = Zeroizing::new(em.to_vec());
    let first_zero = buf[0].ct_eq(&0);
    let (seed, db) = buf[1..].split_at_mut(hl);
    mgf1_xor(h, db, seed);
    mgf1_xor(h, seed, db);
    let label_ok = db[..hl].ct_eq(&hash(h, &[]));
    // Find the 0x01 after the zero padding without branching on secret bytes.
    let mut looking = subtle::Choice::from(1);
    let mut bad = subtle::Choice::from(0);
    let mut index = 0u32;
    for (i, b) in db[hl..].iter().enumerate() {
        let is_one = b.ct_eq(&1);
        let is_zero = b.ct_eq(&0);
        index.conditional_assign(&(i as u32), looking & is_one);
        bad |= looking & !is_one & !is_zero;
        looking &= !is_one;
    }
    let ok = first_zero & label_ok & !looking & !bad;
    if bool::from(ok) {
        Some(Zeroizing::new(db[hl + index as usize + 1..].to_vec()))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        for h in [HashAlg::Sha1, HashAlg::Sha256] {
            let k = 256;
            let seed = vec![7u8; h.output_len()];
            let max = max_message_len(h, k);
            for msg in [&b""[..], b"hello", &vec![0xaa; max]] {
                let em = encode(h, k, msg, &seed).unwrap();
                assert_eq!(decode(h, &em).unwrap().as_slice(), msg);
                for i in [0, 1, k / 2, k - 1] {
                    let mut bad = em.to_vec();
                    bad[i] ^= 1;
                    assert!(decode(h, &bad).is_none());
                }
            }
            assert!(encode(h, k, &vec![0; max + 1], &seed).is_none());
        }
        assert_eq!(max_message_len(HashAlg::Sha1, 256), 214);
        assert_eq!(max_message_len(HashAlg::Sha256, 256), 190);
        assert_eq!(max_message_len(HashAlg::Sha256, 512), 446);
    }
}
