//! The wire protocol as raw HTTP: envelopes, error names and statuses real clients parse.

mod common;
use common::*;

const JSON: &str = "application/x-amz-json-1.1";

fn call(server: &Server, target: &str, body: &str) -> RawResponse {
    server.signed(target, body)
}

fn assert_error(r: &RawResponse, status: u16, name: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.error_type(), name, "{r:?}");
    assert_eq!(r.header("x-amzn-errortype"), Some(name), "{r:?}");
    assert_eq!(r.header("content-type"), Some(JSON));
    assert!(r.header("x-amzn-requestid").is_some_and(|v| v.len() == 36));
    assert!(r.json()["message"].is_string(), "{r:?}");
}

#[test]
fn success_envelope() {
    let (_d, server) = Server::start_new();
    let r = call(&server, "TrentService.CreateKey", "{}");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some(JSON));
    assert!(r.header("x-amzn-requestid").is_some());
    let m = &r.json()["KeyMetadata"];
    assert!(
        m["CreationDate"].is_number(),
        "timestamps are epoch seconds"
    );
    assert!(
        m.get("DeletionDate").is_none(),
        "absent members are omitted, not null"
    );
    let id = m["KeyId"].as_str().unwrap().to_owned();
    // An empty body counts as {} and operations without output answer with an empty body.
    let r = call(&server, "TrentService.ListKeys", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["Keys"].as_array().unwrap().len(), 1);
    let r = call(
        &server,
        "TrentService.DisableKey",
        &format!(r#"{{"KeyId":"{id}"}}"#),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "");
}

#[test]
fn protocol_errors() {
    let (_d, server) = Server::start_new();
    assert_error(
        &call(&server, "TrentService.NoSuchThing", "{}"),
        400,
        "UnknownOperationException",
    );
    assert_error(
        &call(&server, "Other.CreateKey", "{}"),
        400,
        "UnknownOperationException",
    );
    assert_error(
        &call(&server, "TrentService.CreateKey", "{nope"),
        400,
        "SerializationException",
    );
    assert_error(
        &call(&server, "TrentService.CreateKey", "[]"),
        400,
        "SerializationException",
    );
    assert_error(
        &call(&server, "TrentService.DescribeKey", r#"{"KeyId": 5}"#),
        400,
        "SerializationException",
    );
    assert_error(
        &call(
            &server,
            "TrentService.Encrypt",
            r#"{"KeyId":"alias/x","Plaintext":"***"}"#,
        ),
        400,
        "SerializationException",
    );
    let r = call(
        &server,
        "TrentService.Encrypt",
        r#"{"Plaintext":"aGVsbG8="}"#,
    );
    assert_error(&r, 400, "ValidationException");
    assert!(r.json()["message"].as_str().unwrap().contains("keyId"));
    assert_error(
        &call(
            &server,
            "TrentService.DescribeKey",
            &format!(r#"{{"KeyId":"{}"}}"#, "k".repeat(2049)),
        ),
        400,
        "ValidationException",
    );
    assert_error(
        &call(
            &server,
            "TrentService.CreateKey",
            r#"{"KeySpec":"AES_999"}"#,
        ),
        400,
        "ValidationException",
    );
    let big = format!(r#"{{"Description":"{}"}}"#, "x".repeat(300 * 1024));
    let auth = fake_authorization(REGION);
    let r = server.raw(
        &[
            ("X-Amz-Target", "TrentService.CreateKey"),
            ("Authorization", &auth),
        ],
        big.as_bytes(),
    );
    assert_eq!(r.error_type(), "ValidationException", "{r:?}");
    assert_eq!(r.status, 413);
}

#[test]
fn errors_never_echo_secrets() {
    let (_d, server) = Server::start_new();
    // A malformed body holding a would-be plaintext: the message must not repeat it.
    let r = call(
        &server,
        "TrentService.Encrypt",
        r#"{"KeyId":"alias/x","Plaintext":"c2VjcmV0LXZhbHVlLTQy", "Bad": }"#,
    );
    assert_error(&r, 400, "SerializationException");
    assert!(!r.body.contains("c2VjcmV0LXZhbHVlLTQy"));
    assert!(!server.log().contains("c2VjcmV0LXZhbHVlLTQy"));
}

#[test]
fn authentication_envelope() {
    let (_d, server) = Server::start_new();
    let r = server.raw(
        &[
            ("X-Amz-Target", "TrentService.ListKeys"),
            ("Content-Type", JSON),
        ],
        b"{}",
    );
    assert_error(&r, 403, "MissingAuthenticationTokenException");
    let r = server.raw(
        &[
            ("X-Amz-Target", "TrentService.ListKeys"),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=x"),
        ],
        b"{}",
    );
    assert_error(&r, 400, "IncompleteSignatureException");
    let auth = fake_authorization("ap-south-7");
    let r = server.raw(
        &[
            ("X-Amz-Target", "TrentService.ListKeys"),
            ("Authorization", &auth),
        ],
        b"{}",
    );
    assert_error(&r, 400, "InvalidSignatureException");
}
