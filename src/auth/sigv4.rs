//! AWS Signature Version 4 verification, server side, for `Authorization`-header signing.
//!
//! The canonical request is rebuilt from the request as received, the string to sign and the
//! expected signature are derived from the caller's secret, and the result is compared in
//! constant time with the signature the client sent. The tests run the aws-c-auth SigV4 test
//! suite (header signing) against this module.
//!
//! Presigned (query-string) requests are not supported. Nothing in this module logs, and no
//! error message carries a secret.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};
use zeroize::Zeroizing;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const TERMINATOR: &str = "aws4_request";
/// ISO 8601 basic format used by `X-Amz-Date`, e.g. `20150830T123600Z`.
const AMZ_DATE: &[BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

use crate::texts;

type HmacSha256 = Hmac<Sha256>;

/// One HTTP request as received.
#[derive(Clone, Copy)]
pub struct RequestParts<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// Raw path as received, e.g. "/" or "/example/..".
    pub path: &'a str,
    /// Raw query string without '?', "" if none.
    pub query: &'a str,
    /// Header (name, value) pairs in the order received; names may be any case; repeated names allowed.
    pub headers: &'a [(&'a str, &'a str)],
    /// Request body as received.
    pub body: &'a [u8],
}

/// What the `Authorization` header says, parsed and syntax-checked (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuth {
    /// Access key id from the credential scope.
    pub access_key_id: String,
    /// Scope date, `yyyymmdd`.
    pub date: String,
    /// Scope region, e.g. `us-east-1`.
    pub region: String,
    /// Scope service, e.g. `kms`.
    pub service: String,
    /// Lowercase header names, in the order given by `SignedHeaders`.
    pub signed_headers: Vec<String>,
    /// 64 lowercase hex digits.
    pub signature: String,
}

impl ParsedAuth {
    /// Credential scope `date/region/service/aws4_request`.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/{TERMINATOR}",
            self.date, self.region, self.service
        )
    }
}

/// Why a request failed authentication. Messages follow AWS's wording where AWS has one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigV4Error {
    /// No `Authorization` header (and no presigning query): `MissingAuthenticationToken`.
    #[error("Missing Authentication Token")]
    Missing,
    /// Malformed or incomplete signature information: `IncompleteSignatureException`.
    #[error("{0}")]
    Incomplete(String),
    /// Wrong scope, wrong body hash or signature mismatch: `InvalidSignatureException`.
    #[error("{0}")]
    InvalidSignature(String),
    /// `X-Amz-Date` outside the allowed clock skew (AWS answers `InvalidSignatureException`).
    #[error("{0}")]
    Expired(String),
    /// The access key id is not known: `UnrecognizedClientException`.
    #[error("The security token included in the request is invalid.")]
    UnknownAccessKey,
}

fn incomplete(msg: impl Into<String>) -> SigV4Error {
    SigV4Error::Incomplete(msg.into())
}

/// Parse the `Authorization` header value
/// (`AWS4-HMAC-SHA256 Credential=AKID/yyyymmdd/region/service/aws4_request, SignedHeaders=a;b;c, Signature=hex`).
///
/// The value is treated as hostile: anything but the exact shape above is an
/// [`SigV4Error::Incomplete`] error.
pub fn parse_authorization(value: &str) -> Result<ParsedAuth, SigV4Error> {
    if !value.is_ascii() {
        return Err(incomplete(texts::SIG_NON_ASCII));
    }
    let value = value.trim();
    let (algorithm, params) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(incomplete(texts::sig_unsupported_algorithm(ALGORITHM)));
    }
    let params = params.trim();
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    if !params.is_empty() {
        for part in params.split(',') {
            let (key, val) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| incomplete(texts::SIG_PARAMETER_SYNTAX))?;
            let slot = match key {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed_headers,
                "Signature" => &mut signature,
                _ => return Err(incomplete(texts::SIG_UNKNOWN_PARAMETER)),
            };
            if slot.replace(val).is_some() {
                return Err(incomplete(texts::sig_duplicate_parameter(key)));
            }
        }
    }
    let required = |name: &str| incomplete(texts::sig_requires_parameter(name));
    let credential = credential.ok_or_else(|| required("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| required("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| required("Signature"))?;

    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope[..] else {
        return Err(incomplete(texts::SIG_CREDENTIAL_FORM));
    };
    let graphic = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    if !(graphic(access_key_id) && graphic(region) && graphic(service)) {
        return Err(incomplete(texts::SIG_CREDENTIAL_COMPONENT));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(incomplete(texts::SIG_CREDENTIAL_DATE));
    }
    if terminator != TERMINATOR {
        return Err(incomplete(texts::sig_terminator(TERMINATOR)));
    }

    let token_char =
        |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b);
    let signed_headers: Vec<String> = signed_headers.split(';').map(str::to_owned).collect();
    if signed_headers
        .iter()
        .any(|h| h.is_empty() || !h.bytes().all(token_char))
    {
        return Err(incomplete(texts::SIG_SIGNED_HEADERS_FORM));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(incomplete(texts::SIG_SIGNATURE_FORM));
    }

    Ok(ParsedAuth {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
    })
}

/// Canonical request for `req`:
/// `METHOD \n URI \n QUERY \n HEADERS \n SIGNED_HEADERS \n PAYLOAD_HASH`.
///
/// Only the headers in `signed_headers` are included (an absent one with an empty value).
/// `normalize = true` is the behaviour of every service but S3: "." / ".." / empty segments
/// of the raw path are resolved (RFC 3986) and the path as received is URI-encoded once
/// more, so an escape such as `%20` becomes `%2520` (AWS's "double encoding"; the SDKs sign
/// the already-encoded wire path). `normalize = false` (S3 style) keeps the segments as they
/// are and decodes the path before encoding it once.
pub fn canonical_request(
    req: &RequestParts,
    signed_headers: &[String],
    payload_hash: &str,
    normalize: bool,
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_uri(req.path, normalize));
    out.push('\n');
    out.push_str(&canonical_query(req.query));
    out.push('\n');
    for name in signed_headers {
        out.push_str(&name.to_ascii_lowercase());
        out.push(':');
        for (i, value) in header_values(req.headers, name).enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Trim and collapse inner whitespace runs (incl. folded lines) to one space.
            for (j, word) in value.split_ascii_whitespace().enumerate() {
                if j > 0 {
                    out.push(' ');
                }
                out.push_str(word);
            }
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    out
}

/// `AWS4-HMAC-SHA256 \n amz_date \n scope \n hex(SHA-256(canonical_request))`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    let hash = hex::encode(Sha256::digest(canonical_request.as_bytes()));
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{hash}")
}

/// kSigning = HMAC chain over ("AWS4"+secret, date, region, service, "aws4_request").
/// A caller may cache it per (access key, date, region, service).
pub fn signing_key(secret: &[u8], date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut k_secret = Zeroizing::new(Vec::with_capacity(4 + secret.len()));
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret);
    let k_date = hmac_sha256(&k_secret, date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, TERMINATOR.as_bytes())
}

/// What [`verify`] accepts.
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions<'a> {
    /// Service name the credential scope must name, e.g. `kms`.
    pub service: &'a str,
    /// Regions the credential scope may name.
    pub regions: &'a [String],
    /// Current time.
    pub now: OffsetDateTime,
    /// Largest allowed difference between `now` and `X-Amz-Date` (AWS: 5 minutes).
    pub max_skew: Duration,
    /// Path normalisation and double encoding (true for every service but S3).
    pub normalize: bool,
}

/// Verify a header-signed request and return its parsed `Authorization` header.
///
/// `secret_for` maps an access key id to its secret; `None` yields
/// [`SigV4Error::UnknownAccessKey`]. Checks, in order: the header parses; the scope names
/// `opts.service` and one of `opts.regions`; `X-Amz-Date` is present, matches the scope date
/// and lies within `opts.max_skew` of `opts.now`; `host`, `x-amz-date` (and
/// `x-amz-security-token` when sent) are signed; every signed header is present; the key is
/// known; `x-amz-content-sha256`, when sent, is the body's SHA-256; the signature matches
/// (constant-time comparison).
pub fn verify<F>(
    req: &RequestParts,
    opts: &VerifyOptions,
    secret_for: F,
) -> Result<ParsedAuth, SigV4Error>
where
    F: FnOnce(&str) -> Option<Zeroizing<Vec<u8>>>,
{
    verify_with_key(req, opts, |auth| {
        let secret = secret_for(&auth.access_key_id)?;
        Some(Zeroizing::new(signing_key(
            &secret,
            &auth.date,
            &auth.region,
            &auth.service,
        )))
    })
}

/// [`verify`] with the derived signing key supplied by `key_for` (which may cache it per
/// access key, date and region); `None` yields [`SigV4Error::UnknownAccessKey`].
pub fn verify_with_key<F>(
    req: &RequestParts,
    opts: &VerifyOptions,
    key_for: F,
) -> Result<ParsedAuth, SigV4Error>
where
    F: FnOnce(&ParsedAuth) -> Option<Zeroizing<[u8; 32]>>,
{
    let checked = check_headers(req.headers, req.query, opts)?;
    let key = key_for(&checked.auth).ok_or(SigV4Error::UnknownAccessKey)?;
    verify_body(req, &checked, &key, opts.normalize)?;
    Ok(checked.auth)
}

/// What a request's headers alone establish (`check_headers`): the parsed `Authorization`
/// header, checked against everything but the body and the key.
#[derive(Debug, Clone)]
pub struct HeaderCheck {
    pub auth: ParsedAuth,
    amz_date: String,
}

/// The checks of [`verify`] that need neither the body nor the key, in the same order: a
/// server makes them before it reads (buffers) a body, so a request that cannot be valid
/// costs no body buffer.
pub fn check_headers(
    headers: &[(&str, &str)],
    query: &str,
    opts: &VerifyOptions,
) -> Result<HeaderCheck, SigV4Error> {
    let Some(auth_value) = single_header(headers, "authorization")? else {
        if query_has(query, "X-Amz-Algorithm") {
            return Err(incomplete(texts::SIG_PRESIGNED_UNSUPPORTED));
        }
        return Err(SigV4Error::Missing);
    };
    let auth = parse_authorization(auth_value)?;
    if auth.service != opts.service {
        return Err(SigV4Error::InvalidSignature(texts::sig_service_scope(
            opts.service,
        )));
    }
    if !opts.regions.contains(&auth.region) {
        return Err(SigV4Error::InvalidSignature(texts::sig_region_scope(
            &auth.region,
        )));
    }

    let amz_date = single_header(headers, "x-amz-date")?
        .ok_or_else(|| incomplete(texts::SIG_DATE_REQUIRED))?
        .trim();
    let signed_at = parse_amz_date(amz_date).ok_or_else(|| incomplete(texts::SIG_DATE_FORMAT))?;
    let http_date = amz_date.get(..8).unwrap_or_default();
    if http_date != auth.date {
        return Err(SigV4Error::InvalidSignature(texts::sig_scope_date(
            &auth.date, http_date, amz_date,
        )));
    }
    check_skew(amz_date, signed_at, opts)?;

    let is_signed = |name: &str| auth.signed_headers.iter().any(|h| h == name);
    for (name, shown) in [("host", "Host"), ("x-amz-date", "X-Amz-Date")] {
        if !is_signed(name) {
            return Err(incomplete(texts::sig_must_be_signed(shown)));
        }
    }
    if header_values(headers, "x-amz-security-token")
        .next()
        .is_some()
        && !is_signed("x-amz-security-token")
    {
        return Err(incomplete(texts::sig_must_be_signed(
            "X-Amz-Security-Token",
        )));
    }
    if auth
        .signed_headers
        .iter()
        .any(|h| header_values(headers, h).next().is_none())
    {
        // AWS would sign the absent header as empty, which cannot match either.
        return Err(SigV4Error::InvalidSignature(texts::SIG_MISMATCH.to_owned()));
    }
    Ok(HeaderCheck {
        amz_date: amz_date.to_owned(),
        auth,
    })
}

/// The rest of [`verify`] once the headers passed `check_headers`: the body's hash and the
/// signature under the derived signing `key`.
pub fn verify_body(
    req: &RequestParts,
    checked: &HeaderCheck,
    key: &[u8; 32],
    normalize: bool,
) -> Result<(), SigV4Error> {
    let (auth, amz_date) = (&checked.auth, checked.amz_date.as_str());

    let payload_hash = hex::encode(Sha256::digest(req.body));
    if header_values(req.headers, "x-amz-content-sha256").any(|v| v.trim() != payload_hash) {
        return Err(SigV4Error::InvalidSignature(
            texts::SIG_CONTENT_SHA256_MISMATCH.to_owned(),
        ));
    }

    let creq = canonical_request(req, &auth.signed_headers, &payload_hash, normalize);
    let sts = string_to_sign(amz_date, &auth.scope(), &creq);
    let expected = hex::encode(hmac_sha256(key.as_slice(), sts.as_bytes()));
    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(())
    } else {
        Err(SigV4Error::InvalidSignature(texts::SIG_MISMATCH.to_owned()))
    }
}

/// HMAC-SHA256 without a fallible constructor: the key block is prepared as RFC 2104 says
/// (keys longer than a block are hashed first, then zero-padded), so `Mac::new` applies.
fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut block = hmac::digest::Key::<HmacSha256>::default();
    if key.len() > block.len() {
        let digest = Sha256::digest(key);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut mac = <HmacSha256 as Mac>::new(&block);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn header_values<'a>(
    headers: &'a [(&'a str, &'a str)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// The header's only value; a repeated header is an error.
fn single_header<'a>(
    headers: &'a [(&'a str, &'a str)],
    name: &'a str,
) -> Result<Option<&'a str>, SigV4Error> {
    let mut values = header_values(headers, name);
    let first = values.next();
    if values.next().is_some() {
        return Err(incomplete(texts::sig_one_header(name)));
    }
    Ok(first)
}

fn query_has(query: &str, name: &str) -> bool {
    query
        .split('&')
        .any(|p| p.split_once('=').map_or(p, |(k, _)| k) == name)
}

fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    let shape_ok = s.len() == 16
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    PrimitiveDateTime::parse(s, AMZ_DATE)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

fn format_amz_date(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.checked_to_offset(UtcOffset::UTC))
        .and_then(|t| t.format(AMZ_DATE).ok())
        .unwrap_or_else(|| "?".to_owned())
}

fn check_skew(
    amz_date: &str,
    signed_at: OffsetDateTime,
    opts: &VerifyOptions,
) -> Result<(), SigV4Error> {
    let skew = opts.max_skew.abs();
    let age = opts.now - signed_at;
    let now = format_amz_date(Some(opts.now));
    let window = if skew.whole_seconds() % 60 == 0 {
        format!("{} min.", skew.whole_minutes())
    } else {
        format!("{} sec.", skew.whole_seconds())
    };
    if age > skew {
        let limit = format_amz_date(opts.now.checked_sub(skew));
        return Err(SigV4Error::Expired(texts::sig_expired(
            amz_date, &limit, &now, &window,
        )));
    }
    if age < -skew {
        let limit = format_amz_date(opts.now.checked_add(skew));
        return Err(SigV4Error::Expired(texts::sig_not_yet_current(
            amz_date, &limit, &now, &window,
        )));
    }
    Ok(())
}

pub(crate) fn canonical_uri(path: &str, normalize: bool) -> String {
    let mut out = String::with_capacity(path.len() + 1);
    if normalize {
        let mut kept: Vec<&str> = Vec::new();
        let mut trailing_slash = false;
        for segment in path.split('/') {
            trailing_slash = matches!(segment, "" | "." | "..");
            match segment {
                "" | "." => {}
                ".." => {
                    kept.pop();
                }
                s => kept.push(s),
            }
        }
        for segment in &kept {
            out.push('/');
            uri_encode(&mut out, segment.as_bytes(), false);
        }
        if trailing_slash || kept.is_empty() {
            out.push('/');
        }
    } else {
        uri_encode(&mut out, &percent_decode(path), true);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

pub(crate) fn canonical_query(query: &str) -> String {
    let encode = |s: &str| {
        let mut out = String::with_capacity(s.len());
        uri_encode(&mut out, &percent_decode(s), false);
        out
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (encode(k), encode(v))
        })
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(query.len());
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// RFC 3986 encoding: unreserved characters kept, every other byte as `%XX` (uppercase).
fn uri_encode(out: &mut String, bytes: &[u8], keep_slash: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// Decode `%XX` escapes; a malformed escape is kept literally.
fn percent_decode(s: &str) -> Vec<u8> {
    fn hex_digit(b: Option<&u8>) -> Option<u8> {
        match *b? {
            b @ b'0'..=b'9' => Some(b - b'0'),
            b @ b'a'..=b'f' => Some(b - b'a' + 10),
            b @ b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (hex_digit(bytes.get(i + 1)), hex_digit(bytes.get(i + 2)))
            {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use time::macros::datetime;

    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const SCOPE: &str = "20150830/us-east-1/service/aws4_request";
    const SUITE_CASES: usize = 38;

    fn suite_dir() -> PathBuf {
        let dir = std::env::var_os("SIGV4_SUITE_DIR").map_or_else(
            || {
                PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../shared/reference/sigv4/v4"
                ))
            },
            PathBuf::from,
        );
        assert!(
            dir.is_dir(),
            "SigV4 test suite not found at {} (set SIGV4_SUITE_DIR)",
            dir.display()
        );
        dir
    }

    fn secrets(id: &str) -> Option<Zeroizing<Vec<u8>>> {
        (id == AKID).then(|| Zeroizing::new(SECRET.as_bytes().to_vec()))
    }

    fn us_east_1() -> Vec<String> {
        vec!["us-east-1".to_owned()]
    }

    fn opts<'a>(regions: &'a [String], service: &'a str, now: OffsetDateTime) -> VerifyOptions<'a> {
        VerifyOptions {
            service,
            regions,
            now,
            max_skew: Duration::minutes(5),
            normalize: true,
        }
    }

    const SUITE_NOW: OffsetDateTime = datetime!(2015-08-30 12:36:00 UTC);

    /// An owned request, lent out as [`RequestParts`].
    #[derive(Clone)]
    struct Req {
        method: String,
        path: String,
        query: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Req {
        fn with<R>(&self, f: impl FnOnce(&RequestParts) -> R) -> R {
            let headers: Vec<(&str, &str)> = self
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            f(&RequestParts {
                method: &self.method,
                path: &self.path,
                query: &self.query,
                headers: &headers,
                body: &self.body,
            })
        }

        fn verify(&self, opts: &VerifyOptions) -> Result<ParsedAuth, SigV4Error> {
            self.with(|r| verify(r, opts, secrets))
        }

        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        fn remove(&mut self, name: &str) {
            self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        }

        fn set(&mut self, name: &str, value: &str) {
            self.remove(name);
            self.headers.push((name.to_owned(), value.to_owned()));
        }

        /// Sign as a client would and set the Authorization header.
        fn sign(&mut self, signed: &[&str], scope: &str, secret: &str) {
            self.remove("authorization");
            let signed: Vec<String> = signed.iter().map(|s| s.to_string()).collect();
            let hash = hex::encode(Sha256::digest(&self.body));
            let creq = self.with(|r| canonical_request(r, &signed, &hash, true));
            let date = self.header("x-amz-date").unwrap_or("").to_owned();
            let sts = string_to_sign(&date, scope, &creq);
            let parts: Vec<&str> = scope.split('/').collect();
            let key = signing_key(secret.as_bytes(), parts[0], parts[1], parts[2]);
            let sig = hex::encode(hmac_sha256(&key, sts.as_bytes()));
            let auth = format!(
                "{ALGORITHM} Credential={AKID}/{scope}, SignedHeaders={}, Signature={sig}",
                signed.join(";")
            );
            self.set("Authorization", &auth);
        }
    }

    /// Parse an HTTP/1.1 request file: request line, headers (with folded continuation
    /// lines kept as "\n<line>"), blank line, body.
    fn parse_http(raw: &[u8]) -> Req {
        let split = raw
            .windows(2)
            .position(|w| w == b"\n\n")
            .expect("blank line after headers");
        let head = std::str::from_utf8(&raw[..split]).expect("UTF-8 head");
        let mut lines = head.lines();
        let request_line = lines.next().expect("request line");
        let (method, rest) = request_line.split_once(' ').expect("method");
        let (target, _version) = rest.rsplit_once(' ').expect("HTTP version");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with([' ', '\t']) {
                let last = headers.last_mut().expect("continuation after a header");
                last.1.push('\n');
                last.1.push_str(line);
            } else {
                let (n, v) = line.split_once(':').expect("header colon");
                headers.push((n.to_owned(), v.to_owned()));
            }
        }
        Req {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body: raw[split + 2..].to_vec(),
        }
    }

    fn read(case: &str, file: &str) -> String {
        let path = suite_dir().join(case).join(file);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn load_case(case: &str) -> (Req, bool) {
        let raw = std::fs::read(suite_dir().join(case).join("header-signed-request.txt"))
            .expect("header-signed-request.txt");
        let context: String = read(case, "context.json").split_whitespace().collect();
        (parse_http(&raw), !context.contains("\"normalize\":false"))
    }

    #[test]
    fn aws_signing_test_suite() {
        let mut names: Vec<String> = std::fs::read_dir(suite_dir())
            .expect("suite directory readable")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        let regions = us_east_1();
        let mut failures = Vec::new();
        for name in &names {
            let (req, normalize) = load_case(name);
            let auth = parse_authorization(req.header("authorization").expect("Authorization"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(auth.scope(), SCOPE, "{name}");
            let hash = hex::encode(Sha256::digest(&req.body));
            let creq = req.with(|r| canonical_request(r, &auth.signed_headers, &hash, normalize));
            if creq != read(name, "header-canonical-request.txt") {
                failures.push(format!("{name}: canonical request\n{creq}"));
                continue;
            }
            let sts = string_to_sign(
                req.header("x-amz-date").expect("date"),
                &auth.scope(),
                &creq,
            );
            if sts != read(name, "header-string-to-sign.txt") {
                failures.push(format!("{name}: string to sign\n{sts}"));
                continue;
            }
            let key = signing_key(SECRET.as_bytes(), &auth.date, &auth.region, &auth.service);
            let signature = hex::encode(hmac_sha256(&key, sts.as_bytes()));
            let expected_sig = read(name, "header-signature.txt");
            if signature != expected_sig.trim() || auth.signature != signature {
                failures.push(format!("{name}: signature {signature}"));
                continue;
            }
            let options = VerifyOptions {
                normalize,
                ..opts(&regions, "service", SUITE_NOW)
            };
            let result = req.verify(&options);
            if name == "post-sts-header-after" {
                // The session token was added after signing: it is not in SignedHeaders.
                if !matches!(result, Err(SigV4Error::Incomplete(ref m)) if m.contains("X-Amz-Security-Token"))
                {
                    failures.push(format!("{name}: expected Incomplete, got {result:?}"));
                }
            } else if result != Ok(auth) {
                failures.push(format!("{name}: verify gave {result:?}"));
            }
        }
        assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
        assert_eq!(names.len(), SUITE_CASES, "suite case count");
    }

    fn vanilla() -> Req {
        load_case("get-vanilla").0
    }

    fn suite_opts(regions: &[String]) -> VerifyOptions<'_> {
        opts(regions, "service", SUITE_NOW)
    }

    #[test]
    fn test_signer_matches_suite() {
        let mut req = vanilla();
        let original = req.header("authorization").map(str::to_owned);
        req.sign(&["host", "x-amz-date"], SCOPE, SECRET);
        assert_eq!(req.header("authorization").map(str::to_owned), original);
    }

    #[test]
    fn flipped_signature_is_rejected() {
        let mut req = vanilla();
        let auth = req.header("authorization").expect("auth").to_owned();
        let flipped = match auth.as_bytes().last() {
            Some(b'0') => format!("{}1", &auth[..auth.len() - 1]),
            _ => format!("{}0", &auth[..auth.len() - 1]),
        };
        req.set("Authorization", &flipped);
        let regions = us_east_1();
        assert_eq!(
            req.verify(&suite_opts(&regions)),
            Err(SigV4Error::InvalidSignature(texts::SIG_MISMATCH.to_owned()))
        );
    }

    #[test]
    fn body_changed_after_signing_is_rejected() {
        let regions = us_east_1();
        // With x-amz-content-sha256: the header no longer matches the body.
        let (mut req, _) = load_case("post-x-www-form-urlencoded");
        assert!(req.verify(&suite_opts(&regions)).is_ok());
        req.body = b"Param1=value2".to_vec();
        assert!(matches!(
            req.verify(&suite_opts(&regions)),
            Err(SigV4Error::InvalidSignature(m)) if m.contains("x-amz-content-sha256")
        ));
        // Without it: the body hash in the canonical request changes the signature.
        let mut kms = kms_vector();
        kms.body = br#"{"KeyId": "alias/test", "Plaintext": "aGVsbG9="}"#.to_vec();
        let kms_regions = us_east_1();
        assert_eq!(
            kms.verify(&opts(&kms_regions, "kms", KMS_NOW)),
            Err(SigV4Error::InvalidSignature(texts::SIG_MISMATCH.to_owned()))
        );
    }

    #[test]
    fn wrong_secret_and_unknown_key() {
        let req = vanilla();
        let regions = us_east_1();
        let o = suite_opts(&regions);
        let wrong =
            req.with(|r| verify(r, &o, |_| Some(Zeroizing::new(b"not-the-secret".to_vec()))));
        assert_eq!(
            wrong,
            Err(SigV4Error::InvalidSignature(texts::SIG_MISMATCH.to_owned()))
        );
        let unknown = req.with(|r| verify(r, &o, |_| None));
        assert_eq!(unknown, Err(SigV4Error::UnknownAccessKey));
        assert_eq!(
            SigV4Error::UnknownAccessKey.to_string(),
            "The security token included in the request is invalid."
        );
    }

    #[test]
    fn clock_skew() {
        let req = vanilla();
        let regions = us_east_1();
        let at = |now| req.verify(&opts(&regions, "service", now));
        assert_eq!(
            at(SUITE_NOW + Duration::minutes(6)),
            Err(SigV4Error::Expired(
                "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z (20150830T124200Z - 5 min.)".into()
            ))
        );
        assert_eq!(
            at(SUITE_NOW - Duration::minutes(6)),
            Err(SigV4Error::Expired(
                "Signature not yet current: 20150830T123600Z is still later than 20150830T123500Z (20150830T123000Z + 5 min.)".into()
            ))
        );
        assert!(at(SUITE_NOW + Duration::minutes(5)).is_ok());
        assert!(at(SUITE_NOW - Duration::minutes(5)).is_ok());
        // `now` in another offset is the same instant.
        let offset = UtcOffset::from_hms(2, 0, 0).expect("offset");
        assert!(at(SUITE_NOW.to_offset(offset)).is_ok());
        // Extreme skew settings must not panic.
        let huge = VerifyOptions {
            max_skew: Duration::MIN,
            ..opts(&regions, "service", SUITE_NOW)
        };
        assert!(req.verify(&huge).is_ok());
    }

    #[test]
    fn scope_must_match_service_region_and_date() {
        let req = vanilla();
        let eu = vec!["eu-west-1".to_owned()];
        assert!(matches!(
            req.verify(&suite_opts(&eu)),
            Err(SigV4Error::InvalidSignature(_))
        ));
        let regions = us_east_1();
        assert_eq!(
            req.verify(&opts(&regions, "kms", SUITE_NOW)),
            Err(SigV4Error::InvalidSignature(
                "Credential should be scoped to correct service: 'kms'.".into()
            ))
        );
        let mut next_day = vanilla();
        next_day.sign(
            &["host", "x-amz-date"],
            "20150831/us-east-1/service/aws4_request",
            SECRET,
        );
        assert!(matches!(
            next_day.verify(&suite_opts(&regions)),
            Err(SigV4Error::InvalidSignature(m)) if m.starts_with("Date in Credential scope")
        ));
    }

    #[test]
    fn missing_or_incomplete_authentication() {
        let regions = us_east_1();
        let o = suite_opts(&regions);
        let mut req = vanilla();
        req.remove("authorization");
        assert_eq!(req.verify(&o), Err(SigV4Error::Missing));
        req.query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00".into();
        assert!(matches!(req.verify(&o), Err(SigV4Error::Incomplete(_))));

        let incomplete = |req: &Req| matches!(req.verify(&o), Err(SigV4Error::Incomplete(_)));
        let mut unsigned_date = vanilla();
        unsigned_date.sign(&["host"], SCOPE, SECRET);
        assert!(incomplete(&unsigned_date), "x-amz-date not signed");
        let mut unsigned_host = vanilla();
        unsigned_host.sign(&["x-amz-date"], SCOPE, SECRET);
        assert!(incomplete(&unsigned_host), "host not signed");
        let mut no_date = vanilla();
        no_date.remove("x-amz-date");
        assert!(incomplete(&no_date), "X-Amz-Date missing");
        let mut bad_date = vanilla();
        bad_date.set("X-Amz-Date", "2015-08-30T12:36:00Z");
        assert!(incomplete(&bad_date), "X-Amz-Date malformed");
        let mut token = vanilla();
        token.set("X-Amz-Security-Token", "SESSIONTOKEN");
        token.sign(&["host", "x-amz-date"], SCOPE, SECRET);
        assert!(incomplete(&token), "token not signed");
        token.sign(
            &["host", "x-amz-date", "x-amz-security-token"],
            SCOPE,
            SECRET,
        );
        assert!(token.verify(&o).is_ok());
        let mut twice = vanilla();
        let auth = twice.header("authorization").expect("auth").to_owned();
        twice.headers.push(("authorization".into(), auth));
        assert!(incomplete(&twice), "two Authorization headers");
    }

    #[test]
    fn signed_header_absent_and_unsigned_payload() {
        let regions = us_east_1();
        let o = suite_opts(&regions);
        let mut req = vanilla();
        req.set("My-Header", "x");
        req.sign(&["host", "my-header", "x-amz-date"], SCOPE, SECRET);
        assert!(req.verify(&o).is_ok());
        req.remove("my-header");
        assert_eq!(
            req.verify(&o),
            Err(SigV4Error::InvalidSignature(texts::SIG_MISMATCH.to_owned()))
        );

        let mut unsigned = vanilla();
        unsigned.set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD");
        unsigned.sign(
            &["host", "x-amz-content-sha256", "x-amz-date"],
            SCOPE,
            SECRET,
        );
        assert!(matches!(
            unsigned.verify(&o),
            Err(SigV4Error::InvalidSignature(_))
        ));
    }

    const KMS_NOW: OffsetDateTime = datetime!(2026-01-02 03:04:05 UTC);

    fn kms_vector() -> Req {
        let headers = [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("Host", "kms.us-east-1.amazonaws.com"),
            ("X-Amz-Date", "20260102T030405Z"),
            ("X-Amz-Security-Token", "SESSIONTOKEN"),
            ("X-Amz-Target", "TrentService.Encrypt"),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260102/us-east-1/kms/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=0c793d12b58abca81668eb9ffc12338e52fffb146a8f46d479a7a1a3305ef28b"),
        ];
        Req {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: br#"{"KeyId": "alias/test", "Plaintext": "aGVsbG8="}"#.to_vec(),
        }
    }

    #[test]
    fn kms_vector_verifies() {
        let regions = vec!["eu-west-1".to_owned(), "us-east-1".to_owned()];
        let auth = kms_vector()
            .verify(&opts(&regions, "kms", KMS_NOW))
            .expect("KMS vector verifies");
        assert_eq!(auth.access_key_id, AKID);
        assert_eq!(auth.scope(), "20260102/us-east-1/kms/aws4_request");
        assert_eq!(
            kms_vector().verify(&opts(&regions, "service", KMS_NOW)),
            Err(SigV4Error::InvalidSignature(
                "Credential should be scoped to correct service: 'service'.".into()
            ))
        );
    }

    const VALID: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

    #[test]
    fn parse_authorization_accepts_variants() {
        let expected = ParsedAuth {
            access_key_id: AKID.into(),
            date: "20150830".into(),
            region: "us-east-1".into(),
            service: "service".into(),
            signed_headers: vec!["host".into(), "x-amz-date".into()],
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31".into(),
        };
        assert_eq!(parse_authorization(VALID), Ok(expected.clone()));
        for variant in [
            VALID.replace(", ", ","),
            VALID.replace(", ", " ,  "),
            format!("  {VALID}  "),
            VALID.replace("5fa00fa3", "5FA00FA3"),
            "AWS4-HMAC-SHA256 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31, SignedHeaders=host;x-amz-date, Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request".into(),
        ] {
            assert_eq!(parse_authorization(&variant), Ok(expected.clone()), "{variant}");
        }
    }

    #[test]
    fn parse_authorization_rejects_malformed() {
        let sig = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        let cred = "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
        let malformed = [
            String::new(),
            " ".into(),
            "AWS4-HMAC-SHA256".into(),
            "AWS4-HMAC-SHA256 ".into(),
            "AWS4-HMAC-SHA256,".into(),
            "AWS4-HMAC-SHA256 ,".into(),
            "AWS4-HMAC-SHA256 =".into(),
            "AWS4-HMAC-SHA256 ===".into(),
            "AWS4-HMAC-SHA256 ,,,".into(),
            "Basic dXNlcjpwYXNz".into(),
            "AWS4-HMAC-SHA512 x".into(),
            "aws4-hmac-sha256 x".into(),
            VALID.replace("AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA256"),
            VALID.replace("AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA256X "),
            VALID.replace("Credential=", "Credential"),
            VALID.replace("Signature=", "Signature "),
            VALID.replace("SignedHeaders=", "SignedHeaders:"),
            VALID.replace(", ", ",, "),
            format!("{VALID},"),
            format!("{VALID}, "),
            format!("{VALID}, Signature={sig}"),
            format!("{VALID}, Extra=1"),
            VALID.replace("Credential", "credential"),
            VALID.replace(&format!("{cred}, "), ""),
            VALID.replace(", SignedHeaders=host;x-amz-date", ""),
            VALID.replace(&format!(", Signature={sig}"), ""),
            VALID.replace("AKIDEXAMPLE", ""),
            VALID.replace("AKIDEXAMPLE", "AKIDÉXAMPLE"),
            VALID.replace("us-east-1", "us-east-1🦀"),
            VALID.replace("us-east-1", "us east 1"),
            VALID.replace("20150830", "2015083"),
            VALID.replace("20150830", "2015083a"),
            VALID.replace("20150830", "201508300"),
            VALID.replace("/aws4_request", "/aws4_request/"),
            VALID.replace("/aws4_request", "/aws4_requesT"),
            VALID.replace("/aws4_request", ""),
            VALID.replace("/service", "//service"),
            VALID.replace("/service", ""),
            VALID.replace("host;x-amz-date", ""),
            VALID.replace("host;x-amz-date", "host;;x-amz-date"),
            VALID.replace("host;x-amz-date", "host;x-amz-date;"),
            VALID.replace("host;x-amz-date", "Host;X-Amz-Date"),
            VALID.replace("host;x-amz-date", "host x-amz-date"),
            VALID.replace(sig, &sig[1..]),
            VALID.replace(sig, &format!("{sig}0")),
            VALID.replace(sig, &sig.replace('f', "g")),
            VALID.replace(sig, ""),
            VALID.replace(sig, "é"),
            "AWS4-HMAC-SHA256 Credential=/////, SignedHeaders=;, Signature=".into(),
            "\u{0}AWS4-HMAC-SHA256".into(),
            "AWS4-HMAC-SHA256 \u{0}".into(),
        ];
        for value in &malformed {
            assert!(
                matches!(parse_authorization(value), Err(SigV4Error::Incomplete(_))),
                "accepted: {value:?}"
            );
        }
        // Every truncation and every single-byte corruption must give a result, never a panic.
        let regions = us_east_1();
        let o = suite_opts(&regions);
        for end in 0..VALID.len() {
            assert!(parse_authorization(&VALID[..end]).is_err(), "prefix {end}");
        }
        for i in 0..VALID.len() {
            for c in [',', '=', '/', ';', ' ', 'é', '\u{0}'] {
                if VALID[i..].starts_with(c) {
                    continue;
                }
                let mut value = VALID.to_owned();
                value.replace_range(i..=i, c.encode_utf8(&mut [0; 4]));
                let _ = parse_authorization(&value);
                let mut req = vanilla();
                req.set("Authorization", &value);
                assert!(req.verify(&o).is_err(), "{value}");
            }
        }
    }

    #[test]
    fn canonical_uri_and_query_rules() {
        // Non-S3: dot segments and empty segments resolved, then the wire path encoded again.
        assert_eq!(canonical_uri("", true), "/");
        assert_eq!(canonical_uri("/a/b/..", true), "/a/");
        assert_eq!(canonical_uri("/a/./b/../../c", true), "/c");
        assert_eq!(canonical_uri("/../..", true), "/");
        assert_eq!(canonical_uri("/a%20b/c:d", true), "/a%2520b/c%3Ad");
        assert_eq!(canonical_uri("/é", true), "/%C3%A9");
        // S3 style: as is, escapes decoded and encoded once.
        assert_eq!(canonical_uri("", false), "/");
        assert_eq!(canonical_uri("/a%20b//./c:d", false), "/a%20b//./c%3Ad");
        assert_eq!(canonical_uri("/bad%zz%4", false), "/bad%25zz%254");
        // Query: decoded then encoded once, sorted by name then value, '=' added when absent.
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=2&a=2&a=1&c&&d="), "a=1&a=2&b=2&c=&d=");
        assert_eq!(canonical_query("k=a%20b+c&%7e=~"), "k=a%20b%2Bc&~=~");
        assert_eq!(canonical_query("x=%"), "x=%25");
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 (short key) and test case 6 (key longer than the block size).
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }
}
