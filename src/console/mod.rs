//! The web console at `/console/`: server-rendered pages (askama templates compiled into the
//! binary, one stylesheet, no script) for the key management a person does in the AWS KMS
//! console.
//!
//! Layers: this module is HTTP and HTML only. A user signs in with an access key id and its
//! secret (`auth::Authenticator::verify_secret`, constant time; the secret is not kept); the
//! session (`session.rs`) then stands in for SigV4, and every action is an operation called
//! through `api::call` — the same path as a signed API request after authentication (model
//! validation, intent record, `ops::dispatch` with key policy, identity policies and grants,
//! the audit record with user agent `kms-bridge-console`, metrics). So the console can do
//! exactly what the API lets its user do, and a refusal shows the API's code and message.

pub mod policy;
pub mod session;
mod views;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde_json::{json, Value};

use crate::api::{self, AppState, Operation, Source};
use crate::auth::{AuthError, Caller};
use session::{Draft, Flash, Sessions, COOKIE};
use views::*;

/// The user agent of the console's audit records.
pub const USER_AGENT: &str = "kms-bridge-console";

/// The console's own state beside the API's.
pub struct Console {
    sessions: Sessions,
    /// The listener terminates TLS: cookies get `Secure`.
    secure: bool,
}

#[derive(Clone)]
struct Ctx {
    app: Arc<AppState>,
    console: Arc<Console>,
}

/// The console's routes, under `/console`, for the API listener.
pub fn router(app: Arc<AppState>) -> anyhow::Result<Router> {
    let console = Arc::new(Console {
        sessions: Sessions::new().map_err(|e| anyhow::anyhow!("console sessions: {e}"))?,
        secure: app.secure_transport,
    });
    let ctx = Ctx { app, console };
    Ok(Router::new()
        .route("/console", get(|| async { redirect("/console/") }))
        .route("/console/", get(home))
        .route("/console/console.css", get(stylesheet))
        .route("/console/signin", get(signin_page).post(signin))
        .route("/console/signout", axum::routing::post(signout))
        .route("/console/keys", get(customer_keys))
        .route("/console/aws-keys", get(aws_keys))
        .route("/console/create", get(create_page).post(create_step))
        .route("/console/keys/{id}", get(key_page).post(key_action))
        .route("/console/keys/{id}/public-key.pem", get(public_key_pem))
        .route(
            "/console/keystores",
            get(keystores_page).post(keystore_action),
        )
        .route("/console/region", axum::routing::post(switch_region))
        .route("/console/{*rest}", get(not_found))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(ctx))
}

/// Every console answer: a strict CSP (no inline script or style, nothing from elsewhere),
/// no framing, no sniffing, no caching, no referrer to other sites (with `no-referrer` browsers
/// send `Origin: null` on form posts, which the origin check refuses).
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("static/console.css"),
    )
        .into_response()
}

fn redirect(to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(v) => (StatusCode::SEE_OTHER, [(header::LOCATION, v)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn render(status: StatusCode, t: impl askama::Template) -> Response {
    match t.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A refused POST (403): not signed in, no or a wrong CSRF token, another origin.
fn forbidden(why: &str) -> Response {
    render(
        StatusCode::FORBIDDEN,
        ErrorPage {
            chrome: Chrome::signed_out(),
            title: "Forbidden".into(),
            error: format!("{why}. Nothing was changed."),
        },
    )
}

fn cookie_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// A POST must come from the console's own pages: when the browser names an origin, it is
/// this host's.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let bare = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    bare.is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host))
}

/// A form's fields, in order (checkbox groups repeat a name).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

/// A signed-in user for this request.
struct User {
    cookie: String,
    caller: Caller,
    csrf: String,
    flash: Option<Flash>,
    source: Source,
}

enum Gate {
    /// Not signed in (or the session ended): to the sign-in page.
    SignIn,
    Fail(Response),
}

impl Gate {
    fn respond(self) -> Response {
        match self {
            Gate::SignIn => redirect("/console/signin"),
            Gate::Fail(r) => r,
        }
    }
}

impl Ctx {
    /// The signed-in user of a page request; the one-time message is taken.
    async fn user(&self, headers: &HeaderMap, peer: SocketAddr) -> Result<User, Gate> {
        let cookie = cookie_of(headers).ok_or(Gate::SignIn)?;
        let (akid, arn, region, csrf, flash) = self
            .console
            .sessions
            .with(&cookie, |s| {
                (
                    s.access_key_id.clone(),
                    s.principal_arn.clone(),
                    s.region.clone(),
                    s.csrf.clone(),
                    s.flash.take(),
                )
            })
            .ok_or(Gate::SignIn)?;
        let caller = match self.app.auth.session_caller(&akid, &arn, &region).await {
            Ok(c) => c,
            Err(AuthError::Backend(e)) => {
                tracing::error!(error = %e, "console: cannot load the caller");
                return Err(Gate::Fail(
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
                ));
            }
            Err(_) => {
                // The access key is gone: so is the session.
                self.console.sessions.remove(&cookie);
                return Err(Gate::SignIn);
            }
        };
        Ok(User {
            cookie,
            caller,
            csrf,
            flash,
            source: Source {
                peer,
                user_agent: USER_AGENT.to_owned(),
            },
        })
    }

    /// The signed-in user of a POST: same origin, a live session and its CSRF token, else 403.
    async fn poster(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
        form: &Fields,
    ) -> Result<User, Response> {
        if !same_origin(headers) {
            return Err(forbidden("The request came from another site"));
        }
        let user = match self.user(headers, peer).await {
            Ok(u) => u,
            Err(Gate::SignIn) => {
                return Err(forbidden(
                    "You are not signed in, or your session has ended: sign in again",
                ))
            }
            Err(Gate::Fail(r)) => return Err(r),
        };
        let ok = self
            .console
            .sessions
            .with(&user.cookie, |s| session::csrf_matches(s, form.get("csrf")))
            .unwrap_or(false);
        if !ok {
            return Err(forbidden(
                "The form's security token is missing or not this session's: reload the page",
            ));
        }
        // The one-time message belongs to the next page, not this POST.
        if let Some(f) = user.flash.clone() {
            self.flash(&user, f);
        }
        Ok(user)
    }

    /// Call one KMS operation as the user, through the API's own pipeline.
    async fn kms(&self, user: &User, op: Operation, body: Value) -> Result<Value, Refusal> {
        let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let answer = api::call(
            &self.app,
            user.source.clone(),
            user.caller.clone(),
            op,
            bytes,
        )
        .await;
        match answer.result {
            Ok(v) => Ok(v.unwrap_or(Value::Null)),
            Err(e) => {
                let (_, code, message) = e.wire();
                Err(Refusal {
                    code: code.to_owned(),
                    message,
                })
            }
        }
    }

    /// Set (or, empty with `; Max-Age=0`, clear) the session cookie: HttpOnly, SameSite=Strict,
    /// only for the console's paths, `Secure` over TLS.
    fn with_cookie(&self, mut resp: Response, value: &str, extra: &str) -> Response {
        let secure = if self.console.secure { "; Secure" } else { "" };
        let set =
            format!("{COOKIE}={value}; Path=/console; HttpOnly; SameSite=Strict{extra}{secure}");
        if let Ok(v) = HeaderValue::from_str(&set) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
        resp
    }

    /// The `member` items of every page of a listing operation (at most 100 pages of 100).
    async fn all_pages(
        &self,
        user: &User,
        op: Operation,
        mut body: Value,
        member: &str,
    ) -> Result<Vec<Value>, Refusal> {
        let mut items = Vec::new();
        body["Limit"] = json!(100);
        for _ in 0..100 {
            let v = self.kms(user, op, body.clone()).await?;
            items.extend(v[member].as_array().into_iter().flatten().cloned());
            match (v["Truncated"].as_bool(), v["NextMarker"].as_str()) {
                (Some(true), Some(m)) => body["Marker"] = json!(m),
                _ => break,
            }
        }
        Ok(items)
    }

    /// Carry out a form's operation; its outcome is the next page's message (a refusal with
    /// the API's code and message; a refused policy edit keeps the edited text).
    async fn act(
        &self,
        user: &User,
        op: Operation,
        body: Value,
        done: String,
        policy: Option<String>,
    ) {
        let flash = match self.kms(user, op, body).await {
            Ok(_) => Flash {
                ok: true,
                text: done,
                policy: None,
            },
            Err(e) => Flash {
                ok: false,
                text: format!("{} failed. {e}", op.name()),
                policy,
            },
        };
        self.flash(user, flash);
    }

    fn flash(&self, user: &User, flash: Flash) {
        self.console
            .sessions
            .with(&user.cookie, |s| s.flash = Some(flash));
    }

    fn chrome(&self, user: &User, nav: &'static str) -> Chrome {
        Chrome {
            signed_in: true,
            principal: user.caller.principal.arn.clone(),
            account: user.caller.principal.account.clone(),
            region: user.caller.region.clone(),
            regions: self.app.auth.regions().to_vec(),
            csrf: user.csrf.clone(),
            nav,
            flash: user.flash.clone().map(|f| FlashView {
                ok: f.ok,
                text: f.text,
            }),
        }
    }

    fn draft(&self, user: &User) -> Draft {
        self.console
            .sessions
            .with(&user.cookie, |s| s.draft.clone())
            .unwrap_or_default()
    }

    fn set_draft(&self, user: &User, draft: Draft) {
        self.console
            .sessions
            .with(&user.cookie, |s| s.draft = draft);
    }
}

/// An operation the API refused, as the page shows it.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

async fn home(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match ctx.user(&headers, peer).await {
        Ok(_) => redirect("/console/keys"),
        Err(g) => g.respond(),
    }
}

async fn not_found(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let chrome = match ctx.user(&headers, peer).await {
        Ok(u) => ctx.chrome(&u, ""),
        Err(_) => Chrome::signed_out(),
    };
    render(
        StatusCode::NOT_FOUND,
        ErrorPage {
            chrome,
            title: "Page not found".into(),
            error: "There is no console page at this address.".into(),
        },
    )
}

// ---- sign-in ----

async fn signin_page(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if ctx.user(&headers, peer).await.is_ok() {
        return redirect("/console/keys");
    }
    render(
        StatusCode::OK,
        SignInPage {
            chrome: Chrome::signed_out(),
            error: String::new(),
            access_key_id: String::new(),
        },
    )
}

async fn signin(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    if !same_origin(&headers) {
        return forbidden("The request came from another site");
    }
    let akid = form.get("access_key_id").trim().to_owned();
    let secret = zeroize::Zeroizing::new(form.get("secret_access_key").trim().to_owned());
    let failed = |msg: &str| {
        render(
            StatusCode::UNAUTHORIZED,
            SignInPage {
                chrome: Chrome::signed_out(),
                error: msg.to_owned(),
                access_key_id: akid.clone(),
            },
        )
    };
    if akid.is_empty() || secret.is_empty() {
        return failed("Enter an access key ID and its secret access key.");
    }
    let region = ctx
        .app
        .auth
        .regions()
        .first()
        .cloned()
        .unwrap_or_else(|| "us-east-1".into());
    let source = Source {
        peer,
        user_agent: USER_AGENT.to_owned(),
    };
    // What the trail records of a claimed access key id: access key ids are letters and
    // digits, anything else is not written into the trail as given.
    let claimed = if akid.len() <= 128 && akid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        akid.clone()
    } else {
        "(malformed)".to_owned()
    };
    let principal = match ctx.app.auth.verify_secret(&akid, secret.as_bytes()).await {
        Ok(p) => p,
        Err(AuthError::Backend(e)) => {
            tracing::error!(error = %e, "console sign-in: credential store failed");
            return failed("Sign-in is not possible right now. Try again later.");
        }
        Err(_) => {
            tracing::info!(access_key_id = %claimed, "console sign-in refused");
            if let Err(e) = api::audit_sign_in(&ctx.app, &source, &claimed, None, &region).await {
                tracing::error!(error = %e, "console sign-in: audit record not written");
            }
            return failed("The access key ID or the secret access key is not valid.");
        }
    };
    // Fail closed: no session without its audit record.
    if let Err(e) = api::audit_sign_in(&ctx.app, &source, &akid, Some(&principal), &region).await {
        tracing::error!(error = %e, "console sign-in: audit record not written");
        return failed("Sign-in is not possible right now. Try again later.");
    }
    let cookie = match ctx
        .console
        .sessions
        .create(akid.clone(), principal.arn.clone(), region)
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "console sign-in: no randomness");
            return failed("Sign-in is not possible right now. Try again later.");
        }
    };
    tracing::info!(access_key_id = %akid, principal = %principal.arn, "console sign-in");
    ctx.with_cookie(redirect("/console/keys"), &cookie, "")
}

async fn signout(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let live = cookie_of(&headers).and_then(|c| ctx.console.sessions.with(&c, |_| ()));
    if live.is_none() {
        // Nothing to end (expired already): no token to check.
        return ctx.with_cookie(redirect("/console/signin"), "", "; Max-Age=0");
    }
    let user = match ctx.poster(&headers, peer, &form).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    ctx.console.sessions.remove(&user.cookie);
    ctx.with_cookie(redirect("/console/signin"), "", "; Max-Age=0")
}

// ---- key lists ----

async fn customer_keys(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    key_list(ctx, peer, headers, q, "CUSTOMER").await
}

async fn aws_keys(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    key_list(ctx, peer, headers, q, "AWS").await
}

/// Keys per page of the list.
const PAGE: u32 = 25;

async fn key_list(
    ctx: Ctx,
    peer: SocketAddr,
    headers: HeaderMap,
    q: HashMap<String, String>,
    manager: &'static str,
) -> Response {
    let user = match ctx.user(&headers, peer).await {
        Ok(u) => u,
        Err(g) => return g.respond(),
    };
    let customer = manager == "CUSTOMER";
    let path = if customer {
        "/console/keys"
    } else {
        "/console/aws-keys"
    };
    let filter = q.get("filter").cloned().unwrap_or_default();
    let marker = q.get("marker").cloned().unwrap_or_default();
    let mut page = KeyListPage {
        chrome: ctx.chrome(&user, if customer { "customer" } else { "aws" }),
        title: if customer {
            "Customer managed keys"
        } else {
            "AWS managed keys"
        },
        path,
        customer,
        filter: filter.clone(),
        rows: Vec::new(),
        error: String::new(),
        next: String::new(),
        first: !marker.is_empty(),
    };
    let mut body = json!({ "Limit": PAGE });
    if !marker.is_empty() {
        body["Marker"] = json!(marker);
    }
    let listed = match ctx.kms(&user, Operation::ListKeys, body).await {
        Ok(v) => v,
        Err(e) => {
            page.error = e.to_string();
            return render(StatusCode::OK, page);
        }
    };
    if listed["Truncated"].as_bool() == Some(true) {
        if let Some(m) = listed["NextMarker"].as_str() {
            page.next = format!("{path}?marker={}", url_encode(m));
        }
    }
    let aliases = match all_aliases(&ctx, &user).await {
        Ok(a) => a,
        Err(e) => {
            page.error = format!("Aliases: {e}");
            HashMap::new()
        }
    };
    let needle = filter.trim().to_ascii_lowercase();
    for k in listed["Keys"].as_array().into_iter().flatten() {
        let Some(id) = k["KeyId"].as_str() else {
            continue;
        };
        let meta = match ctx
            .kms(&user, Operation::DescribeKey, json!({ "KeyId": id }))
            .await
        {
            Ok(v) => v["KeyMetadata"].clone(),
            Err(e) => {
                // Listed but not describable by this user: show what is known.
                page.rows.push(KeyRow::unknown(id, &e));
                continue;
            }
        };
        if meta["KeyManager"].as_str().unwrap_or("CUSTOMER") != manager {
            continue;
        }
        let names = aliases.get(id).cloned().unwrap_or_default();
        if !needle.is_empty()
            && !id.to_ascii_lowercase().contains(&needle)
            && !names
                .iter()
                .any(|a| a.to_ascii_lowercase().contains(&needle))
        {
            continue;
        }
        page.rows.push(KeyRow::from_metadata(&meta, names));
    }
    render(StatusCode::OK, page)
}

/// Alias names by target key id (every page of ListAliases).
async fn all_aliases(ctx: &Ctx, user: &User) -> Result<HashMap<String, Vec<String>>, Refusal> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for a in ctx
        .all_pages(user, Operation::ListAliases, json!({}), "Aliases")
        .await?
    {
        if let (Some(name), Some(target)) = (a["AliasName"].as_str(), a["TargetKeyId"].as_str()) {
            out.entry(target.to_owned())
                .or_default()
                .push(name.to_owned());
        }
    }
    Ok(out)
}

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---- create key wizard ----

const STEPS: [&str; 5] = [
    "Configure key",
    "Add labels",
    "Define key administrative permissions",
    "Define key usage permissions",
    "Review",
];

async fn create_page(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match ctx.user(&headers, peer).await {
        Ok(u) => u,
        Err(g) => return g.respond(),
    };
    let step: usize = q
        .get("step")
        .and_then(|s| s.parse().ok())
        .filter(|s| (1..=5).contains(s))
        .unwrap_or(1);
    let draft = ctx.draft(&user);
    let policy_text = user
        .flash
        .as_ref()
        .and_then(|f| f.policy.clone())
        .unwrap_or_else(|| policy::pretty(&draft_policy(&user, &draft)));
    let principals = match ctx.app.auth.principals().list().await {
        Ok(list) => list
            .into_iter()
            .filter(|p| {
                p.kind != crate::store::PrincipalKind::Root
                    && p.account == user.caller.principal.account
            })
            .map(|p| PrincipalView {
                admin: draft.admins.contains(&p.arn),
                user: draft.users.contains(&p.arn),
                kind: if p.kind == crate::store::PrincipalKind::Role {
                    "Role"
                } else {
                    "User"
                },
                name: p.name,
                arn: p.arn,
            })
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "console: listing principals failed");
            Vec::new()
        }
    };
    let mut tags: Vec<(String, String)> = draft.tags.clone();
    tags.push((String::new(), String::new()));
    render(
        StatusCode::OK,
        CreatePage {
            chrome: ctx.chrome(&user, "customer"),
            step,
            steps: STEPS
                .iter()
                .enumerate()
                .map(|(i, s)| StepView {
                    number: i + 1,
                    name: s,
                    current: i + 1 == step,
                    done: i + 1 < step,
                })
                .collect(),
            step_name: STEPS[step - 1],
            specs: SPECS
                .iter()
                .map(|(g, list)| {
                    (
                        *g,
                        list.iter()
                            .map(|s| SpecOption {
                                name: s,
                                selected: *s == draft.key_spec,
                            })
                            .collect(),
                    )
                })
                .collect(),
            review: review_rows(&draft),
            draft,
            tags,
            principals,
            policy: policy_text,
        },
    )
}

/// The key specs the configure step offers, by group.
const SPECS: &[(&str, &[&str])] = &[
    ("Symmetric", &["SYMMETRIC_DEFAULT"]),
    ("RSA", &["RSA_2048", "RSA_3072", "RSA_4096"]),
    (
        "Elliptic curve",
        &[
            "ECC_NIST_P256",
            "ECC_NIST_P384",
            "ECC_NIST_P521",
            "ECC_SECG_P256K1",
        ],
    ),
    ("HMAC", &["HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512"]),
];

fn draft_policy(user: &User, d: &Draft) -> policy::KeyPolicy {
    policy::default_key_policy(&policy::PolicyInput {
        account: &user.caller.principal.account,
        key_spec: &d.key_spec,
        key_usage: &d.key_usage,
        admins: &d.admins,
        admins_delete: d.admins_delete,
        users: &d.users,
    })
}

fn review_rows(d: &Draft) -> Vec<(String, String)> {
    let none = || "-".to_owned();
    let or_none = |s: &str| if s.is_empty() { none() } else { s.to_owned() };
    vec![
        ("Key type".into(), key_type_label(&d.key_type).into()),
        ("Key spec".into(), d.key_spec.clone()),
        ("Key usage".into(), usage_label(&d.key_usage).into()),
        ("Origin".into(), origin_label(&d.origin).into()),
        (
            "Alias".into(),
            if d.alias.is_empty() {
                none()
            } else {
                format!("alias/{}", d.alias)
            },
        ),
        ("Description".into(), or_none(&d.description)),
        (
            "Tags".into(),
            if d.tags.is_empty() {
                none()
            } else {
                d.tags
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        (
            "Key administrators".into(),
            if d.admins.is_empty() {
                none()
            } else {
                d.admins.join(", ")
            },
        ),
        (
            "Key administrators may delete this key".into(),
            if d.admins_delete { "Yes" } else { "No" }.into(),
        ),
        (
            "Key users".into(),
            if d.users.is_empty() {
                none()
            } else {
                d.users.join(", ")
            },
        ),
    ]
}

/// Check step 1's choices; returns the error to show.
fn configure(d: &mut Draft, f: &Fields) -> Result<(), String> {
    d.key_type = f.get("key_type").to_owned();
    d.origin = match f.get("origin") {
        "EXTERNAL" => "EXTERNAL".into(),
        _ => "AWS_KMS".into(),
    };
    let spec = f.get("key_spec").to_owned();
    let usage = f.get("key_usage").to_owned();
    match d.key_type.as_str() {
        "SYMMETRIC" => {
            d.key_usage = "ENCRYPT_DECRYPT".into();
            d.key_spec = "SYMMETRIC_DEFAULT".into();
        }
        "HMAC" => {
            d.key_usage = "GENERATE_VERIFY_MAC".into();
            d.key_spec = if spec.starts_with("HMAC_") {
                spec
            } else {
                "HMAC_256".into()
            };
        }
        "ASYMMETRIC" => {
            let ok = match usage.as_str() {
                "ENCRYPT_DECRYPT" => spec.starts_with("RSA_"),
                "SIGN_VERIFY" => spec.starts_with("RSA_") || spec.starts_with("ECC_"),
                "KEY_AGREEMENT" => spec.starts_with("ECC_NIST_"),
                _ => return Err("Choose a key usage for the asymmetric key.".into()),
            };
            d.key_usage = usage.clone();
            d.key_spec = spec.clone();
            if !ok {
                return Err(format!(
                    "Key spec {spec} cannot be used for {}. Choose {}.",
                    usage_label(&usage),
                    match usage.as_str() {
                        "ENCRYPT_DECRYPT" => "an RSA key spec",
                        "SIGN_VERIFY" => "an RSA or elliptic curve key spec",
                        _ => "an ECC_NIST key spec",
                    }
                ));
            }
        }
        _ => return Err("Choose a key type.".into()),
    }
    Ok(())
}

async fn create_step(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let user = match ctx.poster(&headers, peer, &form).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let step: usize = form.get("step").parse().unwrap_or(1).clamp(1, 5);
    let action = form.get("action");
    if action == "cancel" {
        ctx.set_draft(&user, Draft::default());
        return redirect("/console/keys");
    }
    let mut d = ctx.draft(&user);
    let go = |n: usize| redirect(&format!("/console/create?step={n}"));
    let fail = |text: String, n: usize, policy: Option<String>| {
        ctx.flash(
            &user,
            Flash {
                ok: false,
                text,
                policy,
            },
        );
        go(n)
    };
    match step {
        1 => {
            let r = configure(&mut d, &form);
            ctx.set_draft(&user, d);
            if let Err(e) = r {
                return fail(e, 1, None);
            }
        }
        2 => {
            d.alias = form
                .get("alias")
                .trim()
                .trim_start_matches("alias/")
                .to_owned();
            d.description = form.get("description").to_owned();
            let keys = form.all("tag_key");
            let values = form.all("tag_value");
            d.tags = keys
                .into_iter()
                .zip(values.into_iter().chain(std::iter::repeat(String::new())))
                .filter(|(k, _)| !k.trim().is_empty())
                .map(|(k, v)| (k.trim().to_owned(), v))
                .collect();
            ctx.set_draft(&user, d);
            if action == "add_tag" {
                return go(2);
            }
        }
        3 => {
            d.admins = form.all("admin");
            d.admins_delete = form.has("admins_delete");
            ctx.set_draft(&user, d);
        }
        4 => {
            d.users = form.all("user");
            ctx.set_draft(&user, d);
        }
        _ => {
            if action == "finish" {
                return finish_create(&ctx, &user, d, form.get("policy").to_owned()).await;
            }
        }
    }
    if action == "back" {
        go(step.saturating_sub(1).max(1))
    } else {
        go((step + 1).min(5))
    }
}

async fn finish_create(ctx: &Ctx, user: &User, d: Draft, policy_text: String) -> Response {
    let mut body = json!({
        "KeySpec": d.key_spec,
        "KeyUsage": d.key_usage,
        "Origin": d.origin,
        "Policy": policy_text,
    });
    if !d.description.is_empty() {
        body["Description"] = json!(d.description);
    }
    if !d.tags.is_empty() {
        body["Tags"] = d
            .tags
            .iter()
            .map(|(k, v)| json!({"TagKey": k, "TagValue": v}))
            .collect();
    }
    let created = match ctx.kms(user, Operation::CreateKey, body).await {
        Ok(v) => v,
        Err(e) => {
            ctx.flash(
                user,
                Flash {
                    ok: false,
                    text: format!("The key was not created. {e}"),
                    policy: Some(policy_text),
                },
            );
            return redirect("/console/create?step=5");
        }
    };
    let key_id = created["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    ctx.set_draft(user, Draft::default());
    let mut text = format!("Your KMS key was created with key ID {key_id}.");
    let mut ok = true;
    if !d.alias.is_empty() {
        let alias = format!("alias/{}", d.alias);
        match ctx
            .kms(
                user,
                Operation::CreateAlias,
                json!({"AliasName": alias, "TargetKeyId": key_id}),
            )
            .await
        {
            Ok(_) => {
                text = format!("Your KMS key was created with alias {alias} and key ID {key_id}.")
            }
            Err(e) => {
                ok = false;
                text = format!("Your KMS key {key_id} was created, but the alias was not. {e}");
            }
        }
    }
    ctx.flash(
        user,
        Flash {
            ok,
            text,
            policy: None,
        },
    );
    if valid_key_id(&key_id) {
        redirect(&format!("/console/keys/{key_id}"))
    } else {
        redirect("/console/keys")
    }
}

// ---- the key's page ----

/// Key ids as the pages link them (UUIDs; also keeps headers and links clean).
fn valid_key_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

const TABS: [(&str, &str); 6] = [
    ("policy", "Key policy"),
    ("crypto", "Cryptographic configuration"),
    ("tags", "Tags"),
    ("rotation", "Key rotation"),
    ("aliases", "Aliases"),
    ("public-key", "Public key"),
];

async fn key_page(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let user = match ctx.user(&headers, peer).await {
        Ok(u) => u,
        Err(g) => return g.respond(),
    };
    if !valid_key_id(&id) {
        return not_found(State(ctx), ConnectInfo(peer), headers).await;
    }
    let meta = match ctx
        .kms(&user, Operation::DescribeKey, json!({ "KeyId": id }))
        .await
    {
        Ok(v) => v["KeyMetadata"].clone(),
        Err(e) => {
            return render(
                StatusCode::OK,
                ErrorPage {
                    chrome: ctx.chrome(&user, "customer"),
                    title: id.clone(),
                    error: e.to_string(),
                },
            )
        }
    };
    let asymmetric = {
        let spec = meta["KeySpec"].as_str().unwrap_or("");
        spec.starts_with("RSA_") || spec.starts_with("ECC_")
    };
    let tab = q
        .get("tab")
        .map(String::as_str)
        .filter(|t| TABS.iter().any(|(k, _)| k == t))
        .filter(|t| *t != "public-key" || asymmetric)
        .unwrap_or("policy")
        .to_owned();
    let mut page = KeyPage {
        chrome: ctx.chrome(&user, "customer"),
        key: KeyView::from_metadata(&meta),
        tabs: TABS
            .iter()
            .filter(|(k, _)| *k != "public-key" || asymmetric)
            .map(|(k, n)| TabView {
                id: k,
                label: n,
                selected: *k == tab,
            })
            .collect(),
        tab: tab.clone(),
        aliases: Vec::new(),
        error: String::new(),
        policy: String::new(),
        policy_statements: Vec::new(),
        tags: Vec::new(),
        rotation: None,
        rotations: Vec::new(),
        public_key: String::new(),
        crypto: Vec::new(),
    };
    match ctx
        .kms(&user, Operation::ListAliases, json!({ "KeyId": id }))
        .await
    {
        Ok(v) => {
            page.aliases = v["Aliases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["AliasName"].as_str().map(str::to_owned))
                .collect()
        }
        Err(e) if tab == "aliases" => page.error = e.to_string(),
        Err(_) => {}
    }
    let key = json!({ "KeyId": id });
    match tab.as_str() {
        "policy" => {
            let draft = user.flash.as_ref().and_then(|f| f.policy.clone());
            match ctx.kms(&user, Operation::GetKeyPolicy, key.clone()).await {
                Ok(v) => {
                    let text = v["Policy"].as_str().unwrap_or("").to_owned();
                    page.policy_statements = statement_summaries(&text);
                    page.policy = draft.unwrap_or(text);
                }
                Err(e) => {
                    page.error = e.to_string();
                    page.policy = draft.unwrap_or_default();
                }
            }
        }
        "crypto" => page.crypto = crypto_rows(&meta),
        "tags" => match ctx
            .kms(&user, Operation::ListResourceTags, key.clone())
            .await
        {
            Ok(v) => {
                page.tags = v["Tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        (
                            t["TagKey"].as_str().unwrap_or("").to_owned(),
                            t["TagValue"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            }
            Err(e) => page.error = e.to_string(),
        },
        "rotation" => {
            match ctx
                .kms(&user, Operation::GetKeyRotationStatus, key.clone())
                .await
            {
                Ok(v) => {
                    page.rotation = Some(RotationView {
                        enabled: v["KeyRotationEnabled"].as_bool().unwrap_or(false),
                        period: v["RotationPeriodInDays"].as_i64().unwrap_or(365),
                        next: v["NextRotationDate"]
                            .as_f64()
                            .map(date)
                            .unwrap_or_else(|| "-".into()),
                    })
                }
                Err(e) => page.error = e.to_string(),
            }
            if page.error.is_empty() {
                match ctx
                    .kms(&user, Operation::ListKeyRotations, key.clone())
                    .await
                {
                    Ok(v) => {
                        page.rotations = v["Rotations"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|r| {
                                (
                                    r["RotationDate"]
                                        .as_f64()
                                        .map(date)
                                        .unwrap_or_else(|| "-".into()),
                                    r["RotationType"].as_str().unwrap_or("").to_owned(),
                                )
                            })
                            .collect()
                    }
                    Err(e) => page.error = e.to_string(),
                }
            }
        }
        "public-key" => match ctx.kms(&user, Operation::GetPublicKey, key.clone()).await {
            Ok(v) => page.public_key = pem(v["PublicKey"].as_str().unwrap_or("")),
            Err(e) => page.error = e.to_string(),
        },
        _ => {}
    }
    render(StatusCode::OK, page)
}

/// A DER public key (base64, as the API answers) as PEM.
fn pem(b64: &str) -> String {
    let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
    let chars: Vec<char> = b64.chars().collect();
    for line in chars.chunks(64) {
        out.extend(line);
        out.push('\n');
    }
    out.push_str("-----END PUBLIC KEY-----\n");
    out
}

/// The policy's statements as the default view lists them: Sid and principals.
fn statement_summaries(text: &str) -> Vec<(String, String)> {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let list = match &v["Statement"] {
        Value::Array(a) => a.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        _ => Vec::new(),
    };
    list.iter()
        .map(|s| {
            let who = match &s["Principal"]["AWS"] {
                Value::String(a) => a.clone(),
                Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                other if s["Principal"].is_string() => {
                    s["Principal"].as_str().unwrap_or_default().to_owned() + &other.to_string()
                }
                _ => "-".into(),
            };
            (
                s["Sid"].as_str().unwrap_or("(no Sid)").to_owned(),
                format!("{} {}", s["Effect"].as_str().unwrap_or(""), who),
            )
        })
        .collect()
}

fn crypto_rows(meta: &Value) -> Vec<(String, String)> {
    let list = |m: &str| {
        meta[m]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "-".into())
    };
    vec![
        (
            "Key type".into(),
            key_type_of(meta["KeySpec"].as_str().unwrap_or("")).into(),
        ),
        (
            "Key spec".into(),
            meta["KeySpec"].as_str().unwrap_or("").into(),
        ),
        (
            "Key usage".into(),
            usage_label(meta["KeyUsage"].as_str().unwrap_or("")).into(),
        ),
        (
            "Origin".into(),
            origin_label(meta["Origin"].as_str().unwrap_or("")).into(),
        ),
        ("Encryption algorithms".into(), list("EncryptionAlgorithms")),
        ("Signing algorithms".into(), list("SigningAlgorithms")),
        ("MAC algorithms".into(), list("MacAlgorithms")),
        (
            "Key agreement algorithms".into(),
            list("KeyAgreementAlgorithms"),
        ),
        (
            "Custom key store".into(),
            meta["CustomKeyStoreId"].as_str().unwrap_or("-").into(),
        ),
    ]
}

async fn key_action(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let user = match ctx.poster(&headers, peer, &form).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if !valid_key_id(&id) {
        return (StatusCode::NOT_FOUND, "no such key").into_response();
    }
    let key = |extra: Value| {
        let mut v = json!({ "KeyId": id });
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        v
    };
    let days = |name: &str| -> Value {
        match form.get(name).trim().parse::<i64>() {
            Ok(n) => json!(n),
            // Not a number: the API's validation answers (as for any bad member).
            Err(_) => json!(form.get(name)),
        }
    };
    let action = form.get("action");
    let (tab, op, body, done): (&str, Operation, Value, String) = match action {
        "enable" => (
            "policy",
            Operation::EnableKey,
            key(json!({})),
            "The key is enabled.".into(),
        ),
        "disable" => (
            "policy",
            Operation::DisableKey,
            key(json!({})),
            "The key is disabled.".into(),
        ),
        "schedule-deletion" => (
            "policy",
            Operation::ScheduleKeyDeletion,
            key(json!({"PendingWindowInDays": days("days")})),
            "The key is scheduled for deletion.".into(),
        ),
        "cancel-deletion" => (
            "policy",
            Operation::CancelKeyDeletion,
            key(json!({})),
            "Key deletion is cancelled. The key is disabled; enable it to use it.".into(),
        ),
        "description" => (
            "policy",
            Operation::UpdateKeyDescription,
            key(json!({"Description": form.get("description")})),
            "The description is saved.".into(),
        ),
        "policy" => (
            "policy",
            Operation::PutKeyPolicy,
            key(json!({"Policy": form.get("policy"), "PolicyName": "default"})),
            "The key policy is saved.".into(),
        ),
        "tag-add" => (
            "tags",
            Operation::TagResource,
            key(
                json!({"Tags": [{"TagKey": form.get("tag_key"), "TagValue": form.get("tag_value")}]}),
            ),
            format!("Tag {} is saved.", form.get("tag_key")),
        ),
        "tag-remove" => (
            "tags",
            Operation::UntagResource,
            key(json!({"TagKeys": [form.get("tag_key")]})),
            format!("Tag {} is removed.", form.get("tag_key")),
        ),
        "rotation-enable" => (
            "rotation",
            Operation::EnableKeyRotation,
            key(json!({"RotationPeriodInDays": days("period")})),
            "Automatic key rotation is enabled.".into(),
        ),
        "rotation-disable" => (
            "rotation",
            Operation::DisableKeyRotation,
            key(json!({})),
            "Automatic key rotation is disabled.".into(),
        ),
        "rotate-now" => (
            "rotation",
            Operation::RotateKeyOnDemand,
            key(json!({})),
            "On-demand rotation started.".into(),
        ),
        "alias-add" => {
            let name = format!(
                "alias/{}",
                form.get("alias").trim().trim_start_matches("alias/")
            );
            (
                "aliases",
                Operation::CreateAlias,
                json!({"AliasName": name, "TargetKeyId": id}),
                format!("Alias {name} is created."),
            )
        }
        "alias-delete" => (
            "aliases",
            Operation::DeleteAlias,
            json!({"AliasName": form.get("alias")}),
            format!("Alias {} is deleted.", form.get("alias")),
        ),
        _ => return (StatusCode::BAD_REQUEST, "unknown action").into_response(),
    };
    let policy = (action == "policy").then(|| form.get("policy").to_owned());
    ctx.act(&user, op, body, done, policy).await;
    redirect(&format!("/console/keys/{id}?tab={tab}"))
}

async fn public_key_pem(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let user = match ctx.user(&headers, peer).await {
        Ok(u) => u,
        Err(g) => return g.respond(),
    };
    if !valid_key_id(&id) {
        return (StatusCode::NOT_FOUND, "no such key").into_response();
    }
    match ctx
        .kms(&user, Operation::GetPublicKey, json!({ "KeyId": id }))
        .await
    {
        Ok(v) => {
            let disposition = format!("attachment; filename=\"{id}.pem\"");
            let mut resp = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-pem-file")],
                pem(v["PublicKey"].as_str().unwrap_or("")),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            resp
        }
        Err(e) => render(
            StatusCode::OK,
            ErrorPage {
                chrome: ctx.chrome(&user, "customer"),
                title: id.clone(),
                error: e.to_string(),
            },
        ),
    }
}

// ---- custom key stores ----

async fn keystores_page(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let user = match ctx.user(&headers, peer).await {
        Ok(u) => u,
        Err(g) => return g.respond(),
    };
    let mut page = KeyStoresPage {
        chrome: ctx.chrome(&user, "keystores"),
        stores: Vec::new(),
        error: String::new(),
    };
    let stores = ctx
        .all_pages(
            &user,
            Operation::DescribeCustomKeyStores,
            json!({}),
            "CustomKeyStores",
        )
        .await;
    match stores {
        Ok(list) => {
            for s in list {
                let text = |k: &str| s[k].as_str().unwrap_or("-").to_owned();
                page.stores.push(KeyStoreRow {
                    id: text("CustomKeyStoreId"),
                    name: text("CustomKeyStoreName"),
                    kind: text("CustomKeyStoreType"),
                    cluster: text("CloudHsmClusterId"),
                    connected: s["ConnectionState"] == "CONNECTED",
                    state: text("ConnectionState"),
                    error: s["ConnectionErrorCode"].as_str().unwrap_or("").to_owned(),
                    created: s["CreationDate"]
                        .as_f64()
                        .map(date)
                        .unwrap_or_else(|| "-".into()),
                });
            }
        }
        Err(e) => page.error = e.to_string(),
    }
    render(StatusCode::OK, page)
}

async fn keystore_action(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let user = match ctx.poster(&headers, peer, &form).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let id = form.get("id");
    let (op, done) = match form.get("action") {
        "connect" => (
            Operation::ConnectCustomKeyStore,
            format!("Connecting custom key store {id}."),
        ),
        "disconnect" => (
            Operation::DisconnectCustomKeyStore,
            format!("Custom key store {id} is disconnected."),
        ),
        _ => return (StatusCode::BAD_REQUEST, "unknown action").into_response(),
    };
    ctx.act(&user, op, json!({ "CustomKeyStoreId": id }), done, None)
        .await;
    redirect("/console/keystores")
}

/// The region the session's calls go to (one of the configured regions).
async fn switch_region(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let form = Fields(form);
    let user = match ctx.poster(&headers, peer, &form).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let region = form.get("region");
    if ctx.app.auth.regions().iter().any(|r| r == region) {
        ctx.console
            .sessions
            .with(&user.cookie, |s| s.region = region.to_owned());
    }
    redirect("/console/keys")
}
