//! The token layer: the only module that talks PKCS#11 (cryptoki).
//!
//! Architecture invariants:
//! - One logged-in session stays open for the life of the process (`anchor`), so the token
//!   never logs the application out and object handles stay valid.
//! - After a device or session fault the token heals itself: the failing request gets an error,
//!   the pool and the handle cache are dropped, and the next request reconnects (find the slot
//!   by label, open the anchor, log in) with exponential backoff while the token stays away.
//! - Work sessions come from a pool; every call runs on a blocking thread.
//! - Object handles are cached by (object class, `CKA_ID`); a key pair's private and public
//!   objects share one `CKA_ID`. The token is searched once at start-up and on a cache miss for
//!   an object the store says exists, never per request.
//! - Cryptographic calls use a *working copy* of the key: a session object made inside the token
//!   from the token object with `C_CopyObject` (`CKA_TOKEN=false`, everything else kept), owned
//!   by the anchor session. Tokens like SoftHSM re-read a token object's file on every use; a
//!   session object lives in memory. The copy's `CKA_SENSITIVE`/`CKA_EXTRACTABLE` are read back
//!   and the copy is discarded (the token object used instead) unless they are true/false. Copies
//!   die with the anchor (token reset → rebuilt on next use) and are destroyed with their token
//!   object.
//! - Secret and private keys are created `CKA_SENSITIVE=true`, `CKA_EXTRACTABLE=false`,
//!   `CKA_PRIVATE=true`.
//! - The mechanisms the token offers are probed once at start-up ([`Capabilities`]); the domain
//!   asks them before choosing how to run an algorithm.

mod asym;
mod caps;
mod ceiling;
mod error;
mod import;
mod secret;

pub use asym::{
    ExportedPair, HashAlg, MlDsaSet, MlKemSet, PairSpec, PairUse, PrivateParts, PublicParts,
    SignMech, ED25519_PARAMS, ML_KEM_SECRET_LEN,
};
pub use caps::Capabilities;
pub use ceiling::{CeilingOp, CeilingResult};
pub use error::{FaultKind, Refusal, TokenError};
pub use import::{ImportWrap, ImportedKind, ImportedPair, InvalidMaterial};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

pub type Result<T> = std::result::Result<T, TokenError>;

/// GCM nonce length used for every encryption (96 bits).
pub const GCM_IV_LEN: usize = 12;
/// GCM tag length in bytes.
pub const GCM_TAG_LEN: usize = 16;

/// What `open` needs to find and log in to a token.
pub struct TokenConfig {
    pub module: PathBuf,
    pub label: String,
    pub pin: SecretString,
    /// Threads making token calls (calls in flight at the token).
    pub threads: usize,
    /// Most working copies (session-object copies of keys) to keep; 0 = compute with the
    /// token objects themselves.
    pub working_copies: usize,
    /// The lane of its own that key pair generation runs in.
    pub keygen: KeygenLane,
}

/// Key pair generation (RSA above all: SoftHSM makes about 1.4 RSA-4096 pairs a second) runs
/// on threads of its own with a bounded queue, so a flood of it cannot take the threads that
/// cheap calls need: a generation that finds the queue full is refused (`TokenError::Busy`,
/// answered as `ThrottlingException`) instead of waiting behind the others.
#[derive(Debug, Clone, Copy)]
pub struct KeygenLane {
    /// Threads generating key pairs (calls in flight at the token for generation).
    pub threads: usize,
    /// Generations that may wait for a thread; more are refused.
    pub queue: usize,
}

impl Default for KeygenLane {
    fn default() -> Self {
        KeygenLane {
            threads: 1,
            queue: 8,
        }
    }
}

/// Protection attributes of a key object as the token reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyProtection {
    pub sensitive: bool,
    pub extractable: bool,
    /// True if `C_GetAttributeValue(CKA_VALUE)` returned the key bytes.
    pub value_readable: bool,
}

impl KeyProtection {
    /// Sensitive, non-extractable, value unreadable: how key material must be held.
    pub fn holds(&self) -> bool {
        self.sensitive && !self.extractable && !self.value_readable
    }
}

/// The classes of key object this service creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Secret,
    Private,
    Public,
}

impl ObjectKind {
    fn class(self) -> ObjectClass {
        match self {
            ObjectKind::Secret => ObjectClass::SECRET_KEY,
            ObjectKind::Private => ObjectClass::PRIVATE_KEY,
            ObjectKind::Public => ObjectClass::PUBLIC_KEY,
        }
    }

    fn of(class: ObjectClass) -> Option<ObjectKind> {
        [ObjectKind::Secret, ObjectKind::Private, ObjectKind::Public]
            .into_iter()
            .find(|k| k.class() == class)
    }

    /// Secret and private keys are key material; public keys are derived from it.
    pub fn is_material(self) -> bool {
        self != ObjectKind::Public
    }
}

/// A key object found in the token at start-up.
#[derive(Debug, Clone)]
pub struct FoundObject {
    pub id: Vec<u8>,
    pub label: String,
    pub kind: ObjectKind,
}

/// A logged-in PKCS#11 token. Cheap to clone.
#[derive(Clone)]
pub struct Token {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Pkcs11,
    /// The module file (`LIBRARY_USERS`).
    module: std::path::PathBuf,
    label: String,
    pin: SecretString,
    conn: Mutex<Conn>,
    pool: Mutex<Vec<Session>>,
    handles: RwLock<HashMap<(ObjectKind, Vec<u8>), ObjectHandle>>,
    /// Working copies (session objects) of key material, by (class, `CKA_ID`); a token object's
    /// own handle when no safe copy could be made.
    copies: RwLock<HashMap<(ObjectKind, Vec<u8>), ObjectHandle>>,
    /// At most this many working copies (each costs token memory); 0 = none.
    max_copies: usize,
    caps: Capabilities,
    workers: Workers,
    keygen: KeygenLane,
    /// Objects the store names that this token's last search did not find (`is_missing`).
    missing: RwLock<std::collections::HashSet<Vec<u8>>>,
    /// Which RSA-OAEP hashes the token does itself.
    oaep: asym::OaepSupport,
    /// Reads secret attribute values into wiping buffers.
    secrets: secret::SecretReader,
    /// GCM IVs from the token's RNG, drawn `IVS_PER_DRAW` at a time (`Inner::next_iv`).
    ivs: Mutex<Vec<[u8; GCM_IV_LEN]>>,
}

/// IVs drawn from the token's RNG with one `C_GenerateRandom`: one call per this many
/// encryptions instead of one each (the call cost as much as a tenth of an Encrypt's CPU).
const IVS_PER_DRAW: usize = 256;

/// The shortest time between two library reloads.
const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Held shared by every call into a PKCS#11 library and exclusively by `Inner::reload`, which
/// finalizes and initializes it: that is process-wide (every `Token` of the process on that
/// library — the default token and custom key stores — loses its sessions), so no call may be
/// inside the library then, and every `Token` is reset first.
static LIBRARY_GATE: RwLock<()> = RwLock::new(());
/// How many open tokens use each module: the last one to close finalizes it, so the next
/// `C_Initialize` (a new `Token::open` in the same process) reads its configuration afresh.
static LIBRARY_USERS: Mutex<Vec<(std::path::PathBuf, usize)>> = Mutex::new(Vec::new());
/// Every open token's state, for `reload` to reset.
static OPEN_TOKENS: Mutex<Vec<std::sync::Weak<Inner>>> = Mutex::new(Vec::new());
/// When a library was last reloaded.
static LAST_RELOAD: Mutex<Option<std::time::Instant>> = Mutex::new(None);
/// Whether other processes (other nodes) create objects in this process's tokens.
static SHARED_WITH_OTHER_PROCESSES: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Declare that other processes share the tokens (several nodes on one token): a known object
/// missing from this process's view then makes it reload the library (see `run_known`).
pub fn shared_with_other_processes(shared: bool) {
    SHARED_WITH_OTHER_PROCESSES.store(shared, std::sync::atomic::Ordering::Relaxed);
}

type Job = Box<dyn FnOnce() + Send>;

/// The token's own threads: every blocking token call runs on one of them, never on the
/// async executor. A fixed set drawing from one queue: under load a worker takes the next
/// call without going to sleep, so a call costs no thread wake-up (tokio's growing blocking
/// pool wakes a sleeping thread for nearly every call). The count bounds the calls in flight
/// at the token (`token.threads`).
struct Workers {
    queue: flume::Sender<Job>,
    threads: usize,
    /// Key pair generation's own lane (bounded).
    keygen: flume::Sender<Job>,
}

/// Which threads a call runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Calls,
    Keygen,
}

fn spawn_workers(
    label: &str,
    name: &str,
    threads: usize,
    jobs: &flume::Receiver<Job>,
) -> Result<()> {
    for i in 0..threads {
        let jobs = jobs.clone();
        std::thread::Builder::new()
            .name(format!("{name}-{i}"))
            .spawn(move || {
                while let Ok(job) = jobs.recv() {
                    // A panicking call drops its reply (the caller gets an error); the
                    // thread lives on.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .map_err(|e| TokenError::Join(format!("starting token thread for {label:?}: {e}")))?;
    }
    Ok(())
}

impl Workers {
    fn start(label: &str, threads: usize, keygen: KeygenLane) -> Result<Workers> {
        let (queue, jobs) = flume::unbounded::<Job>();
        spawn_workers(label, "token", threads.max(1), &jobs)?;
        let (keygen_queue, keygen_jobs) = flume::bounded::<Job>(keygen.queue);
        spawn_workers(label, "token-keygen", keygen.threads.max(1), &keygen_jobs)?;
        Ok(Workers {
            queue,
            threads: threads.max(1),
            keygen: keygen_queue,
        })
    }

    fn submit(&self, lane: Lane, job: Job) -> Result<()> {
        match lane {
            Lane::Calls => self
                .queue
                .send(job)
                .map_err(|_| TokenError::Join("token threads stopped".into())),
            Lane::Keygen => self.keygen.try_send(job).map_err(|e| match e {
                flume::TrySendError::Full(_) => {
                    crate::metrics::THROTTLED
                        .with_label_values(&[crate::metrics::KEYGEN_THROTTLED])
                        .inc();
                    TokenError::Busy("key generation")
                }
                flume::TrySendError::Disconnected(_) => {
                    TokenError::Join("token threads stopped".into())
                }
            }),
        }
    }
}

/// The logged-in connection: the anchor session keeps the login for the life of the process.
struct Conn {
    slot: Slot,
    anchor: Option<Session>,
    next_attempt: std::time::Instant,
    backoff: std::time::Duration,
}

const MIN_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);

/// Load a PKCS#11 module and initialize it (with OS locking; already initialized is fine).
fn load(module: &std::path::Path) -> Result<Pkcs11> {
    pin_module(module);
    let ctx = Pkcs11::new(module).map_err(|e| TokenError::ck("C_LoadModule", e))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(ctx),
        Err(e) => Err(TokenError::ck("C_Initialize", e)),
    }
}

/// Keep the module mapped until the process exits, even after every `Pkcs11` on it is dropped
/// (which unloads it): a token built on OpenSSL (Kryoptic) leaves thread-specific data whose
/// destructors run when each thread that called it ends, possibly after the unload.
fn pin_module(module: &std::path::Path) {
    // SAFETY: loading the module runs its initializers, as `Pkcs11::new` does right after
    // with the same file; nothing is called through this handle.
    match unsafe { libloading::Library::new(module) } {
        // A reference that is never released: the module is never unmapped.
        Ok(lib) => std::mem::forget(lib),
        Err(e) => tracing::debug!(error = %e, "module not pinned"),
    }
}

/// The slot holding the initialized token with this label, if any.
fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Option<Slot>> {
    let slots = ctx
        .get_slots_with_initialized_token()
        .map_err(|e| TokenError::ck("C_GetSlotList", e))?;
    for slot in slots {
        let info = ctx
            .get_token_info(slot)
            .map_err(|e| TokenError::ck("C_GetTokenInfo", e))?;
        if info.label().trim_end() == label {
            return Ok(Some(slot));
        }
    }
    Ok(None)
}

/// A failure that is either bad input or a failing token (answered with the same code by
/// some tokens): `healthy` — a round trip with the same key still works — says it was the input.
fn bad_input_or_device(op: &'static str, e: CkError, healthy: bool) -> TokenError {
    let kind = if healthy {
        FaultKind::BadInput
    } else {
        tracing::warn!(
            op,
            "the call failed and the token fails a round trip with the key too"
        );
        FaultKind::Device
    };
    TokenError::Pkcs11 {
        op,
        kind,
        source: e,
    }
}

/// Find the token by label, open a session and log in.
fn connect(ctx: &Pkcs11, label: &str, pin: &SecretString) -> Result<(Slot, Session)> {
    let slot = find_slot(ctx, label)?.ok_or_else(|| TokenError::TokenNotFound(label.to_owned()))?;
    let anchor = ctx
        .open_rw_session(slot)
        .map_err(|e| TokenError::ck("C_OpenSession", e))?;
    let auth = AuthPin::from(pin.expose_secret().to_owned());
    match anchor.login(UserType::User, Some(&auth)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => return Err(TokenError::ck("C_Login", e)),
    }
    Ok((slot, anchor))
}

impl Drop for Inner {
    fn drop(&mut self) {
        let last = {
            let mut users = LIBRARY_USERS.lock().unwrap_or_else(|p| p.into_inner());
            let n = users
                .iter_mut()
                .find(|(m, _)| *m == self.module)
                .map(|(_, n)| {
                    *n = n.saturating_sub(1);
                    *n
                });
            users.retain(|(_, n)| *n > 0);
            n == Some(0)
        };
        if last {
            // Sessions close while the library still knows them; then it is finalized.
            let _excl = LIBRARY_GATE.write().unwrap_or_else(|p| p.into_inner());
            self.pool
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            self.conn
                .get_mut()
                .unwrap_or_else(|p| p.into_inner())
                .anchor = None;
            if let Err(e) = self.ctx.clone().finalize() {
                tracing::debug!(error = %e, "C_Finalize");
            }
        }
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("label", &self.inner.label)
            .finish()
    }
}

impl Token {
    /// Load the module, find the token by label, log in and keep that session open.
    /// Blocking: call from start-up code or a blocking thread.
    pub fn open(cfg: &TokenConfig) -> Result<Token> {
        let ctx = load(&cfg.module)?;
        let (slot, anchor) = connect(&ctx, &cfg.label, &cfg.pin)?;
        let caps = Capabilities::probe(&ctx, slot, &anchor)?;
        {
            let mut users = LIBRARY_USERS.lock().unwrap_or_else(|p| p.into_inner());
            match users.iter_mut().find(|(m, _)| *m == cfg.module) {
                Some((_, n)) => *n += 1,
                None => users.push((cfg.module.clone(), 1)),
            }
        }
        let token = Token {
            inner: Arc::new(Inner {
                ctx,
                module: cfg.module.clone(),
                label: cfg.label.clone(),
                pin: cfg.pin.clone(),
                conn: Mutex::new(Conn {
                    slot,
                    anchor: Some(anchor),
                    next_attempt: std::time::Instant::now(),
                    backoff: MIN_BACKOFF,
                }),
                pool: Mutex::new(Vec::new()),
                handles: RwLock::new(HashMap::new()),
                copies: RwLock::new(HashMap::new()),
                max_copies: cfg.working_copies,
                caps,
                workers: Workers::start(&cfg.label, cfg.threads, cfg.keygen)?,
                keygen: cfg.keygen,
                missing: RwLock::new(std::collections::HashSet::new()),
                oaep: Default::default(),
                secrets: secret::SecretReader::of(&cfg.module),
                ivs: Mutex::new(Vec::new()),
            }),
        };
        OPEN_TOKENS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(&token.inner));
        Ok(token)
    }

    /// Is an initialized token with this label reachable through `module`? (Blocking.)
    pub fn label_exists(module: &std::path::Path, label: &str) -> Result<bool> {
        Ok(find_slot(&load(module)?, label)?.is_some())
    }

    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// How many threads make this token's calls.
    pub fn threads(&self) -> usize {
        self.inner.workers.threads
    }

    /// Did the last search for this object (a key the store names) find nothing? Set by a
    /// failed lookup (after its retries) and by `note_missing`, cleared when it is found again.
    pub fn is_missing(&self, id: &[u8]) -> bool {
        let set = self.inner.missing.read().unwrap_or_else(|p| p.into_inner());
        !set.is_empty() && set.contains(id)
    }

    /// Record objects the store names that the token does not hold (start-up reconciliation).
    pub fn note_missing(&self, id: &[u8]) {
        self.inner.set_missing(id, true);
    }

    /// Key pair generation's lane.
    pub fn keygen_lane(&self) -> KeygenLane {
        self.inner.keygen
    }

    /// The most working copies this token keeps.
    pub fn max_working_copies(&self) -> usize {
        self.inner.max_copies
    }

    /// What the token can do, probed at start-up.
    pub fn capabilities(&self) -> &Capabilities {
        &self.inner.caps
    }

    /// Run `f` with a pooled session on a blocking thread.
    #[allow(dead_code)] // for calls that need no metric name of their own
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &Session) -> Result<T> + Send + 'static,
    {
        self.run_named("other", f).await
    }

    /// `run`, timing the call under `call` in the token-call latency metric.
    async fn run_named<T, F>(&self, call: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &Session) -> Result<T> + Send + 'static,
    {
        self.run_in(Lane::Calls, call, f).await
    }

    /// `run_named` in key generation's own lane (see `KeygenLane`).
    async fn run_keygen<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &Session) -> Result<T> + Send + 'static,
    {
        self.run_in(Lane::Keygen, "generate_key_pair", f).await
    }

    async fn run_in<T, F>(&self, lane: Lane, call: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner, &Session) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        self.inner.workers.submit(
            lane,
            Box::new(move || {
                let result = inner.with_session(call, |s| f(&inner, s));
                // Let go of the token before answering: the last handle must never be dropped on
                // a token thread (that would finalize the library there, racing process exit).
                drop(inner);
                let _ = done.send(result);
            }),
        )?;
        result
            .await
            .map_err(|_| TokenError::Join(format!("token call {call} did not finish")))?
    }

    /// `run_named` for a call on an object the store names. If the token still says the
    /// object does not exist after `Inner::known`'s searches, this process's view of the token
    /// may be stale: SoftHSM indexes a token's objects per process and can miss an object
    /// another process (node) created, until the library is initialized again (measured: a
    /// new process finds it at once). So the library is reloaded (at most once per
    /// `RELOAD_EVERY`) and the call made once more.
    async fn run_known<T, F>(&self, call: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Inner, &Session) -> Result<T> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let first = {
            let f = f.clone();
            self.run_named(call, move |inner, s| f(inner, s)).await
        };
        // A stale handle (the connection was reset by `with_session`): once more, afresh.
        let first = match first {
            Err(ref e)
                if matches!(
                    e.rv(),
                    Some(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid)
                ) =>
            {
                let f = f.clone();
                self.run_named(call, move |inner, s| f(inner, s)).await
            }
            other => other,
        };
        match first {
            Err(TokenError::ObjectNotFound(ref missing))
                if SHARED_WITH_OTHER_PROCESSES.load(std::sync::atomic::Ordering::Relaxed) =>
            {
                let (inner, id) = (self.inner.clone(), missing.clone());
                let reloaded = tokio::task::spawn_blocking(move || inner.reload(&id))
                    .await
                    .unwrap_or(false);
                if !reloaded {
                    return first;
                }
                self.run_named(call, move |inner, s| f(inner, s)).await
            }
            other => other,
        }
    }

    /// Is the logged-in anchor session still usable?
    pub async fn check(&self) -> Result<()> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _shared = LIBRARY_GATE.read().unwrap_or_else(|p| p.into_inner());
            inner.ensure_connected()?;
            let conn = inner.conn.lock().unwrap_or_else(|p| p.into_inner());
            let anchor = conn.anchor.as_ref().ok_or(TokenError::NotLoggedIn)?;
            let state = anchor
                .get_session_info()
                .map(|i| i.session_state())
                .map_err(|e| TokenError::ck("C_GetSessionInfo", e));
            drop(conn);
            match state {
                Ok(
                    cryptoki::session::SessionState::RwUser
                    | cryptoki::session::SessionState::RoUser,
                ) => Ok(()),
                Ok(_) => {
                    inner.mark_broken("anchor session is not logged in");
                    Err(TokenError::NotLoggedIn)
                }
                Err(e) => {
                    if matches!(e.kind(), FaultKind::Device | FaultKind::SessionFatal) {
                        inner.mark_broken("anchor session failed");
                    }
                    Err(e)
                }
            }
        })
        .await
        .map_err(|e| TokenError::Join(e.to_string()))?
    }

    /// Scan the token once for key objects (secret, private, public) and fill the handle cache.
    pub async fn load_objects(&self) -> Result<Vec<FoundObject>> {
        self.run_named("find_objects", |inner, s| {
            let handles = s
                .find_objects(&[Attribute::Token(true)])
                .map_err(|e| TokenError::ck("C_FindObjects", e))?;
            // On a file-backed token (SoftHSM) every attribute read of a token object re-reads
            // its file: with 10,000 keys this is most of the start-up. Two threads (one
            // session each) cut it by about a third.
            let chunk = handles.len().div_ceil(2).max(1);
            let read: Vec<Result<Vec<(ObjectHandle, FoundObject)>>> = std::thread::scope(|scope| {
                let mut parts = handles.chunks(chunk);
                let first = parts.next();
                let second = parts.next().map(|part| {
                    scope.spawn(move || {
                        inner.with_session("get_attribute_value", |s| describe_objects(s, part))
                    })
                });
                let mut all = vec![first.map_or(Ok(Vec::new()), |part| describe_objects(s, part))];
                if let Some(t) = second {
                    all.push(t.join().unwrap_or_else(|_| {
                        Err(TokenError::Join(
                            "reading object attributes panicked".into(),
                        ))
                    }));
                }
                all
            });
            let mut found = Vec::with_capacity(handles.len());
            let mut cache = inner.handles.write().unwrap_or_else(|p| p.into_inner());
            for part in read {
                for (h, f) in part? {
                    cache.insert((f.kind, f.id.clone()), h);
                    found.push(f);
                }
            }
            Ok(found)
        })
        .await
    }

    /// Generate a persistent, non-extractable AES-256 key with the given `CKA_ID` and label.
    pub async fn generate_aes_key(&self, id: Vec<u8>, label: String) -> Result<()> {
        self.run_named("generate_key", move |inner, s| {
            let template = [
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                // Only the usages the key needs. (CKA_MODIFIABLE stays true: SoftHSM 2.6.1 refuses
                // C_CopyObject of a non-modifiable object, and the working copies need it.)
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Sign(false),
                Attribute::Verify(false),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
                Attribute::Derive(false),
                Attribute::Id(id.clone()),
                Attribute::Label(label.into_bytes()),
            ];
            let h = s
                .generate_key(&Mechanism::AesKeyGen, &template)
                .map_err(|e| TokenError::ck("C_GenerateKey", e))?;
            inner.cache_insert(ObjectKind::Secret, id, h);
            Ok(())
        })
        .await
    }

    /// AES-GCM encryption under a fresh IV from the token's RNG. Returns `(iv, ciphertext‖tag)`.
    /// `aad` must not be empty (some SoftHSM builds crash on empty AAD).
    pub async fn encrypt_gcm(
        &self,
        id: Vec<u8>,
        aad: Vec<u8>,
        plaintext: Zeroizing<Vec<u8>>,
    ) -> Result<([u8; GCM_IV_LEN], Vec<u8>)> {
        debug_assert!(!aad.is_empty());
        self.run_known("encrypt_aes_gcm", move |inner, s| {
            let key = inner.working(s, ObjectKind::Secret, &id)?;
            let iv = inner.next_iv(s)?;
            let mut iv_param = iv;
            let params = GcmParams::new(&mut iv_param, &aad, ((GCM_TAG_LEN * 8) as u64).into())
                .map_err(|e| TokenError::ck("GcmParams", e))?;
            let ct = s
                .encrypt(&Mechanism::AesGcm(params), key, &plaintext)
                .map_err(|e| TokenError::ck("C_Encrypt", e))?;
            Ok((iv, ct))
        })
        .await
    }

    /// Seal a secret for storage: AES-GCM under the key `id` with `aad`, framed as IV ‖ ciphertext.
    pub async fn seal(
        &self,
        id: Vec<u8>,
        aad: Vec<u8>,
        secret: Zeroizing<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let (iv, ct) = self.encrypt_gcm(id, aad, secret).await?;
        let mut out = iv.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Open what `seal` produced; a corrupt or altered frame is a `BadInput` failure.
    pub async fn unseal(
        &self,
        id: Vec<u8>,
        aad: Vec<u8>,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        let (iv, ct) = sealed
            .split_first_chunk::<GCM_IV_LEN>()
            .filter(|(_, ct)| !ct.is_empty())
            .ok_or(TokenError::Rejected("sealed data is too short"))?;
        self.decrypt_gcm(id, *iv, aad, ct.to_vec()).await
    }

    /// AES-GCM decryption; a bad tag or AAD is reported with kind `BadInput`
    /// (SoftHSM answers CKR_GENERAL_ERROR there, which we fold in too).
    pub async fn decrypt_gcm(
        &self,
        id: Vec<u8>,
        iv: [u8; GCM_IV_LEN],
        aad: Vec<u8>,
        ciphertext: Vec<u8>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        debug_assert!(!aad.is_empty());
        self.run_known("decrypt_aes_gcm", move |inner, s| {
            let key = inner.working(s, ObjectKind::Secret, &id)?;
            let mut iv = iv;
            let params = GcmParams::new(&mut iv, &aad, ((GCM_TAG_LEN * 8) as u64).into())
                .map_err(|e| TokenError::ck("GcmParams", e))?;
            match s.decrypt(&Mechanism::AesGcm(params), key, &ciphertext) {
                Ok(pt) => Ok(Zeroizing::new(pt)),
                // SoftHSM answers a bad tag with CKR_GENERAL_ERROR, which is also what a
                // failing token says. A round trip with the same key tells them apart: if it
                // works, the ciphertext was bad; if not, the token is, and the caller gets a
                // (retryable) token error instead of being told a valid ciphertext is invalid.
                Err(e @ CkError::Pkcs11(RvError::GeneralError, _)) => {
                    Err(bad_input_or_device("C_Decrypt", e, gcm_round_trip(s, key)))
                }
                Err(e) => Err(TokenError::ck("C_Decrypt", e)),
            }
        })
        .await
    }

    /// Random bytes from the token's RNG.
    pub async fn random(&self, len: usize) -> Result<Zeroizing<Vec<u8>>> {
        self.run_named("generate_random", move |_, s| {
            let mut buf = Zeroizing::new(vec![0u8; len]);
            s.generate_random_slice(&mut buf)
                .map_err(|e| TokenError::ck("C_GenerateRandom", e))?;
            Ok(buf)
        })
        .await
    }

    /// Does key material (a secret or private key) with this `CKA_ID` exist?
    pub async fn exists(&self, id: Vec<u8>) -> Result<bool> {
        // One search, no retries: asked about objects that may well not exist yet.
        self.run_named("find_objects", move |inner, s| {
            for kind in [ObjectKind::Secret, ObjectKind::Private] {
                match inner.handle(s, kind, &id) {
                    Ok(_) => return Ok(true),
                    Err(TokenError::ObjectNotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(false)
        })
        .await
    }

    /// Destroy every key object with this `CKA_ID` (no error if there is none).
    pub async fn destroy(&self, id: Vec<u8>) -> Result<()> {
        self.run_named("destroy_object", move |inner, s| {
            for kind in [ObjectKind::Secret, ObjectKind::Private, ObjectKind::Public] {
                inner.drop_copy(s, kind, &id)?;
                let h = match inner.handle(s, kind, &id) {
                    Ok(h) => h,
                    Err(TokenError::ObjectNotFound(_)) => continue,
                    Err(e) => return Err(e),
                };
                s.destroy_object(h)
                    .map_err(|e| TokenError::ck("C_DestroyObject", e))?;
                inner
                    .handles
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&(kind, id.clone()));
            }
            Ok(())
        })
        .await
    }

    /// Copy the key material with `CKA_ID` `from` — a secret key, or a private key and its
    /// public key — inside the token into new token objects with `CKA_ID` `to` and `label`
    /// (`C_CopyObject` with `CKA_TOKEN=true`): a multi-Region replica's own material. Every
    /// other attribute is kept; the copies' `CKA_SENSITIVE`/`CKA_EXTRACTABLE` are read back and
    /// the copies destroyed unless they hold. Objects already copied (a retry after a crash)
    /// are kept. The material never leaves the token.
    pub async fn copy_key(&self, from: Vec<u8>, to: Vec<u8>, label: String) -> Result<()> {
        self.run_known("copy_object", move |inner, s| {
            let (kind, original) = inner.material(s, &from)?;
            let mut made = Vec::new();
            let result = copy_pair(inner, s, kind, original, &from, &to, &label, &mut made);
            if result.is_err() {
                for (k, h) in made {
                    let _ = s.destroy_object(h);
                    inner
                        .handles
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&(k, to.clone()));
                }
            }
            result
        })
        .await
    }

    /// Read back the protection attributes of a secret or private key (and whether its value
    /// can be read).
    pub async fn key_protection(&self, id: Vec<u8>) -> Result<KeyProtection> {
        self.run_named("get_attribute_value", move |inner, s| {
            let (kind, h) = inner.material(s, &id)?;
            Ok(read_protection(s, kind, h))
        })
        .await
    }

    /// The protection attributes of the working copy that cryptographic calls on `id` use
    /// (made now if there is none yet), and whether that copy is a session object (false: the
    /// token object itself is used).
    pub async fn working_copy_protection(&self, id: Vec<u8>) -> Result<(KeyProtection, bool)> {
        self.run_named("get_attribute_value", move |inner, s| {
            let (kind, _) = inner.material(s, &id)?;
            let h = inner.working(s, kind, &id)?;
            let session_object = match s.get_attributes(h, &[AttributeType::Token]) {
                Ok(attrs) => attrs.iter().any(|a| matches!(a, Attribute::Token(false))),
                Err(e) => return Err(TokenError::ck("C_GetAttributeValue", e)),
            };
            Ok((read_protection(s, kind, h), session_object))
        })
        .await
    }
}

/// `Token::copy_key`'s work: the material object, then the public key if there is one;
/// what it created is pushed to `made` (for the caller to destroy on failure).
#[allow(clippy::too_many_arguments)]
fn copy_pair(
    inner: &Inner,
    s: &Session,
    kind: ObjectKind,
    original: ObjectHandle,
    from: &[u8],
    to: &[u8],
    label: &str,
    made: &mut Vec<(ObjectKind, ObjectHandle)>,
) -> Result<()> {
    for k in [kind, ObjectKind::Public] {
        let source = if k == kind {
            original
        } else {
            match inner.handle(s, k, from) {
                Ok(h) => h,
                Err(TokenError::ObjectNotFound(_)) => continue,
                Err(e) => return Err(e),
            }
        };
        match inner.handle(s, k, to) {
            Ok(_) => continue,
            Err(TokenError::ObjectNotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let template = [
            Attribute::Token(true),
            Attribute::Id(to.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let h = s
            .copy_object(source, &template)
            .map_err(|e| TokenError::ck("C_CopyObject", e))?;
        made.push((k, h));
        if k != ObjectKind::Public && !read_protection(s, k, h).holds() {
            return Err(TokenError::Rejected(
                "the token's copy of a key is not sensitive and non-extractable",
            ));
        }
        inner.cache_insert(k, to.to_vec(), h);
    }
    Ok(())
}

/// Encrypt and decrypt a fixed block with `key` (AES-GCM): does the token work with it?
fn gcm_round_trip(s: &Session, key: ObjectHandle) -> bool {
    let probe = [0x5au8; 16];
    let aad = b"kms-bridge token probe";
    let mut iv = [0u8; GCM_IV_LEN];
    if s.generate_random_slice(&mut iv).is_err() {
        return false;
    }
    let tag_bits = ((GCM_TAG_LEN * 8) as u64).into();
    let mut iv_enc = iv;
    let Ok(params) = GcmParams::new(&mut iv_enc, aad, tag_bits) else {
        return false;
    };
    let Ok(ct) = s.encrypt(&Mechanism::AesGcm(params), key, &probe) else {
        return false;
    };
    let mut iv_dec = iv;
    let Ok(params) = GcmParams::new(&mut iv_dec, aad, tag_bits) else {
        return false;
    };
    matches!(s.decrypt(&Mechanism::AesGcm(params), key, &ct), Ok(pt) if pt == probe)
}

impl Inner {
    /// A fresh 96-bit GCM IV from the token's RNG. IVs are drawn in blocks and each is
    /// handed out once (random IVs, as NIST SP 800-38D 8.2.2 allows; an IV is no secret, so
    /// keeping the block in process memory costs nothing).
    fn next_iv(&self, s: &Session) -> Result<[u8; GCM_IV_LEN]> {
        let mut ivs = self.ivs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(iv) = ivs.pop() {
            return Ok(iv);
        }
        let mut block = vec![0u8; GCM_IV_LEN * IVS_PER_DRAW];
        s.generate_random_slice(&mut block)
            .map_err(|e| TokenError::ck("C_GenerateRandom", e))?;
        ivs.extend(block.chunks_exact(GCM_IV_LEN).map(|c| {
            let mut iv = [0u8; GCM_IV_LEN];
            iv.copy_from_slice(c);
            iv
        }));
        ivs.pop()
            .ok_or_else(|| TokenError::Join("no IV drawn".into()))
    }

    /// Reconnect if a fault dropped the connection (respecting the backoff); Ok(slot) when
    /// the token is usable.
    fn ensure_connected(&self) -> Result<Slot> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if conn.anchor.is_some() {
            return Ok(conn.slot);
        }
        let now = std::time::Instant::now();
        if now < conn.next_attempt {
            return Err(TokenError::Unavailable(format!(
                "token {:?} is unavailable; reconnecting",
                self.label
            )));
        }
        let attempt = match connect(&self.ctx, &self.label, &self.pin) {
            Err(TokenError::Pkcs11 {
                source: CkError::Pkcs11(RvError::CryptokiNotInitialized, _),
                ..
            }) => {
                // The library was finalized underneath us: initialize it again.
                let _ = self
                    .ctx
                    .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
                connect(&self.ctx, &self.label, &self.pin)
            }
            other => other,
        };
        match attempt {
            Ok((slot, anchor)) => {
                conn.slot = slot;
                conn.anchor = Some(anchor);
                conn.backoff = MIN_BACKOFF;
                self.forget_handles();
                tracing::info!(label = %self.label, "token reconnected and logged in");
                Ok(slot)
            }
            Err(e) => {
                conn.next_attempt = now + conn.backoff;
                conn.backoff = (conn.backoff * 2).min(MAX_BACKOFF);
                tracing::warn!(label = %self.label, error = %e, "token reconnect failed; backing off");
                Err(TokenError::Unavailable(format!(
                    "token {:?} is unavailable: {e}",
                    self.label
                )))
            }
        }
    }

    /// After a device or login fault: drop the anchor, the pooled sessions and the cached
    /// handles; the next request reconnects.
    fn mark_broken(&self, why: &str) {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if conn.anchor.take().is_some() {
            tracing::warn!(label = %self.label, why, "token fault: dropping sessions, will reconnect");
            conn.next_attempt = std::time::Instant::now();
        }
        drop(conn);
        let drained: Vec<Session> =
            std::mem::take(&mut *self.pool.lock().unwrap_or_else(|p| p.into_inner()));
        crate::metrics::TOKEN_SESSIONS
            .with_label_values(&["idle"])
            .sub(drained.len() as i64);
        drop(drained);
        self.forget_handles();
    }

    /// Finalize and initialize the library (a fresh view of the token), dropping every
    /// session, handle and working copy; the next call reconnects and logs in. False if a
    /// reload happened less than `RELOAD_EVERY` ago.
    fn reload(&self, missing: &str) -> bool {
        let _excl = LIBRARY_GATE.write().unwrap_or_else(|p| p.into_inner());
        {
            let mut last = LAST_RELOAD.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < RELOAD_EVERY) {
                return false;
            }
            *last = Some(std::time::Instant::now());
        }
        tracing::warn!(label = %self.label, object = missing, "a known object is missing from this process's view of the token; reloading the PKCS#11 library");
        // Every token of the process closes its sessions while the library still knows them
        // (no call is in flight: the gate is ours); they reconnect on their next call.
        let open: Vec<Arc<Inner>> = {
            let mut list = OPEN_TOKENS.lock().unwrap_or_else(|p| p.into_inner());
            list.retain(|w| w.strong_count() > 0);
            list.iter().filter_map(|w| w.upgrade()).collect()
        };
        for t in &open {
            t.mark_broken("library reload");
        }
        self.mark_broken("reload");
        let _ = self.ctx.clone().finalize();
        if let Err(e) = self
            .ctx
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        {
            tracing::warn!(error = %e, "C_Initialize after reload failed; the next call retries");
        }
        true
    }

    fn with_session<T>(
        &self,
        call: &'static str,
        f: impl FnOnce(&Session) -> Result<T>,
    ) -> Result<T> {
        let _shared = LIBRARY_GATE.read().unwrap_or_else(|p| p.into_inner());
        let slot = self.ensure_connected()?;
        let sessions = &crate::metrics::TOKEN_SESSIONS;
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        if pooled.is_some() {
            sessions.with_label_values(&["idle"]).dec();
        }
        let session = match pooled {
            Some(s) => s,
            None => match self.ctx.open_rw_session(slot) {
                Ok(s) => s,
                Err(e) => {
                    let e = TokenError::ck("C_OpenSession", e);
                    if matches!(e.kind(), FaultKind::Device | FaultKind::SessionFatal) {
                        self.mark_broken("C_OpenSession failed");
                    }
                    return Err(e);
                }
            },
        };
        sessions.with_label_values(&["in_use"]).inc();
        let started = std::time::Instant::now();
        let result = f(&session);
        crate::metrics::TOKEN_CALL_SECONDS
            .with_label_values(&[call])
            .observe(started.elapsed().as_secs_f64());
        sessions.with_label_values(&["in_use"]).dec();
        if let Err(e) = &result {
            let logged_out = matches!(e.rv(), Some(RvError::UserNotLoggedIn));
            // A cached handle the token no longer knows: look everything up afresh.
            let stale = matches!(
                e.rv(),
                Some(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid)
            );
            if e.kind() == FaultKind::Device || logged_out || stale {
                drop(session);
                self.mark_broken(call);
                return result;
            }
        }
        let keep = !matches!(
            &result,
            Err(e) if matches!(e.kind(), FaultKind::SessionFatal | FaultKind::Device)
        );
        if keep {
            self.pool
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(session);
            sessions.with_label_values(&["idle"]).inc();
        }
        result
    }

    /// Forget every cached handle and working copy (the copies died with the anchor session).
    fn forget_handles(&self) {
        self.handles
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.copies
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The handle to compute with for (`kind`, `id`): its working copy, made on first use.
    fn working(&self, s: &Session, kind: ObjectKind, id: &[u8]) -> Result<ObjectHandle> {
        let full = {
            let copies = self.copies.read().unwrap_or_else(|p| p.into_inner());
            if let Some(h) = copies.get(&(kind, id.to_vec())) {
                return Ok(*h);
            }
            copies.len() >= self.max_copies
        };
        let (_, original) = self.known(s, &[kind], id)?;
        if full {
            // Beyond `token.working_copies`: compute with the token object itself.
            return Ok(original);
        }
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let Some(anchor) = conn.anchor.as_ref() else {
            return Err(TokenError::NotLoggedIn);
        };
        let mut copies = self.copies.write().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = copies.get(&(kind, id.to_vec())) {
            return Ok(*h);
        }
        let h = match anchor.copy_object(original, &[Attribute::Token(false)]) {
            // Public keys are not secret; key material must stay protected in the copy.
            Ok(copy)
                if kind == ObjectKind::Public || read_protection(anchor, kind, copy).holds() =>
            {
                copy
            }
            Ok(copy) => {
                tracing::warn!(
                    "the token's copy of a key object is not sensitive and non-extractable; \
                     using the token object"
                );
                let _ = anchor.destroy_object(copy);
                original
            }
            Err(e) => {
                tracing::debug!(error = %e, "C_CopyObject refused; using the token object");
                original
            }
        };
        copies.insert((kind, id.to_vec()), h);
        Ok(h)
    }

    /// Destroy the working copy of (`kind`, `id`), if there is one.
    fn drop_copy(&self, s: &Session, kind: ObjectKind, id: &[u8]) -> Result<()> {
        let copy = self
            .copies
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(kind, id.to_vec()));
        let original = self
            .handles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(kind, id.to_vec()))
            .copied();
        match copy {
            Some(h) if Some(h) != original => s
                .destroy_object(h)
                .map_err(|e| TokenError::ck("C_DestroyObject", e)),
            _ => Ok(()),
        }
    }

    fn cache_insert(&self, kind: ObjectKind, id: Vec<u8>, h: ObjectHandle) {
        self.handles
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((kind, id), h);
    }

    /// Cached handle for (`kind`, `id`); on a miss, one search (the caller has checked the
    /// store first).
    fn handle(&self, s: &Session, kind: ObjectKind, id: &[u8]) -> Result<ObjectHandle> {
        if let Some(h) = self
            .handles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(kind, id.to_vec()))
        {
            return Ok(*h);
        }
        let found = s
            .find_objects(&[
                Attribute::Token(true),
                Attribute::Class(kind.class()),
                Attribute::Id(id.to_vec()),
            ])
            .map_err(|e| TokenError::ck("C_FindObjects", e))?;
        let h = *found
            .first()
            .ok_or_else(|| TokenError::ObjectNotFound(hex::encode(id)))?;
        self.cache_insert(kind, id.to_vec(), h);
        Ok(h)
    }

    /// The key material object (secret or private key) with this id.
    fn material(&self, s: &Session, id: &[u8]) -> Result<(ObjectKind, ObjectHandle)> {
        self.known(s, &[ObjectKind::Secret, ObjectKind::Private], id)
    }

    /// The handle of an object the store names, of the first of `kinds` that exists. A miss
    /// is searched again a few times (about a second in all) before it counts as missing:
    /// another process on the same token (another node) may have created it just now, and
    /// SoftHSM makes a fresh object visible to other processes only once it has flushed it
    /// (upstream issue #573). See also `Token::run_known`.
    fn known(
        &self,
        s: &Session,
        kinds: &[ObjectKind],
        id: &[u8],
    ) -> Result<(ObjectKind, ObjectHandle)> {
        const PAUSES_MS: [u64; 5] = [0, 20, 50, 100, 250];
        for pause in PAUSES_MS {
            if pause > 0 {
                std::thread::sleep(std::time::Duration::from_millis(pause));
            }
            for &kind in kinds {
                match self.handle(s, kind, id) {
                    Ok(h) => {
                        self.set_missing(id, false);
                        return Ok((kind, h));
                    }
                    Err(TokenError::ObjectNotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.set_missing(id, true);
        Err(TokenError::ObjectNotFound(hex::encode(id)))
    }

    fn set_missing(&self, id: &[u8], missing: bool) {
        // Nearly always: found, and nothing is missing (one read lock, no hashing).
        if !missing
            && self
                .missing
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
        {
            return;
        }
        let known = || {
            self.missing
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(id)
        };
        if known() != missing {
            let mut set = self.missing.write().unwrap_or_else(|p| p.into_inner());
            if missing {
                set.insert(id.to_vec());
            } else {
                set.remove(id);
            }
        }
    }
}

/// `CKA_SENSITIVE`, `CKA_EXTRACTABLE` and whether the secret value can be read.
fn read_protection(s: &Session, kind: ObjectKind, h: ObjectHandle) -> KeyProtection {
    // The secret part: CKA_VALUE (secret keys, EC private keys) or CKA_PRIVATE_EXPONENT (RSA).
    let values: &[AttributeType] = match kind {
        ObjectKind::Private => &[AttributeType::PrivateExponent, AttributeType::Value],
        _ => &[AttributeType::Value],
    };
    let mut p = KeyProtection {
        sensitive: false,
        extractable: true,
        value_readable: false,
    };
    let asked = [AttributeType::Sensitive, AttributeType::Extractable];
    for &t in asked.iter().chain(values) {
        // SoftHSM answers CKR_ATTRIBUTE_SENSITIVE for the whole call when one value is
        // sensitive, so ask one attribute at a time.
        let Ok(attrs) = s.get_attributes(h, &[t]) else {
            continue;
        };
        for a in attrs {
            match a {
                Attribute::Sensitive(v) => p.sensitive = v,
                Attribute::Extractable(v) => p.extractable = v,
                Attribute::Value(v) | Attribute::PrivateExponent(v) => {
                    p.value_readable |= !v.is_empty()
                }
                _ => {}
            }
        }
    }
    p
}

/// Class, `CKA_ID` and label of key objects (others are skipped).
fn describe_objects(
    s: &Session,
    handles: &[ObjectHandle],
) -> Result<Vec<(ObjectHandle, FoundObject)>> {
    let mut found = Vec::with_capacity(handles.len());
    for &h in handles {
        let attrs = s
            .get_attributes(
                h,
                &[
                    AttributeType::Class,
                    AttributeType::Id,
                    AttributeType::Label,
                ],
            )
            .map_err(|e| TokenError::ck("C_GetAttributeValue", e))?;
        let (mut id, mut kind) = (None, None);
        let mut label = String::new();
        for a in attrs {
            match a {
                Attribute::Class(c) => kind = ObjectKind::of(c),
                Attribute::Id(v) => id = Some(v),
                Attribute::Label(v) => label = String::from_utf8_lossy(&v).into_owned(),
                _ => {}
            }
        }
        if let (Some(id), Some(kind)) = (id, kind) {
            found.push((h, FoundObject { id, label, kind }));
        }
    }
    Ok(found)
}
