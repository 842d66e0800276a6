//! Requests to the authorization server (token endpoint, userinfo) and the classification of
//! their failures (SPEC §6; docs/oauth.md "Failure classification").
//!
//! One `reqwest` client per process, shared by every manager and OAuth client: building one
//! loads the OS trust store, which is too slow to do per request. It keeps no idle
//! connections: token calls are rare, and pooled connections belong to the Tokio runtime
//! that opened them, which may be gone by the next call (each `#[tokio::test]` has its own).

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use url::Url;

use crate::error::{Result, SessionError};
use crate::oauth::config::OAuthTokens;
use crate::oauth::oauth_error;
use crate::session::Millis;

/// Limit for opening a TCP/TLS connection; the whole request has its own limit
/// (`request_timeout_ms`), whichever is shorter applies.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Token and userinfo responses are a few hundred bytes; this bounds a hostile server.
const MAX_BODY: usize = 1 << 20;

static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();

/// The process's HTTP client, built on first use.
fn client() -> Result<reqwest::Client> {
    // reqwest's I/O and our timeouts need Tokio; without a runtime they would panic.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(SessionError::Internal(
            "an OAuth HTTP request was started outside a Tokio runtime".into(),
        ));
    }
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let client = build_client()?;
    // Two threads may build one at once; the first stored wins, both are equivalent.
    Ok(CLIENT.get_or_init(|| client).clone())
}

fn build_client() -> Result<reqwest::Client> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let http_error = |what: &str, e: &dyn std::fmt::Display| {
        oauth_error("http_client", format!("cannot set up HTTPS ({what}): {e}"))
    };
    // An explicit provider (ring), not the process default: a host application may have
    // installed another one, or none, and reqwest panics without one.
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| http_error("TLS versions", &e))?
        .with_platform_verifier()
        .map_err(|e| http_error("the OS certificate verifier", &e))?
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        // A token or userinfo call that redirects is a misconfiguration; following it could
        // send credentials elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .user_agent(concat!("slices-session/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| http_error("the HTTP client", &e))
}

/// How a failed token request ended, which decides what the caller may conclude.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// `invalid_grant`: the refresh token (or code) is dead. The only failure that logs out.
    InvalidGrant,
    /// `401` / `invalid_client`: our credentials are wrong. A configuration error: the
    /// session is kept and the error reported.
    InvalidClient,
    /// Another 4xx (or an unexpected status): the server refused, the grant is untouched.
    Rejected,
    /// The request never reached the server (connection refused, DNS, TLS): transient, and
    /// certainly nothing changed at the server.
    NotSent,
    /// Timeout, a connection lost mid-request, a 5xx, or a 2xx we cannot read: transient,
    /// and the server may have rotated the refresh token without us learning the new one.
    OutcomeUnknown,
}

/// A failed token request: its kind and the error to report (`SessionError::OAuth`).
#[derive(Debug)]
pub struct TokenFailure {
    pub kind: FailureKind,
    pub error: SessionError,
}

impl TokenFailure {
    fn new(kind: FailureKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        TokenFailure {
            kind,
            error: oauth_error(code, message),
        }
    }
}

/// A successful token endpoint answer.
#[derive(Clone, Debug)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    /// Seconds.
    pub expires_in: Option<f64>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
}

impl TokenResponse {
    /// The tokens to store. `expires_at` counts from `sent_at`, the moment the request left:
    /// the server's clock started no earlier, so the token never outlives our idea of it.
    ///
    /// A `refresh_token` that is null or absent means "none issued": with AIP's single-use
    /// tokens the one we presented is spent, so it is not carried over (keeping it would
    /// only earn an `invalid_grant` later). `scope` absent means unchanged (RFC 6749 §5.1).
    pub fn into_tokens(self, sent_at: Millis, previous: Option<&OAuthTokens>) -> OAuthTokens {
        let expires_at = self
            .expires_in
            .filter(|s| s.is_finite())
            .map(|s| sent_at.saturating_add((s * 1000.0) as Millis));
        OAuthTokens {
            access_token: self.access_token,
            token_type: self.token_type,
            refresh_token: self.refresh_token,
            expires_at,
            scope: self
                .scope
                .or_else(|| previous.and_then(|p| p.scope.clone())),
        }
    }
}

/// `POST {token_url}` with a form body; the client secret travels as form fields
/// (SPEC §6: AIP accepts it and it avoids AIP's non-standard HTTP Basic decoding).
pub async fn token_request(
    token_url: &Url,
    form: &[(&str, &str)],
    timeout: Duration,
) -> std::result::Result<TokenResponse, TokenFailure> {
    let client = client().map_err(|error| TokenFailure {
        kind: FailureKind::NotSent,
        error,
    })?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let request = client
        .post(token_url.clone())
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body);
    let (status, bytes) = match tokio::time::timeout(timeout, send_and_read(request)).await {
        Err(_) => {
            return Err(TokenFailure::new(
                FailureKind::OutcomeUnknown,
                "timeout",
                format!(
                    "the token endpoint did not answer within {} ms",
                    timeout.as_millis()
                ),
            ))
        }
        Ok(Err(failure)) => return Err(failure),
        Ok(Ok(answer)) => answer,
    };
    if status.is_success() {
        return parse_token_response(&bytes).map_err(|why| {
            // The server may have rotated the refresh token and told us the new one in a
            // body we cannot read: the outcome is unknown, not a rejection.
            TokenFailure::new(
                FailureKind::OutcomeUnknown,
                "invalid_response",
                format!("the token endpoint answered HTTP {status} with {why}"),
            )
        });
    }
    Err(classify_error(status, &bytes))
}

async fn send_and_read(
    request: reqwest::RequestBuilder,
) -> std::result::Result<(reqwest::StatusCode, Vec<u8>), TokenFailure> {
    let mut response = request.send().await.map_err(transport_failure)?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_failure)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(TokenFailure::new(
                FailureKind::OutcomeUnknown,
                "invalid_response",
                format!("the response body is larger than {MAX_BODY} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

/// A transport error: before the request left (connect) or after (anything else).
fn transport_failure(e: reqwest::Error) -> TokenFailure {
    let detail = error_chain(&e);
    if e.is_connect() {
        TokenFailure::new(
            FailureKind::NotSent,
            "network_error",
            format!("cannot connect to the authorization server: {detail}"),
        )
    } else if e.is_timeout() {
        TokenFailure::new(
            FailureKind::OutcomeUnknown,
            "timeout",
            format!("the authorization server timed out: {detail}"),
        )
    } else {
        TokenFailure::new(
            FailureKind::OutcomeUnknown,
            "network_error",
            format!("the connection to the authorization server failed: {detail}"),
        )
    }
}

/// `reqwest::Error` prints only its outermost layer; the cause (refused, reset) is below.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

fn parse_token_response(bytes: &[u8]) -> std::result::Result<TokenResponse, String> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("a body that is not JSON ({e})"))?;
    let object = value
        .as_object()
        .ok_or_else(|| "a JSON body that is not an object".to_owned())?;
    let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
    let access_token = text("access_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "no `access_token`".to_owned())?;
    let expires_in = match object.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        // Some servers send it as a string of digits.
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => return Err("an `expires_in` that is not a number".to_owned()),
    };
    Ok(TokenResponse {
        access_token,
        token_type: text("token_type").unwrap_or_else(|| "Bearer".to_owned()),
        expires_in,
        refresh_token: text("refresh_token").filter(|t| !t.is_empty()),
        scope: text("scope"),
    })
}

/// A non-2xx answer of the token endpoint.
fn classify_error(status: reqwest::StatusCode, bytes: &[u8]) -> TokenFailure {
    let body: Option<Value> = serde_json::from_slice(bytes).ok();
    let field = |key: &str| {
        body.as_ref()
            .and_then(|b| b.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let error = field("error");
    let description = field("error_description");
    let detail = |code: &str| match &description {
        Some(d) => format!("HTTP {} {code}: {d}", status.as_u16()),
        None => format!("HTTP {} {code}", status.as_u16()),
    };
    let code = error.clone().unwrap_or_else(|| {
        if status.is_server_error() {
            "server_error".to_owned()
        } else {
            format!("http_{}", status.as_u16())
        }
    });
    if status.is_server_error() {
        return TokenFailure::new(
            FailureKind::OutcomeUnknown,
            code.clone(),
            format!("the authorization server failed ({})", detail(&code)),
        );
    }
    if status.is_client_error() && error.as_deref() == Some("invalid_grant") {
        return TokenFailure::new(
            FailureKind::InvalidGrant,
            "invalid_grant",
            format!("the grant was rejected ({})", detail("invalid_grant")),
        );
    }
    if status == reqwest::StatusCode::UNAUTHORIZED || error.as_deref() == Some("invalid_client") {
        return TokenFailure::new(
            FailureKind::InvalidClient,
            "invalid_client",
            format!(
                "the authorization server rejected the client credentials ({}); check clientId \
                 and clientSecret",
                detail(&code)
            ),
        );
    }
    TokenFailure::new(
        FailureKind::Rejected,
        code.clone(),
        format!("the token request was refused ({})", detail(&code)),
    )
}

/// `GET {userinfo_url}` with the bearer token: the server's JSON object as sent.
pub async fn userinfo(userinfo_url: &Url, access_token: &str, timeout: Duration) -> Result<Value> {
    let request = client()?
        .get(userinfo_url.clone())
        .bearer_auth(access_token)
        .header(reqwest::header::ACCEPT, "application/json");
    let (status, bytes) = match tokio::time::timeout(timeout, send_and_read(request)).await {
        Err(_) => {
            return Err(oauth_error(
                "timeout",
                format!(
                    "the userinfo endpoint did not answer within {} ms",
                    timeout.as_millis()
                ),
            ))
        }
        Ok(Err(failure)) => return Err(failure.error),
        Ok(Ok(answer)) => answer,
    };
    if !status.is_success() {
        // RFC 6750 §3.1: a bad or expired token is 401 `invalid_token`, whatever the body.
        let failure = classify_error(status, &bytes);
        let code = if status == reqwest::StatusCode::UNAUTHORIZED {
            "invalid_token"
        } else {
            crate::oauth::oauth_error_code(&failure.error).unwrap_or("server_error")
        };
        return Err(oauth_error(
            code,
            format!("the userinfo request failed (HTTP {})", status.as_u16()),
        ));
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        oauth_error(
            "invalid_response",
            format!("the userinfo endpoint answered with a body that is not JSON ({e})"),
        )
    })?;
    if !value.is_object() {
        return Err(oauth_error(
            "invalid_response",
            "the userinfo endpoint answered with JSON that is not an object",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(status: u16, body: &str) -> TokenFailure {
        classify_error(
            reqwest::StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
        )
    }

    fn code(f: &TokenFailure) -> &str {
        crate::oauth::oauth_error_code(&f.error).unwrap()
    }

    #[test]
    fn failures_are_classified_as_spec_6_says() {
        let f = classify(
            400,
            r#"{"error":"invalid_grant","error_description":"used"}"#,
        );
        assert_eq!(
            (f.kind, code(&f)),
            (FailureKind::InvalidGrant, "invalid_grant")
        );
        assert!(f.error.to_string().contains("used"));
        let f = classify(401, r#"{"error":"invalid_client"}"#);
        assert_eq!(
            (f.kind, code(&f)),
            (FailureKind::InvalidClient, "invalid_client")
        );
        let f = classify(401, "not json");
        assert_eq!(f.kind, FailureKind::InvalidClient);
        let f = classify(400, r#"{"error":"invalid_client"}"#);
        assert_eq!(f.kind, FailureKind::InvalidClient);
        let f = classify(400, r#"{"error":"invalid_request"}"#);
        assert_eq!(
            (f.kind, code(&f)),
            (FailureKind::Rejected, "invalid_request")
        );
        let f = classify(403, "");
        assert_eq!((f.kind, code(&f)), (FailureKind::Rejected, "http_403"));
        let f = classify(500, r#"{"error":"server_error"}"#);
        assert_eq!(
            (f.kind, code(&f)),
            (FailureKind::OutcomeUnknown, "server_error")
        );
        let f = classify(502, "<html>bad gateway</html>");
        assert_eq!(
            (f.kind, code(&f)),
            (FailureKind::OutcomeUnknown, "server_error")
        );
        // A redirect is not followed, and not a grant failure.
        assert_eq!(classify(302, "").kind, FailureKind::Rejected);
    }

    #[test]
    fn token_responses_parse() {
        let r = parse_token_response(
            br#"{"access_token":"a","token_type":"Bearer","expires_in":3600,"refresh_token":null,"scope":null}"#,
        )
        .unwrap();
        assert_eq!(r.refresh_token, None);
        assert_eq!(r.expires_in, Some(3600.0));
        let previous = OAuthTokens {
            access_token: "old".into(),
            token_type: "Bearer".into(),
            refresh_token: Some("old-rt".into()),
            expires_at: Some(1),
            scope: Some("atproto".into()),
        };
        let t = r.into_tokens(1_000, Some(&previous));
        assert_eq!(t.expires_at, Some(3_601_000));
        // Null refresh token: none (the presented one is spent); absent scope: unchanged.
        assert_eq!(t.refresh_token, None);
        assert_eq!(t.scope.as_deref(), Some("atproto"));

        let r = parse_token_response(br#"{"access_token":"a","expires_in":"60"}"#).unwrap();
        assert_eq!(r.token_type, "Bearer");
        assert_eq!(r.expires_in, Some(60.0));
        assert_eq!(r.into_tokens(0, None).expires_at, Some(60_000));
        let r = parse_token_response(br#"{"access_token":"a"}"#).unwrap();
        assert_eq!(r.into_tokens(0, None).expires_at, None);

        assert!(parse_token_response(b"{}").is_err());
        assert!(parse_token_response(b"[]").is_err());
        assert!(parse_token_response(b"nope").is_err());
        assert!(parse_token_response(br#"{"access_token":"a","expires_in":true}"#).is_err());
    }

    #[test]
    fn no_runtime_is_an_error_not_a_panic() {
        let url = Url::parse("http://127.0.0.1:9/oauth/token").unwrap();
        let result = futures::executor::block_on(token_request(
            &url,
            &[("grant_type", "refresh_token")],
            Duration::from_secs(1),
        ));
        let failure = result.unwrap_err();
        assert_eq!(failure.kind, FailureKind::NotSent);
        assert!(failure.error.to_string().contains("Tokio"));
    }
}
