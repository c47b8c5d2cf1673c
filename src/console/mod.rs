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
//!
//! Files: `mod.rs` the router, security headers and the request gates — `Page` (a signed-in
//! user) and `Posted` (a signed-in user's form that passed the origin and CSRF checks: the
//! only way a handler gets a user for a change); `session.rs` sessions; `signin.rs`, `keys.rs` (the lists), `wizard.rs` (create
//! key), `key.rs` (a key's page and actions), `keystores.rs`, `audit.rs` (the trail, for
//! principals allowed `cloudtrail:LookupEvents`) the pages; `policy.rs` the
//! console's default key policy; `views.rs` + `templates/` the HTML.

mod audit;
mod key;
mod keys;
mod keystores;
pub mod policy;
pub mod session;
mod signin;
mod views;
mod wizard;

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
    throttle: session::SignInThrottle,
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
        throttle: session::SignInThrottle::default(),
        secure: app.secure_transport,
    });
    let ctx = Ctx { app, console };
    Ok(Router::new()
        .route("/console", get(|| async { redirect("/console/") }))
        .route("/console/", get(home))
        .route("/console/console.css", get(stylesheet))
        .route(
            "/console/signin",
            get(signin::signin_page).post(signin::signin),
        )
        .route("/console/signout", axum::routing::post(signin::signout))
        .route("/console/keys", get(keys::customer_keys))
        .route("/console/aws-keys", get(keys::aws_keys))
        .route(
            "/console/create",
            get(wizard::create_page).post(wizard::create_step),
        )
        .route(
            "/console/keys/{id}",
            get(key::key_page).post(key::key_action),
        )
        .route(
            "/console/keys/{id}/public-key.pem",
            get(key::public_key_pem),
        )
        .route(
            "/console/keystores",
            get(keystores::keystores_page).post(keystores::keystore_action),
        )
        .route("/console/audit", get(audit::audit_page))
        .route(
            "/console/region",
            axum::routing::post(signin::switch_region),
        )
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
            Ok(v) => Ok(v.map(api::Reply::into_public).unwrap_or(Value::Null)),
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

/// A page request of a signed-in user (else: to the sign-in page). Its one-time message is
/// taken for this page.
struct Page(User);

impl axum::extract::FromRequestParts<Ctx> for Page {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        ctx: &Ctx,
    ) -> Result<Self, Self::Rejection> {
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, ctx)
            .await
            .map_err(IntoResponse::into_response)?;
        ctx.user(&parts.headers, peer)
            .await
            .map(Page)
            .map_err(Gate::respond)
    }
}

/// A form POST of a signed-in user that passed the origin and CSRF checks (else 403): the
/// only way a handler gets a user for a change, so none can skip the checks.
struct Posted {
    user: User,
    form: Fields,
}

impl axum::extract::FromRequest<Ctx> for Posted {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, ctx: &Ctx) -> Result<Self, Self::Rejection> {
        use axum::extract::FromRequestParts;
        let (mut parts, body) = req.into_parts();
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(&mut parts, ctx)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let req = axum::extract::Request::from_parts(parts, body);
        let Form(form) = Form::<Vec<(String, String)>>::from_request(req, ctx)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = Fields(form);
        let user = ctx.poster(&headers, peer, &form).await?;
        Ok(Posted { user, form })
    }
}

/// The 404 page of a signed-in user.
fn missing(ctx: &Ctx, user: &User) -> Response {
    render(
        StatusCode::NOT_FOUND,
        ErrorPage {
            chrome: ctx.chrome(user, ""),
            title: "Page not found".into(),
            error: "There is no console page at this address.".into(),
        },
    )
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

/// Key ids as the pages link them (UUIDs; also keeps headers and links clean).
fn valid_key_id(id: &str) -> bool {
    // A UUID, or a multi-Region key's `mrk-` + hex digits.
    let id = id.strip_prefix("mrk-").unwrap_or(id);
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}
