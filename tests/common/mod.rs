//! Test harness: every test gets its own SoftHSM token (on tmpfs where available) and its own
//! `kms-bridge serve` process on 127.0.0.1:0, driven through the official AWS SDK for Rust.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use aws_sdk_kms::config::{Credentials, Region};

pub mod pg;

pub const PIN: &str = "1234";
pub const SO_PIN: &str = "5678";
pub const TOKEN_LABEL: &str = "kms-bridge-test";
pub const REGION: &str = "us-east-1";
pub const OTHER_REGION: &str = "eu-west-1";
pub const ACCOUNT: &str = "111122223333";
pub const ACCESS_KEY_ID: &str = "AKIAKMSBRIDGETEST";
pub const SECRET_ACCESS_KEY: &str = "kms-bridge-test-secret-access-key";

/// The PKCS#11 token implementation the tests run on: `KMS_BRIDGE_TEST_TOKEN` is `softhsm`
/// (the default) or `kryoptic` (built by `scripts/lib.sh`'s `ensure_kryoptic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenImpl {
    SoftHsm,
    Kryoptic,
}

pub fn token_impl() -> TokenImpl {
    match std::env::var("KMS_BRIDGE_TEST_TOKEN").as_deref() {
        Ok("kryoptic") => TokenImpl::Kryoptic,
        Ok("softhsm") | Err(_) => TokenImpl::SoftHsm,
        Ok(other) => panic!("KMS_BRIDGE_TEST_TOKEN={other}: softhsm or kryoptic"),
    }
}

/// The PKCS#11 module of the token under test (`KMS_BRIDGE_TOKEN__MODULE` overrides it).
pub fn token_module() -> PathBuf {
    if let Some(m) = std::env::var_os("KMS_BRIDGE_TOKEN__MODULE") {
        return PathBuf::from(m);
    }
    match token_impl() {
        TokenImpl::SoftHsm => PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
        TokenImpl::Kryoptic => std::env::var_os("KMS_BRIDGE_KRYOPTIC_MODULE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join(".cache/kryoptic/lib/libkryoptic_pkcs11.so")
            }),
    }
}

/// Does the token under test make secp256k1 keys? (Kryoptic has no secp256k1.)
pub fn token_has_secp256k1() -> bool {
    token_impl() != TokenImpl::Kryoptic
}

/// Does the token under test do RSA-OAEP with SHA-256 (AWS's SHA-256 wrapping algorithms)?
/// SoftHSM 2.6.1 does OAEP with SHA-1 only.
pub fn token_has_oaep_sha256() -> bool {
    token_impl() == TokenImpl::Kryoptic
}

/// Does the token under test make ML-DSA and ML-KEM keys (Kryoptic with OpenSSL 3.6)? Ed25519
/// both do.
pub fn token_has_post_quantum() -> bool {
    token_impl() == TokenImpl::Kryoptic
}

/// The environment variable naming the token's configuration file.
pub fn token_conf_var() -> &'static str {
    match token_impl() {
        TokenImpl::SoftHsm => "SOFTHSM2_CONF",
        TokenImpl::Kryoptic => "KRYOPTIC_CONF",
    }
}

/// A PKCS#11 library is initialized once per process, with the configuration file the
/// environment names at `C_Initialize`: tests of one binary that open a token in-process take
/// turns (re-entrant on the test's thread), else one would read another's token.
static TURN: std::sync::Mutex<Option<(std::thread::ThreadId, usize)>> = std::sync::Mutex::new(None);
static TURN_FREE: std::sync::Condvar = std::sync::Condvar::new();

/// A test's turn at the in-process token (see `TURN`).
pub struct Turn;

impl Turn {
    fn take() -> Turn {
        let me = std::thread::current().id();
        let mut held = TURN.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match held.as_mut() {
                None => {
                    *held = Some((me, 1));
                    return Turn;
                }
                Some((owner, n)) if *owner == me => {
                    *n += 1;
                    return Turn;
                }
                Some(_) => held = TURN_FREE.wait(held).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut held = TURN.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, n)) = held.as_mut() {
            *n -= 1;
            if *n == 0 {
                *held = None;
                TURN_FREE.notify_all();
            }
        }
    }
}

/// Something on the in-process token, with the test's turn at it.
pub struct InProcess<T> {
    pub inner: T,
    _turn: Turn,
}

impl<T> std::ops::Deref for InProcess<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

/// A temporary directory holding a fresh, initialized token and a data directory.
pub struct TestDir {
    pub path: PathBuf,
}

impl TestDir {
    pub fn new() -> TestDir {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let path = base.join(format!("kms-bridge-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(path.join("tokens")).expect("create token dir");
        let dir = TestDir { path };
        match token_impl() {
            TokenImpl::SoftHsm => std::fs::write(
                dir.token_conf(),
                format!(
                    "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                    dir.path.join("tokens").display()
                ),
            )
            .expect("write softhsm2.conf"),
            TokenImpl::Kryoptic => std::fs::write(dir.token_conf(), "").expect("kryoptic.conf"),
        }
        dir.add_token(TOKEN_LABEL, PIN);
        dir
    }

    /// The token's configuration file (pass it in `token_conf_var()`).
    pub fn token_conf(&self) -> PathBuf {
        match token_impl() {
            TokenImpl::SoftHsm => self.path.join("softhsm2.conf"),
            TokenImpl::Kryoptic => self.path.join("kryoptic.conf"),
        }
    }

    /// Point a process at this directory's token: its configuration file and module.
    pub fn token_env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.env(token_conf_var(), self.token_conf())
            .env("KMS_BRIDGE_TOKEN__MODULE", token_module())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path.join("data")
    }

    /// The server's database as the server sees it (key rows sealed with the token), for
    /// tests that write crash states directly. The server must have started once (it makes
    /// the database and the row MAC key).
    pub async fn sealed_store(
        &self,
    ) -> InProcess<kms_bridge::store::cached::CachedStore<kms_bridge::store::sqlite::SqliteStore>>
    {
        let store =
            kms_bridge::store::sqlite::SqliteStore::open(&self.data_dir().join("kms-bridge.db"))
                .await
                .expect("open the database");
        let token = self.open_token().await;
        let sealer = kms_bridge::kms::sealed::TokenSealer::open(token.inner.clone())
            .await
            .expect("row MAC key");
        InProcess {
            inner: kms_bridge::store::cached::CachedStore::new(store, Duration::ZERO)
                .with_sealer(std::sync::Arc::new(sealer)),
            _turn: token._turn,
        }
    }

    /// This directory's token, opened in the test process (the server may run too: both
    /// token implementations support several processes). In-process tokens take turns.
    pub async fn open_token(&self) -> InProcess<kms_bridge::token::Token> {
        let turn = Turn::take();
        std::env::set_var(token_conf_var(), self.token_conf());
        let cfg = kms_bridge::token::TokenConfig {
            module: token_module(),
            label: TOKEN_LABEL.into(),
            pin: PIN.to_owned().into(),
            threads: 2,
            working_copies: 1024,
            keygen: Default::default(),
        };
        let token = tokio::task::spawn_blocking(move || kms_bridge::token::Token::open(&cfg))
            .await
            .expect("join")
            .expect("open the test token");
        InProcess {
            inner: token,
            _turn: turn,
        }
    }

    /// Initialize another token (another "cluster") in this directory's token store. A
    /// running process sees a Kryoptic token only if it started after this (its slots are
    /// read from the configuration file at `C_Initialize`).
    pub fn add_token(&self, label: &str, pin: &str) {
        let run = |cmd: &mut Command, what: &str| {
            let out = self
                .token_env(cmd)
                .output()
                .unwrap_or_else(|e| panic!("run {what} (scripts/test.sh installs it): {e}"));
            assert!(
                out.status.success(),
                "{what} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        match token_impl() {
            TokenImpl::SoftHsm => run(
                Command::new("softhsm2-util").args([
                    "--init-token",
                    "--free",
                    "--label",
                    label,
                    "--so-pin",
                    SO_PIN,
                    "--pin",
                    pin,
                ]),
                "softhsm2-util",
            ),
            TokenImpl::Kryoptic => {
                // One slot (and SQLite file) per token.
                let conf = std::fs::read_to_string(self.token_conf()).unwrap_or_default();
                let slot = 1 + conf.matches("[[slots]]").count();
                let db = self.path.join("tokens").join(format!("token-{slot}.sql"));
                std::fs::write(
                    self.token_conf(),
                    format!(
                        "{conf}[[slots]]\nslot = {slot}\ndbtype = \"sqlite\"\ndbargs = \"{}\"\n",
                        db.display()
                    ),
                )
                .expect("write kryoptic.conf");
                let slot = slot.to_string();
                let tool = |args: &[&str]| {
                    let mut cmd = Command::new("pkcs11-tool");
                    cmd.arg("--module")
                        .arg(token_module())
                        .args(["--slot", &slot])
                        .args(args);
                    run(&mut cmd, "pkcs11-tool");
                };
                tool(&["--init-token", "--label", label, "--so-pin", SO_PIN]);
                tool(&[
                    "--login",
                    "--login-type",
                    "so",
                    "--so-pin",
                    SO_PIN,
                    "--init-pin",
                    "--pin",
                    pin,
                ]);
            }
        }
    }

    /// Make every process started on this directory (servers, admin CLI) use this database.
    pub fn use_database(&self, url: &str) {
        std::fs::write(self.path.join("database.url"), url).expect("write database.url");
    }

    /// Environment for a `kms-bridge` process on this directory's token and data.
    pub fn configure(&self, cmd: &mut Command) {
        let creds = self.path.join("bootstrap.env");
        if !creds.exists() {
            std::fs::write(
                &creds,
                format!("AWS_ACCESS_KEY_ID={ACCESS_KEY_ID}\nAWS_SECRET_ACCESS_KEY={SECRET_ACCESS_KEY}\nAWS_DEFAULT_REGION={REGION}\n"),
            )
            .expect("write bootstrap credentials");
        }
        // A shared database (`use_database`) for every process of this directory.
        if let Ok(url) = std::fs::read_to_string(self.path.join("database.url")) {
            cmd.env("KMS_BRIDGE_DATABASE", url.trim());
        }
        self.token_env(cmd)
            .env("KMS_BRIDGE_LISTEN", "127.0.0.1:0")
            .env("KMS_BRIDGE_DATA_DIR", self.data_dir())
            .env("KMS_BRIDGE_TOKEN__LABEL", TOKEN_LABEL)
            .env("KMS_BRIDGE_TOKEN_PIN", PIN)
            .env("KMS_BRIDGE_REGIONS", format!("{REGION},{OTHER_REGION}"))
            .env("KMS_BRIDGE_ACCOUNT_ID", ACCOUNT)
            .env("KMS_BRIDGE_BOOTSTRAP_CREDENTIALS", creds);
    }

    /// Run `kms-bridge admin <args>`; returns stdout (panics on failure).
    pub fn admin(&self, args: &[&str]) -> String {
        self.admin_with_stdin(args, None)
    }

    pub fn admin_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kms-bridge"));
        cmd.arg("admin").args(args);
        self.configure(&mut cmd);
        cmd.env("KMS_BRIDGE_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kms-bridge admin");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        } else {
            drop(child.stdin.take());
        }
        let out = child.wait_with_output().expect("admin output");
        assert!(
            out.status.success(),
            "kms-bridge admin {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Create a user with an access key; returns (arn, credentials).
    pub fn user(&self, name: &str) -> (String, Creds) {
        let arn = self
            .admin(&["create-user", "--name", name])
            .trim()
            .to_owned();
        let creds = Creds::parse(&self.admin(&["create-access-key", "--principal", &arn]));
        (arn, creds)
    }

    /// Attach an identity policy to a principal.
    pub fn attach(&self, arn: &str, name: &str, document: &str) {
        self.admin_with_stdin(
            &[
                "put-identity-policy",
                "--principal",
                arn,
                "--name",
                name,
                "--document",
                "-",
            ],
            Some(document),
        );
    }
}

/// An access key pair as `kms-bridge admin create-access-key` prints it.
#[derive(Debug, Clone)]
pub struct Creds {
    pub access_key_id: String,
    pub secret: String,
}

impl Creds {
    pub fn parse(out: &str) -> Creds {
        let get = |k: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("no {k} in {out}"))
                .to_owned()
        };
        Creds {
            access_key_id: get("AWS_ACCESS_KEY_ID"),
            secret: get("AWS_SECRET_ACCESS_KEY"),
        }
    }

    pub fn admin() -> Creds {
        Creds {
            access_key_id: ACCESS_KEY_ID.into(),
            secret: SECRET_ACCESS_KEY.into(),
        }
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A server with the debug-only lifecycle clock on a loopback metrics listener, and the
/// scheduler left to the test (it runs at each `advance`).
pub fn lifecycle_server(dir: &TestDir) -> Server {
    Server::start(
        dir,
        &[
            ("KMS_BRIDGE_DEBUG_CLOCK", "true"),
            ("KMS_BRIDGE_METRICS_LISTEN", "127.0.0.1:0"),
            ("KMS_BRIDGE_SCHEDULER_INTERVAL_SECONDS", "3600"),
        ],
    )
}

/// Advance the lifecycle clock and run the scheduler; returns the debug endpoint's answer
/// (`{"offsetMillis": …, "report": {…}}`).
pub fn advance(server: &Server, seconds: i64) -> serde_json::Value {
    let addr = server.metrics_addr.as_ref().expect("metrics listener");
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "POST /debug/clock/advance?seconds={seconds} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).expect("read");
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|_| panic!("bad answer: {buf}"))
}

/// A running server process.
pub struct Server {
    child: Child,
    pub addr: String,
    pub endpoint: String,
    /// Set when the server was started with KMS_BRIDGE_METRICS_LISTEN.
    pub metrics_addr: Option<String>,
    log: PathBuf,
}

impl Server {
    /// The server's process id.
    #[allow(dead_code)] // not every test binary uses it
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Start `kms-bridge serve` on a fresh token.
    pub fn start_new() -> (TestDir, Server) {
        let dir = TestDir::new();
        let server = Server::start(&dir, &[]);
        (dir, server)
    }

    /// Start on an existing test directory, with extra environment variables.
    pub fn start(dir: &TestDir, env: &[(&str, &str)]) -> Server {
        let log = dir
            .path
            .join(format!("server-{}.log", uuid::Uuid::new_v4()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kms-bridge"));
        cmd.arg("serve");
        dir.configure(&mut cmd);
        cmd.env(
            "KMS_BRIDGE_LOG",
            "info,kms_bridge=debug,cryptoki::mechanism=off",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn kms-bridge");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                if let Some(addr) = line
                    .strip_prefix("kms-bridge listening on http://")
                    .or_else(|| line.strip_prefix("kms-bridge listening on https://"))
                {
                    let _ = tx.send(("api", addr.to_owned()));
                }
                if let Some(addr) = line.strip_prefix("kms-bridge metrics on http://") {
                    let _ = tx.send(("metrics", addr.to_owned()));
                }
            }
        });
        let mut metrics_addr = None;
        let addr = loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(("api", a)) => break a,
                Ok((_, m)) => metrics_addr = Some(m),
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "server did not start; log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        };
        let tls = env.iter().any(|(k, _)| *k == "KMS_BRIDGE_TLS__CERT");
        Server {
            child,
            endpoint: format!("{}://{addr}", if tls { "https" } else { "http" }),
            addr,
            metrics_addr,
            log,
        }
    }

    pub fn client(&self) -> aws_sdk_kms::Client {
        self.client_in(REGION)
    }

    pub fn client_in(&self, region: &str) -> aws_sdk_kms::Client {
        self.client_as(&Creds::admin(), region)
    }

    /// A client signing with the given credentials.
    pub fn client_for(&self, creds: &Creds) -> aws_sdk_kms::Client {
        self.client_as(creds, REGION)
    }

    pub fn client_as(&self, creds: &Creds, region: &str) -> aws_sdk_kms::Client {
        let conf = aws_sdk_kms::Config::builder()
            .behavior_version_latest()
            .region(Region::new(region.to_owned()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new(
                &creds.access_key_id,
                &creds.secret,
                None,
                None,
                "kms-bridge-tests",
            ))
            .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_kms::Client::from_conf(conf)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait up to `within` for the process to end by itself (a crash the test provoked); its
    /// exit status, or None if it is still running.
    pub fn exited(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the process the hard way (like a crash).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stop gracefully (SIGTERM) and wait.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Send a raw HTTP/1.1 request; returns (status, headers lowercased, body).
    pub fn raw(&self, headers: &[(&str, &str)], body: &[u8]) -> RawResponse {
        raw_request(&self.addr, headers, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn error_type(&self) -> String {
        self.json()["__type"].as_str().unwrap_or("").to_owned()
    }
}

/// A syntactically valid SigV4 Authorization header for `region` (not a real signature).
pub fn fake_authorization(region: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20260102/{region}/kms/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={}",
        "0".repeat(64)
    )
}

/// How to sign a raw request.
pub struct Signing<'a> {
    pub creds: &'a Creds,
    pub region: &'a str,
    /// Seconds to add to the current time for X-Amz-Date.
    pub skew_secs: i64,
    /// The Content-Type sent (and signed).
    pub content_type: &'a str,
}

/// The content type the AWS SDKs send to KMS.
pub const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.1";

impl Default for Signing<'static> {
    fn default() -> Self {
        static ADMIN: std::sync::OnceLock<Creds> = std::sync::OnceLock::new();
        Signing {
            creds: ADMIN.get_or_init(Creds::admin),
            region: REGION,
            skew_secs: 0,
            content_type: JSON_CONTENT_TYPE,
        }
    }
}

/// Headers of a correctly SigV4-signed KMS request for `target` and `body`.
pub fn signed_headers(addr: &str, target: &str, body: &[u8], s: &Signing) -> Vec<(String, String)> {
    use kms_bridge::auth::sigv4::{canonical_request, signing_key, string_to_sign, RequestParts};
    use sha2::Digest;
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(s.skew_secs);
    let amz_date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let date = &amz_date[..8];
    let headers = vec![
        ("content-type".to_owned(), s.content_type.to_owned()),
        ("host".to_owned(), addr.to_owned()),
        ("x-amz-date".to_owned(), amz_date.clone()),
        ("x-amz-target".to_owned(), target.to_owned()),
    ];
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let signed: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
    let req = RequestParts {
        method: "POST",
        path: "/",
        query: "",
        headers: &pairs,
        body,
    };
    let payload = hex::encode(sha2::Sha256::digest(body));
    let creq = canonical_request(&req, &signed, &payload, true);
    let scope = format!("{date}/{}/kms/aws4_request", s.region);
    let sts = string_to_sign(&amz_date, &scope, &creq);
    let key = signing_key(s.creds.secret.as_bytes(), date, s.region, "kms");
    let sig = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("hmac key");
        mac.update(sts.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let mut out: Vec<(String, String)> = headers.into_iter().filter(|(k, _)| k != "host").collect();
    out.push((
        "authorization".to_owned(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={sig}",
            s.creds.access_key_id,
            signed.join(";")
        ),
    ));
    out
}

impl Server {
    /// A correctly signed raw request.
    pub fn signed(&self, target: &str, body: &str) -> RawResponse {
        self.signed_with(
            target,
            body.as_bytes(),
            body.as_bytes(),
            &Signing::default(),
        )
    }

    /// Sign `signed_body` but send `sent_body` (to test tampering).
    pub fn signed_with(
        &self,
        target: &str,
        signed_body: &[u8],
        sent_body: &[u8],
        s: &Signing,
    ) -> RawResponse {
        let headers = signed_headers(&self.addr, target, signed_body, s);
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.raw(&refs, sent_body)
    }
}

/// The value of one metric line (`name{labels}`) in a Prometheus text page.
pub fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name_and_labels} in\n{text}"))
}

/// GET a path on a plain-HTTP listener.
pub fn http_get(addr: &str, path: &str) -> RawResponse {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
}

pub fn raw_request(addr: &str, headers: &[(&str, &str)], body: &[u8]) -> RawResponse {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// The AWS error code of an SDK error (`__type` as the SDK parsed it).
pub fn code<E, R>(err: &aws_sdk_kms::error::SdkError<E, R>) -> String
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match err.as_service_error() {
        Some(e) => e.code().unwrap_or("<no code>").to_owned(),
        None => format!("<not a service error: {err:?}>"),
    }
}

/// The AWS error code and message of an SDK error.
pub fn code_and_message<E, R>(err: &aws_sdk_kms::error::SdkError<E, R>) -> (String, Option<String>)
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    let message = err
        .as_service_error()
        .and_then(|e| e.message().map(str::to_owned));
    (code(err), message)
}

/// A new symmetric encryption key's id.
pub async fn new_symmetric_key(kms: &aws_sdk_kms::Client) -> String {
    created(kms.create_key()).await
}

/// A new key of this spec and usage; its id.
pub async fn new_key(
    kms: &aws_sdk_kms::Client,
    spec: aws_sdk_kms::types::KeySpec,
    usage: aws_sdk_kms::types::KeyUsageType,
) -> String {
    created(kms.create_key().key_spec(spec).key_usage(usage)).await
}

/// CreateKey of this spec and usage is refused by a token that cannot make it:
/// UnsupportedOperationException naming the key spec.
pub async fn assert_spec_unsupported(
    req: aws_sdk_kms::operation::create_key::builders::CreateKeyFluentBuilder,
    spec: &aws_sdk_kms::types::KeySpec,
) {
    let r = req.key_spec(spec.clone()).send().await;
    let (code, message) = code_and_message(&r.expect_err("CreateKey of an unsupported spec"));
    assert_eq!(code, "UnsupportedOperationException");
    let message = message.unwrap_or_default();
    assert!(message.contains(spec.as_str()), "{message}");
}

/// The metadata of the key a CreateKey request makes.
pub async fn created_metadata(
    req: aws_sdk_kms::operation::create_key::builders::CreateKeyFluentBuilder,
) -> aws_sdk_kms::types::KeyMetadata {
    req.send()
        .await
        .expect("CreateKey")
        .key_metadata
        .expect("KeyMetadata")
}

/// The id of the key a CreateKey request makes.
pub async fn created(
    req: aws_sdk_kms::operation::create_key::builders::CreateKeyFluentBuilder,
) -> String {
    created_metadata(req).await.key_id
}

/// A new symmetric key with origin EXTERNAL (waiting for its material); its id.
pub async fn new_external_key(kms: &aws_sdk_kms::Client) -> String {
    created(
        kms.create_key()
            .origin(aws_sdk_kms::types::OriginType::External),
    )
    .await
}

/// The ciphertext blob of `plaintext` under `key`.
pub async fn encrypt_blob(kms: &aws_sdk_kms::Client, key: &str, plaintext: &[u8]) -> Vec<u8> {
    kms.encrypt()
        .key_id(key)
        .plaintext(aws_sdk_kms::primitives::Blob::new(plaintext.to_vec()))
        .send()
        .await
        .expect("Encrypt")
        .ciphertext_blob
        .expect("CiphertextBlob")
        .into_inner()
}

/// The key ids ListKeys returns (first page).
pub async fn listed_key_ids(kms: &aws_sdk_kms::Client) -> Vec<String> {
    kms.list_keys()
        .send()
        .await
        .expect("ListKeys")
        .keys()
        .iter()
        .filter_map(|k| k.key_id().map(str::to_owned))
        .collect()
}

/// DescribeKey's KeyMetadata.
pub async fn describe(kms: &aws_sdk_kms::Client, key_id: &str) -> aws_sdk_kms::types::KeyMetadata {
    kms.describe_key()
        .key_id(key_id)
        .send()
        .await
        .expect("DescribeKey")
        .key_metadata
        .expect("KeyMetadata")
}

/// Assert that an SDK call failed with the given AWS error code.
#[macro_export]
macro_rules! assert_code {
    ($res:expr, $code:expr) => {{
        match $res {
            Ok(_) => panic!("expected {} but the call succeeded", $code),
            Err(e) => assert_eq!($crate::common::code(&e), $code, "full error: {e:?}"),
        }
    }};
}
