//! Sign-in, sign-out and the session's region.

use super::*;

pub(super) async fn signin_page(
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

pub(super) async fn signin(
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
    let counted = [format!("ip:{}", peer.ip()), format!("key:{claimed}")];
    if ctx.console.throttle.blocked(&counted) {
        tracing::warn!(access_key_id = %claimed, ip = %peer.ip(), "console sign-in throttled");
        if let Err(e) = api::audit_sign_in(&ctx.app, &source, &claimed, None, &region).await {
            tracing::error!(error = %e, "console sign-in: audit record not written");
        }
        return failed("Too many failed sign-ins. Try again in a few minutes.");
    }
    let principal = match ctx.app.auth.verify_secret(&akid, secret.as_bytes()).await {
        Ok(p) => p,
        Err(AuthError::Backend(e)) => {
            tracing::error!(error = %e, "console sign-in: credential store failed");
            return failed("Sign-in is not possible right now. Try again later.");
        }
        Err(_) => {
            tracing::info!(access_key_id = %claimed, "console sign-in refused");
            ctx.console.throttle.failed(&counted);
            if let Err(e) = api::audit_sign_in(&ctx.app, &source, &claimed, None, &region).await {
                tracing::error!(error = %e, "console sign-in: audit record not written");
            }
            return failed("The access key ID or the secret access key is not valid.");
        }
    };
    ctx.console.throttle.succeeded(&counted[1]);
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

pub(super) async fn signout(
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

/// The region the session's calls go to (one of the configured regions).
pub(super) async fn switch_region(
    State(ctx): State<Ctx>,
    Posted { user, form }: Posted,
) -> Response {
    let region = form.get("region");
    if ctx.app.auth.regions().iter().any(|r| r == region) {
        ctx.console
            .sessions
            .with(&user.cookie, |s| s.region = region.to_owned());
    }
    redirect("/console/keys")
}
