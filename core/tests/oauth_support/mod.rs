//! Shared by `oauth.rs` and `oauth_postgres.rs`: the loopback AIP server (tests/aip/server.mjs)
//! as a child process, recording events, and the multi-process worker.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use slices_session_core::error::SessionError;
use slices_session_core::oauth::{oauth_error_code, OAuthConfig, OAuthEvents, OAuthTokens};
use slices_session_core::session::now_millis;

/// `tests/aip/server.mjs` running in its own process on a free loopback port.
pub struct Aip {
    child: Child,
    _stdin: ChildStdin,
    pub base: String,
    http: reqwest::Client,
}

pub fn http_client() -> reqwest::Client {
    // reqwest is built without a default crypto provider (see src/oauth/http.rs); the tests'
    // own client installs ring as the process default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("test HTTP client")
}

impl Aip {
    pub fn start() -> Aip {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/aip/server.mjs");
        let node = std::env::var("NODE").unwrap_or_else(|_| "node".to_owned());
        let mut child = Command::new(node)
            .arg(script)
            .args(["--port", "0", "--die-with-stdin", "--ttl", "600"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start `node tests/aip/server.mjs` (is Node.js installed?)");
        let stdin = child.stdin.take().expect("child stdin");
        let stdout = child.stdout.take().expect("child stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the server's port line");
        let ready: Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("bad port line {line:?}: {e}"));
        let port = ready["port"].as_u64().expect("port number");
        Aip {
            child,
            _stdin: stdin,
            base: format!("http://127.0.0.1:{port}"),
            http: http_client(),
        }
    }

    pub fn config(&self) -> OAuthConfig {
        OAuthConfig {
            client_id: "test-client".into(),
            client_secret: "test-secret".into(),
            auth_base_url: self.base.clone(),
            redirect_uri: "http://localhost:8000/oauth/callback".into(),
            scopes: vec!["atproto".into(), "profile".into()],
        }
    }

    pub async fn admin(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/_admin/{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("admin request");
        assert!(response.status().is_success(), "admin {path}: {response:?}");
        response.json().await.expect("admin JSON")
    }

    pub async fn counters(&self) -> Value {
        self.http
            .get(format!("{}/_admin/counters", self.base))
            .send()
            .await
            .expect("counters request")
            .json()
            .await
            .expect("counters JSON")
    }

    /// Refresh requests that reached the server.
    pub async fn refreshes(&self) -> u64 {
        self.counters().await["refresh"]["total"]
            .as_u64()
            .unwrap_or(0)
    }

    pub async fn faults(&self, faults: Value) {
        self.admin("faults", json!({ "faults": faults })).await;
    }

    /// Mints tokens at the server (valid there for `server_expires_in` s); the returned
    /// tokens say they expire at `now + local_expires_in_ms` (the tests' view of "expired").
    pub async fn issue(
        &self,
        handle: &str,
        server_expires_in: i64,
        local_expires_in_ms: Option<i64>,
    ) -> OAuthTokens {
        let body = self
            .admin(
                "issue",
                json!({ "handle": handle, "expiresIn": server_expires_in, "scope": "atproto profile" }),
            )
            .await;
        OAuthTokens {
            access_token: body["access_token"].as_str().unwrap().to_owned(),
            token_type: body["token_type"].as_str().unwrap().to_owned(),
            refresh_token: body["refresh_token"].as_str().map(str::to_owned),
            expires_at: local_expires_in_ms.map(|ms| now_millis() + ms),
            scope: body["scope"].as_str().map(str::to_owned),
        }
    }

    /// Uses a refresh token directly, as another process would.
    pub async fn refresh_directly(&self, refresh_token: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/oauth/token", self.base))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", "test-client"),
                ("client_secret", "test-secret"),
            ])
            .send()
            .await
            .expect("token request")
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

impl Drop for Aip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Records every event, for assertions.
#[derive(Default)]
pub struct Recorder {
    pub refreshed: Mutex<Vec<(String, OAuthTokens)>>,
    pub logouts: Mutex<Vec<String>>,
    pub errors: Mutex<Vec<String>>,
}

impl Recorder {
    pub fn refreshed(&self) -> Vec<(String, OAuthTokens)> {
        self.refreshed.lock().unwrap().clone()
    }
    pub fn logouts(&self) -> Vec<String> {
        self.logouts.lock().unwrap().clone()
    }
    /// OAuth error codes (other errors as their message).
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }
}

#[async_trait]
impl OAuthEvents for Recorder {
    async fn on_token_refresh(&self, session_id: &str, tokens: &OAuthTokens) {
        self.refreshed
            .lock()
            .unwrap()
            .push((session_id.to_owned(), tokens.clone()));
    }
    async fn on_logout(&self, session_id: &str) {
        self.logouts.lock().unwrap().push(session_id.to_owned());
    }
    async fn on_error(&self, error: &SessionError) {
        let text = oauth_error_code(error)
            .map(str::to_owned)
            .unwrap_or_else(|| error.to_string());
        self.errors.lock().unwrap().push(text);
    }
}

pub fn recorder() -> Arc<Recorder> {
    Arc::new(Recorder::default())
}

/// The environment variable that turns a test binary into a multi-process worker.
pub const WORKER_ENV: &str = "SLICES_OAUTH_WORKER";

/// What a worker reports on its stdout, after this marker.
pub const RESULT_MARKER: &str = "OAUTH_WORKER_RESULT ";

/// Starts `n` copies of this test binary running only `worker_test` (a test that calls the
/// worker when `WORKER_ENV` is set), each with `env`; returns their parsed results.
pub fn run_workers(worker_test: &str, n: usize, env: &[(&str, String)]) -> Vec<Value> {
    let exe = std::env::current_exe().expect("current test binary");
    let children: Vec<Child> = (0..n)
        .map(|i| {
            let mut cmd = Command::new(&exe);
            cmd.args([worker_test, "--exact", "--nocapture", "--test-threads=1"])
                .env(WORKER_ENV, "1")
                .env("WORKER_INDEX", i.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            for (k, v) in env {
                cmd.env(k, v);
            }
            cmd.spawn().expect("spawn worker")
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().expect("worker output");
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            assert!(output.status.success(), "worker failed: {stdout}");
            let line = stdout
                .lines()
                .find_map(|l| {
                    l.find(RESULT_MARKER)
                        .map(|at| &l[at + RESULT_MARKER.len()..])
                })
                .unwrap_or_else(|| panic!("no worker result in {stdout}"));
            serde_json::from_str(line).expect("worker result JSON")
        })
        .collect()
}

/// Sleeps until the epoch-ms instant `at` (a crude start barrier across processes).
pub async fn sleep_until(at: i64) {
    let wait = at - now_millis();
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}

/// Checks the worker results: `calls` per worker, all `Some(same token)`, zero errors.
/// Returns that token.
pub fn assert_workers_agree(results: &[Value], calls: usize) -> String {
    let mut tokens = Vec::new();
    for r in results {
        assert_eq!(r["errors"], json!([]), "worker errors: {r}");
        let list = r["tokens"].as_array().expect("tokens array");
        assert_eq!(list.len(), calls, "calls of one worker: {r}");
        for t in list {
            tokens.push(t.as_str().expect("every call got a token").to_owned());
        }
    }
    let first = tokens[0].clone();
    assert!(
        tokens.iter().all(|t| *t == first),
        "tokens differ: {tokens:?}"
    );
    first
}
