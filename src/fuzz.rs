//! Fuzz targets (test builds only, feature `test-hooks`): one function per parser of outside
//! input. Each takes arbitrary input, must not panic on any of it, and asserts what the parser
//! promises — it accepts only what is well formed, and what it accepts re-encodes to the same
//! bytes where there is an encoder. A violated property is a panic, so any driver finds it:
//! `tests/fuzz.rs` runs them under proptest (a smoke run in `cargo test`, a long one with
//! `scripts/fuzz.sh`), and a coverage-guided fuzzer can call the same functions.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::api::wire;
use crate::auth::sigv4;
use crate::kms::blob::{Blob, FORMAT_V1, FORMAT_V2_MRK, HEADER_LEN, MAGIC, OVERHEAD};
use crate::kms::ids::KeyRef;
use crate::kms::keyformat::{self, Curve};
use crate::policy::{Context, Policy, PolicyKind, Request};

/// The ciphertext blob parser: a blob is accepted exactly when it is well formed, and an
/// accepted blob re-encodes to the same bytes.
pub fn blob(data: &[u8]) {
    let well_formed = data.len() > OVERHEAD
        && &data[..3] == MAGIC
        && (data[3] == FORMAT_V1 || data[3] == FORMAT_V2_MRK)
        && data[20..HEADER_LEN] != [0; 4];
    match Blob::parse(data) {
        Some(b) => {
            assert!(well_formed, "a malformed blob was accepted");
            let again = Blob::encode(&b.header, &b.iv, &b.ciphertext);
            assert_eq!(again, data, "an accepted blob does not re-encode to itself");
        }
        None => assert!(!well_formed, "a well-formed blob was refused"),
    }
}

/// The `Authorization` header parser: whatever it accepts has the exact SigV4 shape, and the
/// header rendered again from what it parsed parses to the same.
pub fn authorization(value: &str) {
    let Ok(a) = sigv4::parse_authorization(value) else {
        return;
    };
    assert_eq!(a.date.len(), 8);
    assert!(a.date.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(a.signature.len(), 64);
    assert!(a
        .signature
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert!(!a.signed_headers.is_empty());
    for part in [&a.access_key_id, &a.region, &a.service] {
        assert!(!part.is_empty() && part.bytes().all(|b| b.is_ascii_graphic()));
        assert!(!part.contains(['/', ',']), "{part:?}");
    }
    let rendered = format!(
        "AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={}, Signature={}",
        a.access_key_id,
        a.scope(),
        a.signed_headers.join(";"),
        a.signature
    );
    assert_eq!(sigv4::parse_authorization(&rendered).as_ref(), Ok(&a));
}

/// SigV4 canonicalization of any request: the canonical URI and query contain only what RFC
/// 3986 leaves unescaped, `%XX` escapes and their separators; the canonical query is a fixed
/// point (canonicalizing it again changes nothing); header values carry no line breaks.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    signed: &[String],
    body: &[u8],
) {
    let escaped_ok = |s: &str, extra: &[u8]| {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c == b'%' {
                let hex = |x: Option<&u8>| {
                    x.is_some_and(|x| x.is_ascii_digit() || (b'A'..=b'F').contains(x))
                };
                if !(hex(b.get(i + 1)) && hex(b.get(i + 2))) {
                    return false;
                }
                i += 3;
                continue;
            }
            if !(c.is_ascii_alphanumeric() || b"-._~".contains(&c) || extra.contains(&c)) {
                return false;
            }
            i += 1;
        }
        true
    };
    for normalize in [true, false] {
        let uri = sigv4::canonical_uri(path, normalize);
        // A request's path always starts with '/' (HTTP origin form); the S3 style keeps a
        // relative one relative.
        assert!(
            uri.starts_with('/') || (!normalize && !path.starts_with('/')),
            "{uri:?}"
        );
        assert!(escaped_ok(&uri, b"/"), "canonical URI {uri:?} of {path:?}");
    }
    let q = sigv4::canonical_query(query);
    assert!(escaped_ok(&q, b"=&"), "canonical query {q:?} of {query:?}");
    assert_eq!(
        sigv4::canonical_query(&q),
        q,
        "canonical query not a fixed point"
    );
    let req = sigv4::RequestParts {
        method,
        path,
        query,
        headers,
        body,
    };
    let payload = hex::encode(Sha256::digest(body));
    let creq = sigv4::canonical_request(&req, signed, &payload, true);
    if !method.contains('\n') {
        let lines: Vec<&str> = creq.split('\n').collect();
        // method, URI, query, one line per signed header, "", signed list, payload hash
        assert_eq!(lines.len(), 3 + signed.len() + 3, "{creq:?}");
        assert_eq!(lines.last(), Some(&payload.as_str()));
    }
}

/// A signature check over arbitrary headers and body with a made-up signature: never a panic,
/// never a pass.
pub fn verify_unsigned(headers: &[(&str, &str)], query: &str, body: &[u8]) {
    let regions = ["us-east-1".to_owned()];
    let opts = sigv4::VerifyOptions {
        service: "kms",
        regions: &regions,
        now: time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000),
        max_skew: time::Duration::minutes(5),
        normalize: true,
    };
    let req = sigv4::RequestParts {
        method: "POST",
        path: "/",
        query,
        headers,
        body,
    };
    let result = sigv4::verify(&req, &opts, |_| {
        Some(zeroize::Zeroizing::new(b"fuzz-secret".to_vec()))
    });
    assert!(result.is_err(), "an unsigned request verified");
}

/// Policy documents: parsing and evaluating any text never panics; whatever is accepted is a
/// JSON object, stays accepted when re-serialized, and is refused once it carries an element
/// the policy language does not have.
pub fn policy(text: &str, action: &str, context: &[(String, String)]) {
    let mut ctx = Context::new();
    for (k, v) in context {
        ctx.set(k, v.clone());
    }
    for kind in [PolicyKind::Key, PolicyKind::Identity] {
        let Ok(p) = Policy::parse(text, kind) else {
            continue;
        };
        let value: serde_json::Value =
            serde_json::from_str(text).expect("an accepted policy is JSON");
        let serde_json::Value::Object(mut doc) = value else {
            panic!("an accepted policy is not a JSON object");
        };
        assert!(
            Policy::parse(&serde_json::Value::Object(doc.clone()).to_string(), kind).is_ok(),
            "an accepted policy is refused once re-serialized"
        );
        doc.insert("NotAPolicyElement".into(), serde_json::Value::Bool(true));
        assert!(
            Policy::parse(&serde_json::Value::Object(doc).to_string(), kind).is_err(),
            "a policy with an unknown element was accepted"
        );
        for principal in [
            "arn:aws:iam::111122223333:root",
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:iam::444455556666:role/r",
        ] {
            let _ = p.evaluate(&Request {
                principal_arn: principal,
                principal_account: principal.split(':').nth(4).unwrap_or(""),
                action,
                resource:
                    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                context: &ctx,
            });
        }
    }
}

/// Which request shape each operation's body is read into (`api::ops`); every shape is tried
/// for every body, so the list needs no upkeep beyond new shapes.
fn parse_every_shape(body: &[u8]) -> Vec<bool> {
    macro_rules! shapes {
        ($($t:ident),+) => { vec![$(wire::parse::<wire::$t>(body).is_ok()),+] };
    }
    shapes!(
        CreateKeyReq,
        KeyReq,
        AliasReq,
        EncryptReq,
        DecryptReq,
        ReEncryptReq,
        DataKeyReq,
        SignReq,
        MacReq,
        DeriveReq,
        KemReq,
        DataKeyPairReq,
        RandomReq,
        GrantReq,
        KeyStoreReq,
        ImportReq,
        ListAliasesReq
    )
}

/// JSON request bodies: the model's constraint check and the request shapes never panic; a
/// body that is not JSON is read by no shape (an empty body reads as `{}`), and constraint
/// violations are reported only for JSON the check could read.
pub fn request_body(operation: &str, body: &[u8]) {
    let blank = body.iter().all(|b| b.is_ascii_whitespace());
    let json = serde_json::from_slice::<serde_json::Value>(body).is_ok();
    let violations = crate::api::model::violations(operation, body);
    if !violations.is_empty() {
        assert!(
            blank || json,
            "violations reported for a body that is not JSON"
        );
    }
    let parsed = parse_every_shape(body);
    if !blank && !json {
        assert!(
            parsed.iter().all(|ok| !ok),
            "a body that is not JSON was read as a request"
        );
    }
    if blank {
        assert!(parsed.iter().all(|ok| *ok), "an empty body reads as {{}}");
    }
}

/// Key ids, key ARNs, alias names and alias ARNs: what is accepted is well formed and says
/// exactly what the string said.
pub fn key_ref(s: &str) {
    let alias_ok = |a: &str| {
        a.len() <= 256
            && a.strip_prefix("alias/").is_some_and(|n| !n.is_empty())
            && a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":/_-".contains(&b))
    };
    let account_ok = |a: &str| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit());
    match KeyRef::parse(s) {
        Err(_) => {}
        Ok(KeyRef::Id(id)) => assert_eq!(id.to_string(), s),
        Ok(KeyRef::Alias(a)) => {
            assert_eq!(a.as_str(), s);
            assert!(alias_ok(s));
        }
        Ok(KeyRef::KeyArn {
            region,
            account,
            id,
        }) => {
            assert!(account_ok(&account) && !region.is_empty());
            assert!(s.starts_with("arn:aws"));
            assert!(
                s.ends_with(&format!(":kms:{region}:{account}:key/{id}")),
                "{s}"
            );
        }
        Ok(KeyRef::AliasArn {
            region,
            account,
            alias,
        }) => {
            assert!(account_ok(&account) && !region.is_empty() && alias_ok(alias.as_str()));
            assert!(s.starts_with("arn:aws"));
            assert!(
                s.ends_with(&format!(":kms:{region}:{account}:{}", alias.as_str())),
                "{s}"
            );
        }
    }
}

/// Grant tokens as requests carry them: accepted only in their exact shape.
pub fn grant_token(s: &str) {
    if crate::kms::validate_grant_tokens(&[s.to_owned()]).is_ok() {
        let raw = B64.decode(s).expect("an accepted grant token is base64");
        assert_eq!(raw.len(), 5 + 32 + 16);
        assert!(raw.starts_with(b"KBGT1"));
    }
}

/// DER ECDSA signatures (Verify): only strict DER is accepted, so an accepted signature is
/// exactly the DER encoding of the r‖s it yields.
pub fn ecdsa_signature(der: &[u8]) {
    for field_len in [32, 48, 66] {
        if let Some(raw) = keyformat::ecdsa_from_der(der, field_len) {
            assert_eq!(raw.len(), 2 * field_len);
            let (r, s) = raw.split_at(field_len);
            assert!(r.iter().any(|b| *b != 0) && s.iter().any(|b| *b != 0));
            let again = keyformat::ecdsa_to_der(&raw).expect("r‖s encodes");
            assert_eq!(
                again, der,
                "a signature that is not strict DER was accepted"
            );
        }
    }
}

/// A peer's public key (DeriveSharedSecret): accepted only as an EC SubjectPublicKeyInfo of
/// the key's curve whose point is on the curve; the point comes back uncompressed and agrees
/// with the curve equation (an independent path: the points with its x).
pub fn peer_public_key(spki: &[u8]) {
    for curve in [Curve::P256, Curve::P384, Curve::P521, Curve::Secp256k1] {
        if let Some(point) = keyformat::peer_point(spki, curve) {
            let n = curve.field_len();
            assert_eq!(point.len(), 1 + 2 * n);
            assert_eq!(point[0], 4);
            let expected = keyformat::ec_point_attribute(&point).expect("point encodes");
            assert!(
                curve.points_with_x()(&point[1..1 + n]).contains(&expected),
                "an accepted point is not on the curve"
            );
        }
    }
}
