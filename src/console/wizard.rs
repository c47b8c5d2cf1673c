//! The create-key wizard: AWS's five steps, its draft kept in the session.

use super::*;

const STEPS: [&str; 5] = [
    "Configure key",
    "Add labels",
    "Define key administrative permissions",
    "Define key usage permissions",
    "Review",
];

pub(super) async fn create_page(
    State(ctx): State<Ctx>,
    Page(user): Page,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
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
    // The configure step offers the custom key stores this user may see.
    let stores = if step == 1 {
        ctx.all_pages(
            &user,
            Operation::DescribeCustomKeyStores,
            json!({}),
            "CustomKeyStores",
        )
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|s| {
            let id = s["CustomKeyStoreId"].as_str()?.to_owned();
            Some(KeyStoreOption {
                selected: id == draft.custom_key_store_id,
                label: format!(
                    "{} ({}, {})",
                    s["CustomKeyStoreName"].as_str().unwrap_or(""),
                    id,
                    s["ConnectionState"].as_str().unwrap_or("")
                ),
                id,
            })
        })
        .collect()
    } else {
        Vec::new()
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
            other_accounts: draft.other_accounts.join(", "),
            stores,
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
    ("Edwards curve", &["ECC_NIST_EDWARDS25519"]),
    ("ML-DSA", &["ML_DSA_44", "ML_DSA_65", "ML_DSA_87"]),
    ("ML-KEM", &["ML_KEM_512", "ML_KEM_768", "ML_KEM_1024"]),
    ("HMAC", &["HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512"]),
];

fn draft_policy(user: &User, d: &Draft) -> policy::KeyPolicy {
    policy::default_key_policy(&policy::PolicyInput {
        account: &user.caller.principal.account,
        key_spec: &d.key_spec,
        key_usage: &d.key_usage,
        admins: &d.admins,
        admins_delete: d.admins_delete,
        users: &key_users(d),
    })
}

/// The key users' principals: the chosen users and roles, then other accounts (their root).
fn key_users(d: &Draft) -> Vec<String> {
    d.users
        .iter()
        .cloned()
        .chain(
            d.other_accounts
                .iter()
                .map(|a| crate::auth::Principal::root_arn(a)),
        )
        .collect()
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
            "Regionality".into(),
            if d.multi_region {
                "Multi-Region key"
            } else {
                "Single-Region key"
            }
            .into(),
        ),
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
        (
            "Other AWS accounts".into(),
            if d.other_accounts.is_empty() {
                none()
            } else {
                d.other_accounts.join(", ")
            },
        ),
    ]
}

/// Check step 1's choices; returns the error to show.
fn configure(d: &mut Draft, f: &Fields) -> Result<(), String> {
    d.key_type = f.get("key_type").to_owned();
    d.origin = match f.get("origin") {
        "EXTERNAL" => "EXTERNAL".into(),
        "AWS_CLOUDHSM" => "AWS_CLOUDHSM".into(),
        _ => "AWS_KMS".into(),
    };
    d.custom_key_store_id = f.get("custom_key_store_id").to_owned();
    d.multi_region = f.get("regionality") == "MULTI";
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
                "SIGN_VERIFY" => {
                    spec.starts_with("RSA_")
                        || spec.starts_with("ECC_")
                        || spec.starts_with("ML_DSA_")
                }
                "KEY_AGREEMENT" => spec.starts_with("ECC_NIST_P"),
                "ENCAPSULATE_DECAPSULATE" => spec.starts_with("ML_KEM_"),
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
                        "SIGN_VERIFY" => "an RSA, elliptic curve or ML-DSA key spec",
                        "ENCAPSULATE_DECAPSULATE" => "an ML-KEM key spec",
                        _ => "an ECC_NIST_P key spec",
                    }
                ));
            }
        }
        _ => return Err("Choose a key type.".into()),
    }
    if d.origin == "AWS_CLOUDHSM" {
        if d.key_type != "SYMMETRIC" {
            return Err("Keys in a custom key store are symmetric encryption keys.".into());
        }
        if d.custom_key_store_id.is_empty() {
            return Err("Choose the custom key store for the key.".into());
        }
        if d.multi_region {
            return Err("A key in a custom key store is a single-Region key.".into());
        }
    }
    Ok(())
}

/// Other accounts as typed: 12-digit ids separated by commas or spaces.
fn accounts(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for a in text
        .split([',', ' ', '\n', '\r', '\t'])
        .filter(|a| !a.is_empty())
    {
        if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{a} is not an AWS account ID (12 digits)."));
        }
        if !out.iter().any(|x: &String| x == a) {
            out.push(a.to_owned());
        }
    }
    Ok(out)
}

pub(super) async fn create_step(State(ctx): State<Ctx>, Posted { user, form }: Posted) -> Response {
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
            let others = accounts(form.get("other_accounts"));
            if let Ok(list) = &others {
                d.other_accounts = list.clone();
            }
            ctx.set_draft(&user, d);
            if let Err(e) = others {
                return fail(e, 4, None);
            }
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
    if d.origin == "AWS_CLOUDHSM" {
        body["CustomKeyStoreId"] = json!(d.custom_key_store_id);
    }
    if d.multi_region {
        body["MultiRegion"] = json!(true);
    }
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
