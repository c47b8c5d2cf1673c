//! The key lists: customer managed and AWS managed keys.

use super::*;

pub(super) async fn customer_keys(
    State(ctx): State<Ctx>,
    Page(user): Page,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    key_list(ctx, user, Fields(q), "CUSTOMER").await
}

pub(super) async fn aws_keys(
    State(ctx): State<Ctx>,
    Page(user): Page,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    key_list(ctx, user, Fields(q), "AWS").await
}

/// Keys per page of the list unless the user chose another page size (1–100).
const PAGE: u32 = 25;

/// The list's columns (id, heading); the key id is always shown.
const COLUMNS: [(&str, &str); 8] = [
    ("aliases", "Aliases"),
    ("key_id", "Key ID"),
    ("status", "Status"),
    ("key_type", "Key type"),
    ("key_spec", "Key spec"),
    ("key_usage", "Key usage"),
    ("origin", "Origin"),
    ("created", "Creation date"),
];

/// The columns to show: chosen with the list's preferences (`prefs=1&col=…`, kept in the
/// session), else all.
fn columns(ctx: &Ctx, user: &User, q: &Fields) -> Vec<String> {
    if q.has("prefs") {
        let mut chosen: Vec<String> = COLUMNS
            .iter()
            .map(|(id, _)| id.to_string())
            .filter(|id| id == "key_id" || q.all("col").contains(id))
            .collect();
        chosen.dedup();
        ctx.console
            .sessions
            .with(&user.cookie, |s| s.columns = Some(chosen.clone()));
        return chosen;
    }
    ctx.console
        .sessions
        .with(&user.cookie, |s| s.columns.clone())
        .flatten()
        .unwrap_or_else(|| COLUMNS.iter().map(|(id, _)| id.to_string()).collect())
}

async fn key_list(ctx: Ctx, user: User, q: Fields, manager: &'static str) -> Response {
    let customer = manager == "CUSTOMER";
    let path = if customer {
        "/console/keys"
    } else {
        "/console/aws-keys"
    };
    let filter = q.get("filter").to_owned();
    let marker = q.get("marker").to_owned();
    let shown = columns(&ctx, &user, &q);
    let limit = page_size(&ctx, &user, &q);
    let show = |c: &str| shown.iter().any(|s| s == c);
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
        page_sizes: {
            let mut sizes = vec![10, 25, 50, 100];
            if !sizes.contains(&limit) {
                sizes.push(limit);
                sizes.sort_unstable();
            }
            sizes
                .into_iter()
                .map(|n| SizeOption {
                    n,
                    selected: n == limit,
                })
                .collect()
        },
        columns: COLUMNS
            .iter()
            .map(|(id, label)| ColumnView {
                id,
                label,
                shown: show(id),
            })
            .collect(),
        show: Shown {
            aliases: show("aliases"),
            status: show("status"),
            key_type: show("key_type"),
            key_spec: show("key_spec"),
            key_usage: show("key_usage"),
            origin: show("origin"),
            created: show("created"),
        },
    };
    let mut body = json!({ "Limit": limit });
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
            if !filter.is_empty() {
                page.next
                    .push_str(&format!("&filter={}", url_encode(&filter)));
            }
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
            && !tags_match(&ctx, &user, id, &needle).await
        {
            continue;
        }
        page.rows.push(KeyRow::from_metadata(&meta, names));
    }
    render(StatusCode::OK, page)
}

/// The page size: `page_size=N` (1–100, kept in the session), else the session's, else 25.
fn page_size(ctx: &Ctx, user: &User, q: &Fields) -> u32 {
    let chosen = q
        .get("page_size")
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=100).contains(n));
    ctx.console
        .sessions
        .with(&user.cookie, |s| {
            if chosen.is_some() {
                s.page_size = chosen;
            }
            s.page_size
        })
        .flatten()
        .unwrap_or(PAGE)
}

/// Whether a tag of the key matches the filter (`key`, `value` or `key=value`, in part).
async fn tags_match(ctx: &Ctx, user: &User, id: &str, needle: &str) -> bool {
    let Ok(v) = ctx
        .kms(user, Operation::ListResourceTags, json!({ "KeyId": id }))
        .await
    else {
        return false;
    };
    v["Tags"].as_array().into_iter().flatten().any(|t| {
        let tag = format!(
            "{}={}",
            t["TagKey"].as_str().unwrap_or(""),
            t["TagValue"].as_str().unwrap_or("")
        );
        tag.to_ascii_lowercase().contains(needle)
    })
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

pub(super) fn url_encode(s: &str) -> String {
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
