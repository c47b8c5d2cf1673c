//! The raw token ceiling: the PKCS#11 primitives the server's operations reduce to, called in
//! a tight loop on this token (no HTTP, no domain, no store), so `kms-bridge bench` can print
//! what the token itself can do next to what the server does.
//!
//! Keys are created as token objects with the same protection as the server's
//! (`CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE`, not extractable), once per measurement, and
//! destroyed afterwards. Each thread opens its own session. Everything here blocks: call it
//! from a blocking thread.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use hdrhistogram::Histogram;

use super::{Inner, Result, Token, TokenError, GCM_IV_LEN, GCM_TAG_LEN};

/// Label prefix of the objects a ceiling run creates (not `kms::LABEL_PREFIX`, so start-up
/// reconciliation does not mistake a leftover for one of the service's keys).
const LABEL: &str = "kms-bridge-bench/";
/// AAD as long as the server's for an empty encryption context (blob header + count).
const AAD: [u8; 28] = [0x4b; 28];
/// DER of the prime256v1 (P-256) curve OID, for `CKA_EC_PARAMS`.
const P256_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// A primitive (or the sequence of primitives) one server operation costs in the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CeilingOp {
    /// `C_GenerateRandom` (IV) + `C_Encrypt` AES-GCM of this many bytes.
    Encrypt(usize),
    /// `C_Decrypt` AES-GCM of a ciphertext of this many plaintext bytes.
    Decrypt(usize),
    /// `C_GenerateRandom(32)` + `Encrypt(32)`.
    GenerateDataKey,
    /// `Decrypt(n)` + `Encrypt(n)`: two token calls, as ReEncrypt costs.
    ReEncrypt(usize),
    /// `C_GenerateRandom` of this many bytes.
    Random(usize),
    /// `C_Sign` `CKM_ECDSA` over a SHA-256 digest with a P-256 key.
    SignEcdsaP256,
    /// `C_Sign` `CKM_SHA256_RSA_PKCS_PSS` with an RSA-2048 key.
    SignRsaPss2048,
    /// `C_Sign` `CKM_SHA256_HMAC` with a 256-bit generic secret.
    HmacSha256,
    /// `C_GenerateKey` of an AES-256 token object (what CreateKey costs in the token).
    /// Each new object is destroyed at once, outside the timed section, and the rate is
    /// operations per second spent in `C_GenerateKey`: SoftHSM's `C_DestroyObject` costs
    /// O(objects in the token) (~25 µs per object), so destroying thousands at the end
    /// would take minutes.
    CreateKey,
}

/// What one ceiling measurement found.
pub struct CeilingResult {
    pub threads: usize,
    /// Operations completed inside the timed window (all threads).
    pub ops: u64,
    /// Wall time of the timed window (CreateKey: time spent creating, per thread).
    pub elapsed: Duration,
    /// Latency of each operation, in nanoseconds.
    pub latency_ns: Histogram<u64>,
}

impl CeilingResult {
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Objects created for one measurement, destroyed when it ends.
struct Fixture {
    /// The key the loop uses (AES, private or HMAC key); `None` for CreateKey.
    key: Option<ObjectHandle>,
    /// Every object to destroy afterwards (includes `key` and a public key).
    objects: Vec<ObjectHandle>,
    /// The plaintext of the Encrypt loop (and of `sealed`).
    plaintext: Vec<u8>,
    /// A ciphertext of the right size for the Decrypt / ReEncrypt loops.
    sealed: Option<([u8; GCM_IV_LEN], Vec<u8>)>,
}

impl Token {
    /// Measure `op` on `threads` threads, each with its own session, for `duration`.
    /// Blocking.
    pub fn ceiling(
        &self,
        op: CeilingOp,
        threads: usize,
        duration: Duration,
    ) -> Result<CeilingResult> {
        let inner = &*self.inner;
        let mut fixture = inner.with_session("ceiling_setup", |s| Fixture::create(s, op))?;
        let threads = threads.max(1);
        let barrier = Barrier::new(threads + 1);
        let (outcomes, elapsed) = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| scope.spawn(|| worker(inner, op, &fixture, &barrier, duration)))
                .collect();
            barrier.wait();
            let start = Instant::now();
            let outcomes: Vec<_> = workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|_| (Err(join_error()), Vec::new())))
                .collect();
            (outcomes, start.elapsed())
        });
        let mut result = Ok(CeilingResult {
            threads,
            ops: 0,
            elapsed,
            latency_ns: new_histogram()?,
        });
        let mut busy = Duration::ZERO;
        for (outcome, leftovers) in outcomes {
            fixture.objects.extend(leftovers);
            result = match (result, outcome) {
                (Ok(mut r), Ok(m)) => {
                    r.ops += m.ops;
                    busy += m.busy;
                    r.latency_ns
                        .add(&m.latency_ns)
                        .map_err(|_| histogram_error())?;
                    Ok(r)
                }
                (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            };
        }
        let cleanup = inner.with_session("ceiling_cleanup", |s| fixture.destroy(s));
        let mut result = result?;
        cleanup?;
        if op == CeilingOp::CreateKey {
            result.elapsed = busy / threads as u32;
        }
        Ok(result)
    }
}

/// What one thread measured.
struct Measured {
    ops: u64,
    latency_ns: Histogram<u64>,
    /// Time spent inside the timed operations.
    busy: Duration,
}

/// A thread's measurement and the objects it created but could not destroy.
type WorkerOutcome = (Result<Measured>, Vec<ObjectHandle>);

/// One thread's loop: its own session, then operations until the deadline.
fn worker(
    inner: &Inner,
    op: CeilingOp,
    fixture: &Fixture,
    barrier: &Barrier,
    duration: Duration,
) -> WorkerOutcome {
    let session = inner.ensure_connected().and_then(|slot| {
        inner
            .ctx
            .open_rw_session(slot)
            .map_err(|e| TokenError::ck("C_OpenSession", e))
    });
    // Every thread reaches the barrier, even when it cannot work, so nobody waits forever.
    barrier.wait();
    let mut created = Vec::new();
    let run = session.and_then(|s| {
        let mut m = Measured {
            ops: 0,
            latency_ns: new_histogram()?,
            busy: Duration::ZERO,
        };
        let deadline = Instant::now() + duration;
        loop {
            let t = Instant::now();
            if t >= deadline {
                break;
            }
            step(&s, op, fixture, &mut created)?;
            let took = t.elapsed();
            m.latency_ns.saturating_record(took.as_nanos() as u64);
            m.busy += took;
            m.ops += 1;
            // CreateKey: destroy the new object now, untimed (see `CeilingOp::CreateKey`).
            while let Some(h) = created.pop() {
                if let Err(e) = s.destroy_object(h) {
                    created.push(h);
                    return Err(TokenError::ck("C_DestroyObject", e));
                }
            }
        }
        Ok(m)
    });
    (run, created)
}

fn step(s: &Session, op: CeilingOp, f: &Fixture, created: &mut Vec<ObjectHandle>) -> Result<()> {
    let key = || {
        f.key
            .ok_or(TokenError::Ceiling("no key for this operation"))
    };
    match op {
        CeilingOp::Encrypt(_) => encrypt(s, key()?, &f.plaintext).map(drop),
        CeilingOp::Decrypt(_) => decrypt(s, key()?, f).map(drop),
        CeilingOp::GenerateDataKey => {
            let mut dk = [0u8; 32];
            s.generate_random_slice(&mut dk)
                .map_err(|e| TokenError::ck("C_GenerateRandom", e))?;
            encrypt(s, key()?, &dk).map(drop)
        }
        CeilingOp::ReEncrypt(_) => {
            let pt = decrypt(s, key()?, f)?;
            encrypt(s, key()?, &pt).map(drop)
        }
        CeilingOp::Random(n) => {
            let mut buf = vec![0u8; n];
            s.generate_random_slice(&mut buf)
                .map_err(|e| TokenError::ck("C_GenerateRandom", e))
        }
        CeilingOp::SignEcdsaP256 => s
            .sign(&Mechanism::Ecdsa, key()?, &[0x11; 32])
            .map(drop)
            .map_err(|e| TokenError::ck("C_Sign", e)),
        CeilingOp::SignRsaPss2048 => s
            .sign(
                &Mechanism::Sha256RsaPkcsPss(pss_params()),
                key()?,
                &[0x22; 64],
            )
            .map(drop)
            .map_err(|e| TokenError::ck("C_Sign", e)),
        CeilingOp::HmacSha256 => s
            .sign(&Mechanism::Sha256Hmac, key()?, &[0x33; 64])
            .map(drop)
            .map_err(|e| TokenError::ck("C_Sign", e)),
        CeilingOp::CreateKey => {
            let h = s
                .generate_key(&Mechanism::AesKeyGen, &aes_template())
                .map_err(|e| TokenError::ck("C_GenerateKey", e))?;
            created.push(h);
            Ok(())
        }
    }
}

/// AES-GCM under a fresh IV from the token's RNG, as `Token::encrypt_gcm` does.
fn encrypt(s: &Session, key: ObjectHandle, pt: &[u8]) -> Result<([u8; GCM_IV_LEN], Vec<u8>)> {
    let mut iv = [0u8; GCM_IV_LEN];
    s.generate_random_slice(&mut iv)
        .map_err(|e| TokenError::ck("C_GenerateRandom", e))?;
    let mut iv_param = iv;
    let params = GcmParams::new(&mut iv_param, &AAD, ((GCM_TAG_LEN * 8) as u64).into())
        .map_err(|e| TokenError::ck("GcmParams", e))?;
    let ct = s
        .encrypt(&Mechanism::AesGcm(params), key, pt)
        .map_err(|e| TokenError::ck("C_Encrypt", e))?;
    Ok((iv, ct))
}

fn decrypt(s: &Session, key: ObjectHandle, f: &Fixture) -> Result<Vec<u8>> {
    let (iv, ct) = f
        .sealed
        .as_ref()
        .ok_or(TokenError::Ceiling("no ciphertext for this operation"))?;
    let mut iv = *iv;
    let params = GcmParams::new(&mut iv, &AAD, ((GCM_TAG_LEN * 8) as u64).into())
        .map_err(|e| TokenError::ck("GcmParams", e))?;
    s.decrypt(&Mechanism::AesGcm(params), key, ct)
        .map_err(|e| TokenError::ck("C_Decrypt", e))
}

fn pss_params() -> PkcsPssParams {
    PkcsPssParams {
        hash_alg: MechanismType::SHA256,
        mgf: PkcsMgfType::MGF1_SHA256,
        s_len: 32.into(),
    }
}

/// `CKA_ID` / `CKA_LABEL` of a new ceiling object.
fn naming() -> [Attribute; 2] {
    let name = format!("{LABEL}{}", uuid::Uuid::new_v4());
    [
        Attribute::Id(name.clone().into_bytes()),
        Attribute::Label(name.into_bytes()),
    ]
}

/// Private, sensitive, non-extractable token object: the server's protection.
fn protected(extra: impl IntoIterator<Item = Attribute>) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
    ];
    t.extend(naming());
    t.extend(extra);
    t
}

/// The server's AES key template (`Token::generate_aes_key`).
fn aes_template() -> Vec<Attribute> {
    protected([
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(32.into()),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
    ])
}

fn public_template(extra: impl IntoIterator<Item = Attribute>) -> Vec<Attribute> {
    let mut t = vec![Attribute::Token(true), Attribute::Verify(true)];
    t.extend(naming());
    t.extend(extra);
    t
}

impl Fixture {
    fn create(s: &Session, op: CeilingOp) -> Result<Fixture> {
        let len = match op {
            CeilingOp::Encrypt(n) | CeilingOp::Decrypt(n) | CeilingOp::ReEncrypt(n) => n,
            _ => 0,
        };
        let mut f = Fixture {
            key: None,
            objects: Vec::new(),
            plaintext: vec![0x5a; len],
            sealed: None,
        };
        let made = f.populate(s, op);
        match made {
            Ok(()) => Ok(f),
            Err(e) => {
                let _ = f.destroy(s);
                Err(e)
            }
        }
    }

    fn populate(&mut self, s: &Session, op: CeilingOp) -> Result<()> {
        let key = match op {
            CeilingOp::CreateKey | CeilingOp::Random(_) => return Ok(()),
            CeilingOp::Encrypt(_)
            | CeilingOp::Decrypt(_)
            | CeilingOp::GenerateDataKey
            | CeilingOp::ReEncrypt(_) => s
                .generate_key(&Mechanism::AesKeyGen, &aes_template())
                .map_err(|e| TokenError::ck("C_GenerateKey", e))?,
            CeilingOp::HmacSha256 => s
                .generate_key(
                    &Mechanism::GenericSecretKeyGen,
                    &protected([
                        Attribute::Class(ObjectClass::SECRET_KEY),
                        Attribute::KeyType(KeyType::GENERIC_SECRET),
                        Attribute::ValueLen(32.into()),
                        Attribute::Sign(true),
                        Attribute::Verify(true),
                    ]),
                )
                .map_err(|e| TokenError::ck("C_GenerateKey", e))?,
            CeilingOp::SignEcdsaP256 | CeilingOp::SignRsaPss2048 => {
                let (mech, public) = if op == CeilingOp::SignEcdsaP256 {
                    (
                        Mechanism::EccKeyPairGen,
                        public_template([Attribute::EcParams(P256_OID.to_vec())]),
                    )
                } else {
                    (
                        Mechanism::RsaPkcsKeyPairGen,
                        public_template([
                            Attribute::ModulusBits(2048.into()),
                            Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                        ]),
                    )
                };
                let (public, private) = s
                    .generate_key_pair(&mech, &public, &protected([Attribute::Sign(true)]))
                    .map_err(|e| TokenError::ck("C_GenerateKeyPair", e))?;
                self.objects.push(public);
                private
            }
        };
        self.objects.push(key);
        self.key = Some(key);
        if let CeilingOp::Decrypt(_) | CeilingOp::ReEncrypt(_) = op {
            self.sealed = Some(encrypt(s, key, &self.plaintext)?);
        }
        Ok(())
    }

    /// Destroy every object; report the first failure after trying them all.
    fn destroy(&mut self, s: &Session) -> Result<()> {
        let mut first = Ok(());
        for h in self.objects.drain(..) {
            if let Err(e) = s.destroy_object(h) {
                if first.is_ok() {
                    first = Err(TokenError::ck("C_DestroyObject", e));
                }
            }
        }
        first
    }
}

fn new_histogram() -> Result<Histogram<u64>> {
    // 1 ns .. 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000_000, 3).map_err(|_| histogram_error())
}

fn histogram_error() -> TokenError {
    TokenError::Ceiling("latency histogram out of range")
}

fn join_error() -> TokenError {
    TokenError::Ceiling("a measuring thread panicked")
}
