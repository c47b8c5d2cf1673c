//! Custom key stores: their state, connect and disconnect.

use super::*;

pub(super) async fn keystores_page(State(ctx): State<Ctx>, Page(user): Page) -> Response {
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

pub(super) async fn keystore_action(
    State(ctx): State<Ctx>,
    Posted { user, form }: Posted,
) -> Response {
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
