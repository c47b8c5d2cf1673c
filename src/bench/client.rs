//! A minimal KMS client: AWS JSON 1.1 over one HTTP/1.1 keep-alive connection, every request
//! signed with SigV4 (`Authorization` header) using the server's own SigV4 building blocks.

use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::auth::sigv4::{canonical_request, signing_key, string_to_sign, RequestParts};

const CONTENT_TYPE_JSON: &str = "application/x-amz-json-1.1";
const SIGNED_HEADERS: &str = "content-type;host;x-amz-date;x-amz-target";
const AMZ_DATE: &[BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// Who the load generator signs as.
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub region: String,
}

/// An answer as received: status and body.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    /// The AWS error name (`__type`, without a `namespace#` prefix), or "" for none.
    pub fn error_type(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v.get("__type")?.as_str().map(str::to_owned))
            .map(|t| t.rsplit('#').next().unwrap_or_default().to_owned())
            .unwrap_or_default()
    }

    /// The JSON body of a 200 answer; any other answer becomes an error naming `op`.
    pub fn into_json(self, op: &str) -> anyhow::Result<Value> {
        if self.status != 200 {
            let v: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
            let message = v
                .get("message")
                .or_else(|| v.get("Message"))
                .and_then(Value::as_str)
                .unwrap_or("");
            bail!("{op}: HTTP {} {} {message}", self.status, self.error_type());
        }
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).with_context(|| format!("{op}: answer is not JSON"))
    }
}

/// One connection's worth of client: used by a single task, requests one at a time.
pub struct KmsClient {
    http: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    host: HeaderValue,
    creds: Arc<Credentials>,
    /// (scope date, derived signing key): recomputed when the UTC date changes.
    key: Option<(String, [u8; 32])>,
    /// The last body sent and its SHA-256 (hex): a workload sends the same few bodies over and
    /// over, and the load generator's CPU is taken from the server's on a shared machine.
    body_hash: Option<(Bytes, String)>,
}

impl KmsClient {
    pub fn new(endpoint: &str, creds: Arc<Credentials>) -> anyhow::Result<KmsClient> {
        let uri: Uri = endpoint
            .parse()
            .with_context(|| format!("endpoint {endpoint:?} is not a URL"))?;
        if uri.scheme_str() != Some("http") {
            bail!("endpoint {endpoint:?}: only http:// endpoints are supported");
        }
        let authority = uri
            .authority()
            .with_context(|| format!("endpoint {endpoint:?} has no host"))?;
        let host = HeaderValue::from_str(authority.as_str())?;
        let uri = Uri::builder()
            .scheme("http")
            .authority(authority.clone())
            .path_and_query("/")
            .build()?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        // One idle connection kept alive per client: with one request in flight at a time,
        // every request reuses it.
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .build(connector);
        Ok(KmsClient {
            http,
            uri,
            host,
            creds,
            key: None,
            body_hash: None,
        })
    }

    /// Send `TrentService.<op>` with a JSON body; any HTTP answer is `Ok`.
    pub async fn send(&mut self, op: &str, body: Bytes) -> anyhow::Result<Answer> {
        let target = format!("TrentService.{op}");
        let payload_hash = match &self.body_hash {
            // The same buffer (a clone of the workload's body): its hash is known.
            Some((b, h)) if b.as_ptr() == body.as_ptr() && b.len() == body.len() => h.clone(),
            _ => {
                let h = hex::encode(Sha256::digest(&body));
                self.body_hash = Some((body.clone(), h.clone()));
                h
            }
        };
        let (amz_date, authorization) =
            self.sign(&target, &body, &payload_hash, OffsetDateTime::now_utc())?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, CONTENT_TYPE_JSON)
            .header("x-amz-date", amz_date)
            .header("x-amz-target", target)
            .header(AUTHORIZATION, authorization)
            .body(Full::new(body))?;
        let resp = self.http.request(req).await.context("sending request")?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .context("reading answer")?
            .to_bytes();
        Ok(Answer { status, body })
    }

    /// Send `op` with `body` and return the JSON of a 200 answer (setup calls).
    pub async fn call(&mut self, op: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(op, Bytes::from(serde_json::to_vec(body)?))
            .await?
            .into_json(op)
    }

    /// `(x-amz-date, Authorization)` for a request with these headers and body.
    fn sign(
        &mut self,
        target: &str,
        body: &[u8],
        payload_hash: &str,
        now: OffsetDateTime,
    ) -> anyhow::Result<(String, String)> {
        let amz_date = now.format(AMZ_DATE)?;
        let date = amz_date.get(..8).unwrap_or_default();
        let creds = &self.creds;
        let key = match &self.key {
            Some((d, k)) if d == date => *k,
            _ => {
                let k = signing_key(
                    creds.secret_access_key.expose_secret().as_bytes(),
                    date,
                    &creds.region,
                    "kms",
                );
                self.key = Some((date.to_owned(), k));
                k
            }
        };
        let host = self.host.to_str()?;
        let headers = [
            ("content-type", CONTENT_TYPE_JSON),
            ("host", host),
            ("x-amz-date", amz_date.as_str()),
            ("x-amz-target", target),
        ];
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body,
        };
        let signed: Vec<String> = SIGNED_HEADERS.split(';').map(str::to_owned).collect();
        let canonical = canonical_request(&parts, &signed, payload_hash, true);
        let scope = format!("{date}/{}/kms/aws4_request", creds.region);
        let sts = string_to_sign(&amz_date, &scope, &canonical);
        let signature = hex::encode(hmac_sha256(&key, sts.as_bytes()));
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={SIGNED_HEADERS}, Signature={signature}",
            creds.access_key_id
        );
        Ok((amz_date, authorization))
    }
}

/// HMAC-SHA256 with a 32-byte key (zero-padded to the block, as HMAC defines).
fn hmac_sha256(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut block = hmac::digest::Key::<Hmac<Sha256>>::default();
    block[..key.len()].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as Mac>::new(&block);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::sigv4::{verify, VerifyOptions};

    /// What the client signs is what the server's verifier accepts.
    #[test]
    fn signature_verifies() {
        let creds = Arc::new(Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned().into(),
            region: "eu-west-1".into(),
        });
        let mut c = KmsClient::new("http://127.0.0.1:4599", creds).unwrap();
        let now = OffsetDateTime::now_utc();
        let body = br#"{"KeyId":"alias/x"}"#;
        let hash = hex::encode(Sha256::digest(body));
        let (date, auth) = c
            .sign("TrentService.DescribeKey", body, &hash, now)
            .unwrap();
        let headers = [
            ("Content-Type", CONTENT_TYPE_JSON),
            ("Host", "127.0.0.1:4599"),
            ("X-Amz-Date", date.as_str()),
            ("X-Amz-Target", "TrentService.DescribeKey"),
            ("Authorization", auth.as_str()),
        ];
        let req = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body,
        };
        let regions = vec!["eu-west-1".to_owned()];
        let opts = VerifyOptions {
            service: "kms",
            regions: &regions,
            now,
            max_skew: time::Duration::minutes(5),
            normalize: true,
        };
        let secret = |_: &str| {
            Some(zeroize::Zeroizing::new(
                b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_vec(),
            ))
        };
        let parsed = verify(&req, &opts, secret).unwrap();
        assert_eq!(parsed.access_key_id, "AKIDEXAMPLE");
        // A wrong secret is rejected (the check above is not vacuous).
        assert!(verify(&req, &opts, |_| Some(zeroize::Zeroizing::new(
            b"other".to_vec()
        )))
        .is_err());
        // The derived key is cached for the day.
        assert!(c.key.is_some());
    }
}
