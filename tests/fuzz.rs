//! Fuzzing on the stable toolchain: proptest drives the fuzz targets of `kms_bridge::fuzz` (one
//! per parser of outside input) with structured inputs — valid encodings, then mutated — and
//! with arbitrary bytes; and checks the SigV4 verifier against the AWS SDK's own signer
//! (`aws-sigv4`) on generated requests.
//!
//! `cargo test` runs a smoke run (proptest's 256 cases per property, a few seconds);
//! `scripts/fuzz.sh` runs the same properties with many more cases (`PROPTEST_CASES`). A
//! failing case is minimized by proptest and its seed kept in `tests/fuzz.proptest-regressions`
//! (replayed first on every run); the fixed ones are also pinned as plain tests below.

use kms_bridge::fuzz;
use proptest::prelude::*;

/// Bytes that are mostly a valid encoding: `valid` with up to three bytes changed, cut short
/// or extended — or arbitrary bytes.
fn mutated(valid: impl Strategy<Value = Vec<u8>> + 'static) -> BoxedStrategy<Vec<u8>> {
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4);
    let shaped = (valid, edits, 0u8..4, any::<prop::sample::Index>()).prop_map(
        |(mut v, edits, how, cut)| {
            for (i, b) in edits {
                if !v.is_empty() {
                    let at = i.index(v.len());
                    v[at] = b;
                }
            }
            match how {
                0 if !v.is_empty() => v.truncate(cut.index(v.len())),
                1 => v.push(0),
                _ => {}
            }
            v
        },
    );
    prop_oneof![
        3 => shaped,
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
    .boxed()
}

fn valid_blob() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u128>(),
        1u32..,
        any::<[u8; 12]>(),
        prop::collection::vec(any::<u8>(), 17..80),
        any::<bool>(),
    )
        .prop_map(|(id, version, iv, ct, multi_region)| {
            let header = kms_bridge::kms::blob::Header {
                key_id: uuid::Uuid::from_u128(id),
                key_version: version,
                multi_region,
            };
            kms_bridge::kms::blob::Blob::encode(&header, &iv, &ct)
        })
}

/// Text from a small alphabet of the characters that matter to a parser, plus anything.
fn text_of(alphabet: &'static [&'static str], max: usize) -> BoxedStrategy<String> {
    prop_oneof![
        4 => prop::collection::vec(prop::sample::select(alphabet), 0..max)
            .prop_map(|parts| parts.concat()),
        1 => any::<String>(),
    ]
    .boxed()
}

fn authorization_header() -> impl Strategy<Value = String> {
    let part = text_of(
        &[
            "AKID",
            "A",
            "20150830",
            "us-east-1",
            "kms",
            "aws4_request",
            "/",
            ",",
            "=",
            " ",
            "\t",
            "é",
            "x",
        ],
        6,
    );
    let headers = text_of(
        &["host", ";", "x-amz-date", "X", "content-type", " ", ""],
        6,
    );
    let sig = text_of(&["0", "a", "F", "g", "00000000", "ffffffffffffffff"], 12);
    let order = prop::sample::select(vec![0u8, 1, 2]);
    (part.clone(), part, headers, sig, order, any::<bool>()).prop_map(
        |(akid, scope, headers, sig, order, spaced)| {
            let cred = format!("Credential={akid}/{scope}");
            let sh = format!("SignedHeaders={headers}");
            let s = format!("Signature={sig}");
            let sep = if spaced { ", " } else { "," };
            let params = match order {
                0 => [cred, sh, s].join(sep),
                1 => [s, cred, sh].join(sep),
                _ => [cred.clone(), sh, cred].join(sep),
            };
            format!("AWS4-HMAC-SHA256 {params}")
        },
    )
}

fn valid_authorization() -> impl Strategy<Value = String> {
    (
        "[A-Z0-9]{4,20}",
        "20[0-9]{6}",
        "[a-z]{2}-[a-z]{4,9}-[1-9]",
        "[a-z]{2,8}",
        prop::collection::vec("[a-z][a-z0-9-]{0,12}", 1..5),
        "[0-9a-f]{64}",
    )
        .prop_map(|(akid, date, region, service, headers, sig)| {
            format!(
                "AWS4-HMAC-SHA256 Credential={akid}/{date}/{region}/{service}/aws4_request, SignedHeaders={}, Signature={sig}",
                headers.join(";")
            )
        })
}

fn path_text() -> BoxedStrategy<String> {
    text_of(
        &[
            "/", ".", "..", "a", "%", "%2F", "%20", "%41", "%zz", " ", "~", "é", "+", "?", "=",
            "&", "//",
        ],
        10,
    )
}

fn query_text() -> BoxedStrategy<String> {
    text_of(
        &[
            "a",
            "b",
            "=",
            "&",
            "%",
            "%3D",
            "%26",
            "%2b",
            " ",
            "+",
            "é",
            "~",
            "-",
            "X-Amz-Algorithm",
        ],
        10,
    )
}

fn header_list() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            prop::sample::select(vec![
                "host",
                "Host",
                "x-amz-date",
                "X-Amz-Target",
                "my-header",
                "a",
            ]),
            text_of(&["v", " ", "  ", "\t", "\"", ",", "é", "x y"], 6),
        )
            .prop_map(|(n, v)| (n.to_owned(), v)),
        0..6,
    )
}

/// JSON documents built from the policy language's own vocabulary (so many of them parse, and
/// the mutations land in the interesting places), or anything.
fn policy_json() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        prop::sample::select(vec![
            "2012-10-17",
            "2008-10-17",
            "Allow",
            "Deny",
            "*",
            "kms:*",
            "kms:Encrypt",
            "kms:?ecrypt*",
            "arn:aws:iam::111122223333:root",
            "111122223333",
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:kms:*",
            "kms:EncryptionContext:app",
            "aws:SourceIp",
            "10.0.0.0/8",
            "::1/128",
            "2020-01-01T00:00:00Z",
            "true",
            "1",
            "-1.5",
            "",
            "aws:PrincipalArn",
            "kms:ViaService",
        ])
        .prop_map(|s| serde_json::Value::String(s.to_owned())),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ];
    let key = prop::sample::select(vec![
        "Version",
        "Statement",
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "AWS",
        "Service",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
        "StringEquals",
        "StringLike",
        "StringNotEqualsIfExists",
        "ForAnyValue:StringEquals",
        "ForAllValues:StringLike",
        "NumericLessThan",
        "DateGreaterThan",
        "Bool",
        "Null",
        "IpAddress",
        "NotIpAddress",
        "ArnLike",
        "kms:EncryptionContext:app",
        "kms:EncryptionContextKeys",
        "aws:SourceIp",
        "kms:CallerAccount",
        "aws:CurrentTime",
        "kms:GrantIsForAWSResource",
        "Id",
        "Bogus",
    ]);
    let value = leaf.prop_recursive(4, 40, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::vec((key.clone(), inner), 0..5).prop_map(|members| {
                serde_json::Value::Object(
                    members
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect(),
                )
            }),
        ]
    });
    let statement = (
        prop::sample::select(vec!["Allow", "Deny", "Maybe"]),
        value.clone(),
        value.clone(),
        any::<bool>(),
        value,
    )
        .prop_map(|(effect, principal, action, with_condition, condition)| {
            let mut s = serde_json::json!({
                "Effect": effect,
                "Principal": principal,
                "Action": action,
                "Resource": "*",
            });
            if with_condition {
                s["Condition"] = condition;
            }
            s
        });
    prop_oneof![
        4 => prop::collection::vec(statement, 0..3).prop_map(|st| {
            serde_json::json!({"Version": "2012-10-17", "Statement": st}).to_string()
        }),
        1 => any::<String>(),
    ]
    .boxed()
}

fn request_json() -> impl Strategy<Value = Vec<u8>> {
    let member = prop::sample::select(vec![
        "KeyId",
        "Plaintext",
        "CiphertextBlob",
        "EncryptionContext",
        "GrantTokens",
        "Limit",
        "Marker",
        "KeySpec",
        "KeyUsage",
        "Policy",
        "Tags",
        "TagKey",
        "TagValue",
        "AliasName",
        "NumberOfBytes",
        "DryRun",
        "Operations",
        "Constraints",
        "Message",
        "SigningAlgorithm",
        "ImportToken",
        "ValidTo",
        "PendingWindowInDays",
        "RotationPeriodInDays",
        "Unknown",
    ]);
    let leaf = prop_oneof![
        "[A-Za-z0-9+/=:_-]{0,40}".prop_map(serde_json::Value::String),
        prop::sample::select(vec![
            "alias/x",
            "SYMMETRIC_DEFAULT",
            "AES_256",
            "RSA_2048",
            "ENCRYPT_DECRYPT",
            "",
            "AA==",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:111122223333:key/x",
        ])
        .prop_map(|s| serde_json::Value::String(s.to_owned())),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ];
    let value = leaf.prop_recursive(3, 24, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::vec((member.clone(), inner), 0..4).prop_map(|m| {
                serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    });
    mutated(value.prop_map(|v| v.to_string().into_bytes()))
}

fn key_ref_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => (
            prop::sample::select(vec!["arn:aws:kms:", "arn:aws-cn:kms:", "arn:aws:iam:", "arn:", ""]),
            prop::sample::select(vec!["us-east-1:", ":", "eu-west-1:"]),
            prop::sample::select(vec!["111122223333:", "11112222333:", "11112222333x:", ""]),
            prop::sample::select(vec!["key/", "alias/", "alias/aws/", "", "key"]),
            prop::sample::select(vec![
                "1234abcd-12ab-34cd-56ef-1234567890ab", "1234ABCD-12ab-34cd-56ef-1234567890ab",
                "1234abcd12ab34cd56ef1234567890ab", "my-key", "a:b/c_d-e", "", "ü",
            ]),
        )
            .prop_map(|(a, b, c, d, e)| format!("{a}{b}{c}{d}{e}")),
        1 => any::<String>(),
    ]
    .boxed()
}

fn grant_token_text() -> BoxedStrategy<String> {
    use base64::Engine;
    prop_oneof![
        3 => (prop::sample::select(vec![&b"KBGT1"[..], b"KBGT2", b""]), prop::collection::vec(any::<u8>(), 40..56))
            .prop_map(|(magic, rest)| {
                base64::engine::general_purpose::STANDARD.encode([magic, &rest[..]].concat())
            }),
        1 => any::<String>(),
    ]
    .boxed()
}

/// DER ECDSA signatures: a valid encoding of random r and s (some with leading zero bytes,
/// some with the high bit set) before mutation.
fn ecdsa_der() -> BoxedStrategy<Vec<u8>> {
    let int = prop::collection::vec(any::<u8>(), 1..67);
    mutated((int.clone(), int).prop_map(|(mut r, mut s)| {
        for v in [&mut r, &mut s] {
            if v.iter().all(|b| *b == 0) {
                v[0] = 1;
            }
        }
        let n = r.len().max(s.len()).max(32);
        let pad = |v: &[u8]| [vec![0u8; n - v.len()], v.to_vec()].concat();
        kms_bridge::kms::keyformat::ecdsa_to_der(&[pad(&r), pad(&s)].concat()).unwrap_or_default()
    }))
}

/// EC SubjectPublicKeyInfo of a fresh P-256 or P-384 key, before mutation.
fn peer_spki() -> BoxedStrategy<Vec<u8>> {
    use p256::pkcs8::EncodePublicKey;
    mutated((any::<[u8; 32]>(), any::<bool>()).prop_map(|(seed, p384)| {
        if p384 {
            let mut s = [1u8; 48];
            s[..32].copy_from_slice(&seed);
            let Ok(k) = p384::SecretKey::from_slice(&s) else {
                return Vec::new();
            };
            k.public_key()
                .to_public_key_der()
                .map(|d| d.as_bytes().to_vec())
                .unwrap_or_default()
        } else {
            let Ok(k) = p256::SecretKey::from_slice(&seed) else {
                return Vec::new();
            };
            k.public_key()
                .to_public_key_der()
                .map(|d| d.as_bytes().to_vec())
                .unwrap_or_default()
        }
    }))
}

proptest! {
    #[test]
    fn ciphertext_blobs(data in mutated(valid_blob())) {
        fuzz::blob(&data);
    }

    #[test]
    fn authorization_headers(value in prop_oneof![authorization_header(), valid_authorization(), any::<String>()]) {
        fuzz::authorization(&value);
    }

    #[test]
    fn canonical_requests(
        method in prop_oneof![Just("POST".to_owned()), Just("GET".to_owned()), any::<String>()],
        path in path_text(),
        query in query_text(),
        headers in header_list(),
        signed in prop::collection::vec(prop::sample::select(vec!["host", "x-amz-date", "my-header", "absent"]), 0..4),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let signed: Vec<String> = signed.into_iter().map(str::to_owned).collect();
        fuzz::canonical_request(&method, &path, &query, &pairs, &signed, &body);
    }

    #[test]
    fn unsigned_requests_never_verify(
        auth in prop_oneof![valid_authorization(), authorization_header()],
        date in prop_oneof![Just("20241005T000000Z".to_owned()), "[0-9T]{15}Z"],
        headers in header_list(),
        query in query_text(),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        pairs.push(("authorization", &auth));
        pairs.push(("x-amz-date", &date));
        fuzz::verify_unsigned(&pairs, &query, &body);
    }

    #[test]
    fn policy_documents(
        text in policy_json(),
        action in prop::sample::select(vec!["kms:Encrypt", "kms:CreateKey", "KMS:DECRYPT", "s3:GetObject", ""]),
        context in prop::collection::vec(
            (prop::sample::select(vec!["kms:EncryptionContext:app", "aws:SourceIp", "aws:CurrentTime", "kms:CallerAccount", "aws:PrincipalArn"]),
             prop::sample::select(vec!["x", "10.1.2.3", "::1", "2020-01-01T00:00:00Z", "111122223333", "", "not-an-ip"])),
            0..4),
    ) {
        let context: Vec<(String, String)> = context.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        fuzz::policy(&text, action, &context);
    }

    #[test]
    fn request_bodies(
        op in prop::sample::select(kms_bridge::api::operation_names()),
        body in request_json(),
    ) {
        fuzz::request_body(op, &body);
    }

    #[test]
    fn key_references(s in key_ref_text()) {
        fuzz::key_ref(&s);
    }

    #[test]
    fn grant_tokens(s in grant_token_text()) {
        fuzz::grant_token(&s);
    }

    #[test]
    fn ecdsa_signatures(der in ecdsa_der()) {
        fuzz::ecdsa_signature(&der);
    }

    #[test]
    fn peer_public_keys(spki in peer_spki()) {
        fuzz::peer_public_key(&spki);
    }
}

/// The differential test: requests signed by the AWS SDK's signer (`aws-sigv4`, the crate the
/// SDK for Rust signs with) against the server's verifier.
mod sigv4_differential {
    use super::*;
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_smithy_runtime_api::client::identity::Identity;
    use kms_bridge::auth::sigv4::{verify, RequestParts, SigV4Error, VerifyOptions};
    use zeroize::Zeroizing;

    const AKID: &str = "AKIAKMSBRIDGEFUZZ";
    const SECRET: &str = "kms-bridge/differential+test=secret";
    const HOST: &str = "kms.us-east-1.example";

    /// One generated request, as a client sends it.
    #[derive(Debug, Clone)]
    struct Req {
        method: String,
        path: String,
        query: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    /// When it is signed: seconds after 2020-01-01.
    fn signed_at(offset: u32) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_577_836_800 + u64::from(offset))
    }

    /// Sign `req` with aws-sigv4 at `at`: the headers it adds (`x-amz-date`, `authorization`).
    fn sdk_sign(req: &Req, at: std::time::SystemTime) -> Option<Vec<(String, String)>> {
        let identity: Identity = Credentials::new(AKID, SECRET, None, None, "fuzz").into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("kms")
            .time(at)
            .settings(SigningSettings::default())
            .build()
            .ok()?
            .into();
        let uri = if req.query.is_empty() {
            format!("https://{HOST}{}", req.path)
        } else {
            format!("https://{HOST}{}?{}", req.path, req.query)
        };
        let signable = SignableRequest::new(
            &req.method,
            uri,
            req.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(&req.body),
        )
        .ok()?;
        let (instructions, _) = sign(signable, &params).ok()?.into_parts();
        Some(
            instructions
                .headers()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    /// The server's verdict on `req` carrying the signature headers `signed`, at `now`.
    fn server_verify(
        req: &Req,
        signed: &[(String, String)],
        now: std::time::SystemTime,
    ) -> Result<(), SigV4Error> {
        let mut headers: Vec<(&str, &str)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        headers.extend(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let regions = ["us-east-1".to_owned()];
        let opts = VerifyOptions {
            service: "kms",
            regions: &regions,
            now: time::OffsetDateTime::from(now),
            max_skew: time::Duration::minutes(5),
            normalize: true,
        };
        let parts = RequestParts {
            method: &req.method,
            path: &req.path,
            query: &req.query,
            headers: &headers,
            body: &req.body,
        };
        verify(&parts, &opts, |id| {
            (id == AKID).then(|| Zeroizing::new(SECRET.as_bytes().to_vec()))
        })
        .map(|_| ())
    }

    /// A path as it travels on the wire: segments of unreserved characters, escapes (of
    /// spaces, slashes, non-ASCII), dots and empty segments.
    fn wire_path() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                "a", "key", ".", "..", "", "%20", "%2F", "%25", "~x", "a-b_c.d", "%C3%A9", "%41",
                "+", "=", "!", "$", "*",
            ]),
            0..5,
        )
        .prop_map(|segments| format!("/{}", segments.join("/")))
    }

    fn wire_query() -> impl Strategy<Value = String> {
        prop::collection::vec(
            (
                prop::sample::select(vec!["a", "B", "x-y", "%20", "k~", "Action", "é"]),
                prop::sample::select(vec!["", "1", "%2B", "a%20b", "-_.~", "%3D", "%C3%A9"]),
            ),
            0..4,
        )
        .prop_map(|pairs| {
            pairs
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        })
    }

    fn request() -> impl Strategy<Value = Req> {
        (
            prop::sample::select(vec!["POST", "GET", "PUT", "DELETE"]),
            wire_path(),
            wire_query(),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "content-type",
                        "x-amz-target",
                        "X-Custom-Header",
                        "x-amz-meta-a",
                        "accept",
                    ]),
                    prop_oneof![
                        "[ -~]{0,24}",
                        prop::sample::select(vec![
                            "  padded  ",
                            "a  b   c",
                            "application/x-amz-json-1.1",
                            "TrentService.Encrypt"
                        ])
                        .prop_map(str::to_owned),
                    ],
                ),
                0..4,
            ),
            prop::collection::vec(any::<u8>(), 0..96),
        )
            .prop_map(|(method, path, query, extra, body)| {
                let mut headers = vec![("host".to_owned(), HOST.to_owned())];
                for (name, value) in extra {
                    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                        headers.push((name.to_owned(), value));
                    }
                }
                Req {
                    method: method.to_owned(),
                    path,
                    query,
                    headers,
                    body,
                }
            })
    }

    /// Every signed part of a request (method, path, query, a header value, body) as bytes to
    /// flip a bit in.
    fn flip(req: &Req, part: usize, at: prop::sample::Index, bit: u8) -> Option<Req> {
        let mut r = req.clone();
        let text_flip = |s: &mut String| -> Option<()> {
            let mut b = std::mem::take(s).into_bytes();
            if b.is_empty() {
                return None;
            }
            let i = at.index(b.len());
            b[i] ^= 1 << (bit % 7); // stays ASCII where it was
            *s = String::from_utf8(b).ok()?;
            Some(())
        };
        match part % 5 {
            0 => text_flip(&mut r.method)?,
            1 => text_flip(&mut r.path)?,
            2 => text_flip(&mut r.query)?,
            3 => {
                let i = at.index(r.headers.len());
                text_flip(&mut r.headers[i].1)?
            }
            _ => {
                if r.body.is_empty() {
                    return None;
                }
                let i = at.index(r.body.len());
                r.body[i] ^= 1 << (bit % 8);
            }
        }
        Some(r)
    }

    proptest! {
        /// Everything aws-sigv4 signs, the server accepts; changed after signing, it is
        /// refused exactly when aws-sigv4 would sign the changed request differently (a
        /// change the canonical form absorbs — `/a/./b` for `/a//b`, a header name's case —
        /// is the same request to both).
        #[test]
        fn verifier_agrees_with_the_sdk_signer(
            req in request(),
            offset in 0u32..100_000_000,
            skew in -299i64..299,
            part in 0usize..5,
            at in any::<prop::sample::Index>(),
            bit in any::<u8>(),
        ) {
            let when = signed_at(offset);
            let Some(signature) = sdk_sign(&req, when) else {
                return Ok(()); // not a request the SDK can sign
            };
            let now = if skew >= 0 {
                when + std::time::Duration::from_secs(skew as u64)
            } else {
                when - std::time::Duration::from_secs(skew.unsigned_abs())
            };
            prop_assert_eq!(server_verify(&req, &signature, now), Ok(()), "{:?} {:?}", req, signature);

            let Some(changed) = flip(&req, part, at, bit) else {
                return Ok(());
            };
            // Only what can arrive as such: an origin-form path, the query after the first
            // '?' (else the SDK signs another split of the same URI than the one compared).
            if !changed.path.starts_with('/')
                || changed.path.contains(['?', '#'])
                || changed.query.contains('#')
            {
                return Ok(());
            }
            let Some(resigned) = sdk_sign(&changed, when) else {
                return Ok(());
            };
            let same = resigned == signature;
            let verdict = server_verify(&changed, &signature, now);
            prop_assert_eq!(verdict.is_ok(), same, "{:?} → {:?}: {:?}", req, changed, verdict);
        }

        /// A bit flipped in the signature, the date or the credential scope is always refused.
        #[test]
        fn a_changed_signature_header_is_refused(
            req in request(),
            offset in 0u32..100_000_000,
            which in 0usize..2,
            at in any::<prop::sample::Index>(),
            bit in 0u8..7,
        ) {
            let when = signed_at(offset);
            let Some(mut signature) = sdk_sign(&req, when) else {
                return Ok(());
            };
            let name = ["authorization", "x-amz-date"][which];
            let Some(h) = signature.iter_mut().find(|(k, _)| k == name) else {
                return Err(TestCaseError::fail(format!("aws-sigv4 added no {name}")));
            };
            let sig_at = h.1.find("Signature=").map_or(usize::MAX, |p| p + "Signature=".len());
            let mut b = std::mem::take(&mut h.1).into_bytes();
            let i = at.index(b.len());
            let was = b[i];
            b[i] ^= 1 << bit;
            if i >= sig_at && b[i].eq_ignore_ascii_case(&was) {
                // The signature's hex digits are read in either case: the same signature.
                return Ok(());
            }
            h.1 = String::from_utf8(b).expect("ASCII");
            prop_assert!(server_verify(&req, &signature, when).is_err(), "{:?}", signature);
        }
    }
}
