//! Console sessions: server-side, in this process's memory (a cluster behind a load balancer
//! needs sticky sessions for the console), found by a random 256-bit id whose cookie value
//! carries an HMAC under a per-process key, so a forged or altered cookie is refused before any
//! lookup. No secret is kept: a session holds the access key id, the principal's ARN, its
//! CSRF token and what the pages carry between requests (the create-key wizard, one message).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A session unused this long is gone.
pub const IDLE: Duration = Duration::from_secs(15 * 60);
/// A session is gone this long after sign-in, used or not.
pub const ABSOLUTE: Duration = Duration::from_secs(8 * 60 * 60);
/// Sessions kept at most (expired ones are dropped first; then the oldest).
const CAPACITY: usize = 10_000;

pub const COOKIE: &str = "kms_console";

/// A message shown once on the next page.
#[derive(Debug, Clone)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
    /// A key policy the user tried to save, shown again in the editor after a refusal.
    pub policy: Option<String>,
}

/// The create-key wizard's choices so far.
#[derive(Debug, Clone)]
pub struct Draft {
    pub key_type: String,
    pub key_usage: String,
    pub key_spec: String,
    pub origin: String,
    pub alias: String,
    pub description: String,
    pub tags: Vec<(String, String)>,
    pub admins: Vec<String>,
    pub admins_delete: bool,
    pub users: Vec<String>,
    /// Other AWS accounts that may use the key (12-digit ids).
    pub other_accounts: Vec<String>,
    /// With origin AWS_CLOUDHSM: the custom key store.
    pub custom_key_store_id: String,
    /// A multi-Region primary key (CreateKey `MultiRegion`).
    pub multi_region: bool,
}

impl Default for Draft {
    fn default() -> Self {
        Draft {
            key_type: "SYMMETRIC".into(),
            key_usage: "ENCRYPT_DECRYPT".into(),
            key_spec: "SYMMETRIC_DEFAULT".into(),
            origin: "AWS_KMS".into(),
            alias: String::new(),
            description: String::new(),
            tags: Vec::new(),
            admins: Vec::new(),
            admins_delete: true,
            users: Vec::new(),
            other_accounts: Vec::new(),
            custom_key_store_id: String::new(),
            multi_region: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub access_key_id: String,
    pub principal_arn: String,
    pub region: String,
    pub csrf: String,
    pub flash: Option<Flash>,
    pub draft: Draft,
    /// The key list's columns (None: all).
    pub columns: Option<Vec<String>>,
    /// The key list's page size (None: the default).
    pub page_size: Option<u32>,
    created: Instant,
    last_used: Instant,
}

pub struct Sessions {
    mac_key: Zeroizing<[u8; 32]>,
    map: Mutex<HashMap<[u8; 32], Session>>,
}

fn random32() -> Result<[u8; 32], getrandom::Error> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b)?;
    Ok(b)
}

impl Sessions {
    pub fn new() -> Result<Sessions, getrandom::Error> {
        Ok(Sessions {
            mac_key: Zeroizing::new(random32()?),
            map: Mutex::new(HashMap::new()),
        })
    }

    fn mac(&self, id: &[u8; 32]) -> Vec<u8> {
        // HMAC-SHA256 takes a key of any length.
        let mut m = match Hmac::<Sha256>::new_from_slice(&self.mac_key[..]) {
            Ok(m) => m,
            Err(_) => return Vec::new(),
        };
        m.update(b"kms-bridge console session\0");
        m.update(id);
        m.finalize().into_bytes().to_vec()
    }

    /// A new session; returns the cookie value.
    pub fn create(
        &self,
        access_key_id: String,
        principal_arn: String,
        region: String,
    ) -> Result<String, getrandom::Error> {
        let id = random32()?;
        let csrf = hex::encode(random32()?);
        let now = Instant::now();
        let session = Session {
            access_key_id,
            principal_arn,
            region,
            csrf,
            flash: None,
            draft: Draft::default(),
            columns: None,
            page_size: None,
            created: now,
            last_used: now,
        };
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CAPACITY {
            map.retain(|_, s| !expired(s, now));
        }
        if map.len() >= CAPACITY {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        map.insert(id, session);
        Ok(format!(
            "{}.{}",
            hex::encode(id),
            hex::encode(self.mac(&id))
        ))
    }

    /// The session id of a cookie value whose MAC checks out.
    fn id_of(&self, cookie: &str) -> Option<[u8; 32]> {
        let (id_hex, mac_hex) = cookie.split_once('.')?;
        let id: [u8; 32] = hex::decode(id_hex).ok()?.try_into().ok()?;
        let mac = hex::decode(mac_hex).ok()?;
        bool::from(self.mac(&id).ct_eq(&mac)).then_some(id)
    }

    /// Run `f` on the live session of a cookie value (and count it as used); None when there
    /// is none (unknown, forged, signed out, expired — an expired one is removed).
    pub fn with<T>(&self, cookie: &str, f: impl FnOnce(&mut Session) -> T) -> Option<T> {
        let id = self.id_of(cookie)?;
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let session = map.get_mut(&id)?;
        if expired(session, now) {
            map.remove(&id);
            return None;
        }
        session.last_used = now;
        Some(f(session))
    }

    /// Sign-out: the session is gone; its cookie no longer works.
    pub fn remove(&self, cookie: &str) {
        if let Some(id) = self.id_of(cookie) {
            let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
            map.remove(&id);
        }
    }
}

/// Failed sign-ins are counted per client address and per access key id: after
/// `MAX_FAILURES` within `WINDOW` further attempts are refused unchecked until the window
/// has passed (secrets are random, but an imported one may be weak).
#[derive(Default)]
pub struct SignInThrottle {
    failures: Mutex<HashMap<String, (Instant, u32)>>,
}

pub const MAX_FAILURES: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(5 * 60);

impl SignInThrottle {
    /// Whether any of these (address, access key id) is over its failures.
    pub fn blocked(&self, keys: &[String]) -> bool {
        let now = Instant::now();
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter().any(|k| {
            map.get(k)
                .is_some_and(|(since, n)| now.duration_since(*since) < WINDOW && *n >= MAX_FAILURES)
        })
    }

    pub fn failed(&self, keys: &[String]) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CAPACITY {
            map.retain(|_, (since, _)| now.duration_since(*since) < WINDOW);
        }
        for k in keys {
            if map.len() >= CAPACITY && !map.contains_key(k) {
                continue;
            }
            let e = map.entry(k.clone()).or_insert((now, 0));
            if now.duration_since(e.0) >= WINDOW {
                *e = (now, 0);
            }
            e.1 += 1;
        }
    }

    /// A successful sign-in clears its access key's count (not its address's).
    pub fn succeeded(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key);
    }
}

fn expired(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last_used) > IDLE || now.duration_since(s.created) > ABSOLUTE
}

/// Constant-time comparison of a submitted CSRF token with the session's.
pub fn csrf_matches(session: &Session, submitted: &str) -> bool {
    !submitted.is_empty() && bool::from(session.csrf.as_bytes().ct_eq(submitted.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_authenticated_and_sign_out_ends_them() {
        let s = Sessions::new().unwrap();
        let c = s
            .create("AKIA1".into(), "arn:aws:iam::1:user/a".into(), "r".into())
            .unwrap();
        assert_eq!(
            s.with(&c, |x| x.access_key_id.clone()).as_deref(),
            Some("AKIA1")
        );
        // Another id with the MAC of this one, or a changed MAC, is refused.
        let (id, mac) = c.split_once('.').unwrap();
        let mut other = id.to_owned();
        other.replace_range(0..2, if &id[0..2] == "00" { "01" } else { "00" });
        assert!(s.with(&format!("{other}.{mac}"), |_| ()).is_none());
        assert!(s
            .with(&format!("{id}.{}", "0".repeat(64)), |_| ())
            .is_none());
        assert!(s.with("garbage", |_| ()).is_none());
        let csrf = s.with(&c, |x| x.csrf.clone()).unwrap();
        assert_eq!(csrf.len(), 64);
        s.with(&c, |x| {
            assert!(csrf_matches(x, &csrf));
            assert!(!csrf_matches(x, ""));
            assert!(!csrf_matches(x, &"0".repeat(64)));
        });
        s.remove(&c);
        assert!(s.with(&c, |_| ()).is_none());
    }

    #[test]
    fn repeated_failures_block_sign_in_for_a_while() {
        let t = SignInThrottle::default();
        let keys = vec!["ip:127.0.0.1".to_owned(), "key:AKIA1".to_owned()];
        for _ in 0..MAX_FAILURES {
            assert!(!t.blocked(&keys));
            t.failed(&keys);
        }
        assert!(t.blocked(&keys));
        assert!(t.blocked(&["key:AKIA1".to_owned()]));
        assert!(!t.blocked(&["key:AKIA2".to_owned()]));
        t.succeeded("key:AKIA1");
        assert!(!t.blocked(&["key:AKIA1".to_owned()]));
        assert!(
            t.blocked(&["ip:127.0.0.1".to_owned()]),
            "the address stays counted"
        );
    }

    #[test]
    fn idle_and_absolute_expiry() {
        let s = Sessions::new().unwrap();
        let c = s.create("A".into(), "p".into(), "r".into()).unwrap();
        let id = s.id_of(&c).unwrap();
        let now = Instant::now();
        {
            let mut map = s.map.lock().unwrap();
            let x = map.get_mut(&id).unwrap();
            x.last_used = now.checked_sub(IDLE + Duration::from_secs(1)).unwrap();
        }
        assert!(s.with(&c, |_| ()).is_none(), "idle session must expire");
        let c = s.create("A".into(), "p".into(), "r".into()).unwrap();
        let id = s.id_of(&c).unwrap();
        {
            let mut map = s.map.lock().unwrap();
            let x = map.get_mut(&id).unwrap();
            if let Some(t) = now.checked_sub(ABSOLUTE + Duration::from_secs(1)) {
                x.created = t;
                assert!(expired(x, now));
            }
        }
    }
}
