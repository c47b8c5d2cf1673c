//! A key's page: general configuration, key actions and the tabs.

use super::*;

const TABS: [(&str, &str); 6] = [
    ("policy", "Key policy"),
    ("crypto", "Cryptographic configuration"),
    ("tags", "Tags"),
    ("rotation", "Key rotation"),
    ("aliases", "Aliases"),
    ("public-key", "Public key"),
];

pub(super) async fn key_page(
    State(ctx): State<Ctx>,
    Page(user): Page,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !valid_key_id(&id) {
        return missing(&ctx, &user);
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
    let asymmetric = super::views::is_asymmetric(meta["KeySpec"].as_str().unwrap_or(""));
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
        default_view: None,
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
                    page.default_view = default_view_of(&ctx, &user, &meta, &text).await;
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
            let who = match (&s["Principal"], &s["Principal"]["AWS"]) {
                (Value::String(p), _) => p.clone(),
                (_, Value::String(a)) => a.clone(),
                (_, Value::Array(a)) => a
                    .iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                (Value::Null, _) => "-".into(),
                (p, _) => p.to_string(),
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
        (
            "Cluster (token)".into(),
            meta["CloudHsmClusterId"].as_str().unwrap_or("-").into(),
        ),
        ("Key material".into(), key_material(meta)),
    ]
}

/// The key material's state as the "Key material" tab of AWS's console tells it.
fn key_material(meta: &Value) -> String {
    if meta["Origin"] != "EXTERNAL" {
        return "Generated in the token".into();
    }
    if meta["KeyState"] == "PendingImport" {
        return "Imported key material: none (pending import)".into();
    }
    match (meta["ExpirationModel"].as_str(), meta["ValidTo"].as_f64()) {
        (Some("KEY_MATERIAL_EXPIRES"), Some(t)) => {
            format!("Imported key material, expires {}", date(t))
        }
        _ => "Imported key material, does not expire".into(),
    }
}

pub(super) async fn key_action(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    Posted { user, form }: Posted,
) -> Response {
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
        "admin-add" | "admin-remove" | "user-add" | "user-remove" => {
            let principal = form.get("principal").to_owned();
            let policy = match changed_default_policy(&ctx, &user, &id, action, &principal).await {
                Ok(p) => p,
                Err(text) => {
                    ctx.flash(
                        &user,
                        Flash {
                            ok: false,
                            text,
                            policy: None,
                        },
                    );
                    return redirect(&format!("/console/keys/{id}?tab=policy"));
                }
            };
            (
                "policy",
                Operation::PutKeyPolicy,
                key(json!({"Policy": policy, "PolicyName": "default"})),
                format!(
                    "{principal} {} the key {}.",
                    if action.ends_with("add") {
                        "is now"
                    } else {
                        "is no longer"
                    },
                    if action.starts_with("admin") {
                        "administrator"
                    } else {
                        "user"
                    }
                ),
            )
        }
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

pub(super) async fn public_key_pem(
    State(ctx): State<Ctx>,
    Page(user): Page,
    Path(id): Path<String>,
) -> Response {
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

/// The default view of a key's policy, with the principals one may add.
async fn default_view_of(
    ctx: &Ctx,
    user: &User,
    meta: &Value,
    text: &str,
) -> Option<DefaultViewPage> {
    let view = policy::default_view(
        text,
        meta["AWSAccountId"].as_str()?,
        meta["KeySpec"].as_str()?,
        meta["KeyUsage"].as_str()?,
    )?;
    let known: Vec<String> = ctx
        .app
        .auth
        .principals()
        .list()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            p.kind != crate::store::PrincipalKind::Root
                && p.account == user.caller.principal.account
        })
        .map(|p| p.arn)
        .collect();
    let not_in = |list: &[String]| {
        known
            .iter()
            .filter(|a| !list.contains(a))
            .cloned()
            .collect()
    };
    Some(DefaultViewPage {
        groups: vec![
            PrincipalGroup {
                title: "Key administrators",
                kind: "admin",
                addable: not_in(&view.admins),
                members: view.admins,
            },
            PrincipalGroup {
                title: "Key users",
                kind: "user",
                addable: not_in(&view.users),
                members: view.users,
            },
        ],
    })
}

/// The key's policy with a key administrator or user added or removed — only while it is the
/// console's default policy (else the JSON is the way to change it).
async fn changed_default_policy(
    ctx: &Ctx,
    user: &User,
    id: &str,
    action: &str,
    principal: &str,
) -> Result<String, String> {
    let meta = ctx
        .kms(user, Operation::DescribeKey, json!({ "KeyId": id }))
        .await
        .map_err(|e| format!("DescribeKey failed. {e}"))?["KeyMetadata"]
        .clone();
    let text = ctx
        .kms(user, Operation::GetKeyPolicy, json!({ "KeyId": id }))
        .await
        .map_err(|e| format!("GetKeyPolicy failed. {e}"))?["Policy"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let s = |k: &str| meta[k].as_str().unwrap_or("").to_owned();
    let (account, spec, usage) = (s("AWSAccountId"), s("KeySpec"), s("KeyUsage"));
    let mut view = policy::default_view(&text, &account, &spec, &usage).ok_or_else(|| {
        "The key policy is not the console's default policy: edit its JSON instead.".to_owned()
    })?;
    if principal.is_empty() {
        return Err("Choose a user or role.".into());
    }
    let list = if action.starts_with("admin") {
        &mut view.admins
    } else {
        &mut view.users
    };
    if action.ends_with("add") {
        if !list.iter().any(|a| a == principal) {
            list.push(principal.to_owned());
        }
    } else {
        list.retain(|a| a != principal);
    }
    Ok(policy::pretty(&policy::default_key_policy(
        &view.input(&account, &spec, &usage),
    )))
}
