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
    // AWS's front end sends these two without a message.
    if matches!(name, "UnknownOperationException" | "SerializationException") {
        assert!(r.json().get("message").is_none(), "{r:?}");
    } else {
        assert!(r.json()["message"].is_string(), "{r:?}");
    }
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
    assert_error(&r, 400, "MissingAuthenticationTokenException");
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

/// Headers (and the first bytes of a body) sent; the answer read back.
fn send_partial(
    server: &Server,
    headers: &[(String, String)],
    declared: usize,
    sent: &[u8],
) -> RawResponse {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(&server.addr).unwrap();
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {declared}\r\n",
        server.addr
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    c.write_all(req.as_bytes()).unwrap();
    c.write_all(sent).unwrap();
    // Far shorter than the server's body timeout here: an answer in this time was given
    // without waiting for the rest of the body.
    c.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    parse_response(&buf)
}

/// The body is read only once the signature's header part has passed (the key is known, the
/// scope, date and signed headers are right) and the content type is the protocol's: a
/// request that cannot authenticate is answered without its body being waited for or
/// buffered, and a declared length over the limit is refused before anything is read.
#[test]
fn bodies_wait_for_the_signature_headers_and_content_type() {
    let dir = TestDir::new();
    let server = Server::start(&dir, &[("KMS_BRIDGE_BODY_READ_TIMEOUT_MS", "600000")]);
    let target = "TrentService.ListKeys";
    let with = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut h = vec![
            ("X-Amz-Target".to_owned(), target.to_owned()),
            ("Content-Type".to_owned(), JSON.to_owned()),
        ];
        h.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        h
    };
    // 200 KB declared, 10 bytes sent, the rest never comes.
    let partial = |h: &[(String, String)]| send_partial(&server, h, 200_000, b"{\"Limit\":1");
    let r = partial(&with(&[]));
    assert_error(&r, 400, "MissingAuthenticationTokenException");
    let r = partial(&with(&[("Authorization", &fake_authorization(REGION))]));
    assert_error(&r, 400, "IncompleteSignatureException");
    let stranger = Creds {
        access_key_id: "AKIAUNKNOWNUNKNOWN00".into(),
        secret: "whatever-it-is".into(),
    };
    let signing = Signing {
        creds: &stranger,
        ..Signing::default()
    };
    let r = partial(&signed_headers(&server.addr, target, b"{}", &signing));
    assert_error(&r, 400, "UnrecognizedClientException");
    let late = Signing {
        skew_secs: -3600,
        ..Signing::default()
    };
    let r = partial(&signed_headers(&server.addr, target, b"{}", &late));
    assert_error(&r, 400, "InvalidSignatureException");
    // Correctly signed headers but a declared length over the limit (256 KiB): refused first.
    let r = send_partial(
        &server,
        &signed_headers(&server.addr, target, b"{}", &Signing::default()),
        300 * 1024,
        b"{",
    );
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.error_type(), "ValidationException");

    // The content type must be the AWS JSON protocol's.
    for (content_type, ok) in [
        ("application/x-amz-json-1.1", true),
        ("application/x-amz-json-1.1; charset=utf-8", true),
        ("application/json", true),
        ("text/plain", false),
        ("application/x-www-form-urlencoded", false),
    ] {
        let s = Signing {
            content_type,
            ..Signing::default()
        };
        let r = server.signed_with(target, b"{}", b"{}", &s);
        if ok {
            assert_eq!(r.status, 200, "{content_type}: {r:?}");
        } else {
            assert_eq!(r.status, 400, "{content_type}: {r:?}");
            assert_eq!(
                r.error_type(),
                "UnknownOperationException",
                "{content_type}"
            );
            assert_eq!(
                r.header("x-amzn-errortype"),
                Some("UnknownOperationException")
            );
        }
    }
}

/// Replays are answered as AWS answers them: SigV4 signs no nonce, so a signed request stays
/// valid while its X-Amz-Date is within the skew (±5 minutes) and each copy is a new request.
/// Refusing or de-duplicating copies is not possible without breaking real clients: the AWS
/// SDK for Rust signs no per-call id (its `amz-sdk-invocation-id` header is unsigned), so two
/// identical calls within one second carry the same signature — they must make two keys.
/// Protection against captured requests is TLS (and, from outside, the short window).
#[tokio::test]
async fn identical_signed_requests_are_distinct_requests_as_on_aws() {
    let (_dir, server) = Server::start_new();
    let kms = server.client();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let k = kms.create_key().description("same").send().await.unwrap();
        ids.push(k.key_metadata.unwrap().key_id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 3, "{ids:?}");
    // The same signed bytes sent three times: three requests, three keys (as on AWS).
    let body = br#"{"Description":"sent three times"}"#;
    let headers = signed_headers(
        &server.addr,
        "TrentService.CreateKey",
        body,
        &Signing::default(),
    );
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut copies: Vec<String> = (0..3)
        .map(|_| {
            let r = server.raw(&refs, body);
            assert_eq!(r.status, 200, "{r:?}");
            r.json()["KeyMetadata"]["KeyId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    copies.dedup();
    assert_eq!(copies.len(), 3);
    // Outside the window the same bytes are refused.
    let old = Signing {
        skew_secs: -301,
        ..Signing::default()
    };
    let headers = signed_headers(&server.addr, "TrentService.CreateKey", body, &old);
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = server.raw(&refs, body);
    assert_eq!(r.status, 400);
    assert_eq!(r.error_type(), "InvalidSignatureException");
}
