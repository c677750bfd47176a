//! Sign-in in a real browser: headless Chromium, driven over the W3C WebDriver protocol by
//! chromedriver, opens the authorization URL, types the username and password with the
//! keyboard (Tab from one field to the next, Enter to submit) and lands on a loopback redirect
//! URI served by this test, which then redeems the code with its PKCE verifier.
//!
//! Chromium and chromedriver are Debian's `chromium` and `chromium-driver`, which
//! `scripts/setup-browser` (run by `scripts/test`) installs. Without them this test fails: it
//! never passes by skipping.
//!
//! With `UPDATE_SIGN_IN_SCREENSHOT=1` the page, at 360 px wide, is saved to
//! `docs/sign-in.png` (the README shows it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use latchkey::domain::GrantType;
use serde_json::{Value, json};
use support::redis_server::free_port;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// The W3C WebDriver name of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// WebDriver's key codes (W3C WebDriver §17.4.2).
const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";

/// A chromedriver this test started, ended with the test.
struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        let binary = which("chromedriver").expect(
            "chromedriver is not installed: run scripts/setup-browser (Debian's chromium and \
             chromium-driver); this test fails rather than skips without it",
        );
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        // chromedriver answers /status once it listens; poll it, with a deadline.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ready = driver
                .http
                .get(format!("{}/status", driver.url))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if ready.is_some() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        driver
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("chromedriver answers");
        let status = response.status();
        let body: Value = response.json().await.expect("a WebDriver answer");
        assert!(status.is_success(), "WebDriver {path}: {status} {body}");
        body["value"].clone()
    }

    async fn session(&self, width: u32) -> Session<'_> {
        let chromium =
            which("chromium").expect("chromium is not installed: run scripts/setup-browser");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--hide-scrollbars",
                ],
                // A phone's viewport: desktop windows have a minimum width above 320 px.
                "mobileEmulation": {
                    "deviceMetrics": {"width": width, "height": 760, "pixelRatio": 1.0},
                },
            },
        }}});
        let value = self
            .call(reqwest::Method::POST, "/session", Some(capabilities))
            .await;
        Session {
            driver: self,
            id: value["sessionId"].as_str().unwrap().to_owned(),
        }
    }
}

struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

impl Session<'_> {
    async fn post(&self, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.id);
        self.driver
            .call(reqwest::Method::POST, &path, Some(body))
            .await
    }

    async fn get(&self, path: &str) -> Value {
        let path = format!("/session/{}{path}", self.id);
        self.driver.call(reqwest::Method::GET, &path, None).await
    }

    async fn find(&self, css: &str) -> String {
        let found = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        found[ELEMENT].as_str().unwrap().to_owned()
    }

    async fn active(&self) -> String {
        self.get("/element/active").await[ELEMENT]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Types `text` as key presses into whatever has the focus.
    async fn keys(&self, text: &str) {
        let mut actions = Vec::new();
        for c in text.chars() {
            actions.push(json!({"type": "keyDown", "value": c.to_string()}));
            actions.push(json!({"type": "keyUp", "value": c.to_string()}));
        }
        self.post(
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .await;
    }

    /// How wide the page lays out, in CSS pixels: more than the viewport means it scrolls
    /// sideways.
    async fn page_width(&self) -> u64 {
        let script = json!({
            "script": "return document.documentElement.scrollWidth;",
            "args": [],
        });
        self.post("/execute/sync", script).await.as_u64().unwrap()
    }

    async fn end(self) {
        let path = format!("/session/{}", self.id);
        self.driver.call(reqwest::Method::DELETE, &path, None).await;
    }
}

fn which(program: &str) -> Option<String> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| std::path::Path::new(dir).join(program))
        .find(|path| path.is_file())
        .map(|path| path.to_string_lossy().into_owned())
}

/// A client app's redirect URI on loopback (`127.0.0.1:0` or `[::1]:0`): sends the query of
/// each `/callback` request.
async fn callback_server(bind: &str) -> (String, mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let uri = format!("http://{}/callback", listener.local_addr().unwrap());
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = vec![0u8; 8192];
            let read = stream.read(&mut buffer).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buffer[..read]).into_owned();
            let target = request.split(' ').nth(1).unwrap_or_default().to_owned();
            if let Some(query) = target.strip_prefix("/callback?") {
                let _ = sender.send(query.to_owned());
            }
            let body = "<!doctype html><title>App</title><p>Signed in.</p>";
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    (uri, receiver)
}

/// An authorization request of `client` with PKCE (S256), and `extra` parameters.
fn authorize_url(
    app: &TestApp,
    client: &str,
    redirect_uri: &str,
    challenge: &str,
    extra: &[(&str, &str)],
) -> reqwest::Url {
    let mut url = reqwest::Url::parse(&app.url("/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client)
        .append_pair("redirect_uri", redirect_uri)
        .extend_pairs(extra)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    url
}

/// The width of a PNG, from its IHDR chunk.
fn png_width(png: &[u8]) -> u32 {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    u32::from_be_bytes(png[16..20].try_into().unwrap())
}

#[tokio::test]
async fn a_user_signs_in_with_the_keyboard_in_headless_chromium_and_the_app_redeems_the_code() {
    let app = TestApp::spawn().await;
    let (redirect_uri, mut callbacks) = callback_server("127.0.0.1:0").await;
    let spec = latchkey::accounts::ClientSpec {
        public: true,
        grants: [GrantType::AuthorizationCode, GrantType::RefreshToken].into(),
        scopes: vec!["read".into()],
        redirect_uris: vec![redirect_uri.clone()],
        first_party: true,
        ..Default::default()
    };
    latchkey::accounts::add_client(&app.change(), "notes-app", spec)
        .await
        .unwrap();
    app.add_user("alice", "correct horse battery", &["user"])
        .await;

    let support::sign_in::Pkce {
        verifier,
        challenge,
    } = support::sign_in::pkce();
    let url = authorize_url(
        &app,
        "notes-app",
        &redirect_uri,
        &challenge,
        &[
            ("scope", "openid read"),
            ("state", "s-browser"),
            ("nonce", "n-browser"),
        ],
    );

    let driver = Driver::start().await;
    // The narrowest screens in use: the page fits 320 px without scrolling sideways.
    let narrow = driver.session(320).await;
    narrow.post("/url", json!({"url": url.as_str()})).await;
    assert_eq!(narrow.page_width().await, 320);
    narrow.end().await;

    let browser = driver.session(360).await;
    browser.post("/url", json!({"url": url.as_str()})).await;
    assert_eq!(browser.get("/title").await, "Sign in · Latchkey");

    // The username field has the focus when the page opens; Tab leads to the password.
    let username = browser.find("#username").await;
    let password = browser.find("#password").await;
    assert_eq!(
        browser.active().await,
        username,
        "the page opens on the username"
    );
    browser.keys("alice").await;
    browser.keys(TAB).await;
    assert_eq!(
        browser.active().await,
        password,
        "Tab leads to the password"
    );
    browser.keys("correct horse battery").await;

    // Nothing overflows sideways at 360 px: the page is as wide as the viewport.
    assert_eq!(browser.page_width().await, 360);
    let screenshot = browser.get("/screenshot").await;
    let png = STANDARD.decode(screenshot.as_str().unwrap()).unwrap();
    assert_eq!(png_width(&png), 360);
    if std::env::var_os("UPDATE_SIGN_IN_SCREENSHOT").is_some() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/sign-in.png");
        std::fs::write(path, &png).unwrap();
    }

    browser.keys(ENTER).await;
    let query = tokio::time::timeout(Duration::from_secs(30), callbacks.recv())
        .await
        .expect("the browser reaches the redirect URI")
        .unwrap();
    browser.end().await;

    let landed = reqwest::Url::parse(&format!("{redirect_uri}?{query}")).unwrap();
    let params: Vec<(String, String)> = landed.query_pairs().into_owned().collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(param("state").as_deref(), Some("s-browser"));
    assert_eq!(param("iss").as_deref(), Some(app.address.as_str()));
    let code = param("code").expect("a code");

    let tokens = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", "notes-app"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_eq!(tokens.status(), 200);
    let body: Value = tokens.json().await.unwrap();
    let (_, id_token) = decode_jwt(body["id_token"].as_str().unwrap());
    assert_eq!(id_token["sub"], "alice");
    assert_eq!(id_token["aud"], "notes-app");
    assert_eq!(id_token["nonce"], "n-browser");
    assert!(body["refresh_token"].is_string());
}

/// RFC 8252 §7.3's other loopback literal. A Content-Security-Policy source cannot name an IPv6
/// address, and browsers apply `form-action` to the redirect that follows the sign-in post: the
/// policy names the redirect URI's scheme instead.
#[tokio::test]
async fn a_native_app_on_ipv6_loopback_gets_its_code_in_headless_chromium() {
    let app = TestApp::spawn().await;
    let (redirect_uri, mut callbacks) = callback_server("[::1]:0").await;
    let spec = latchkey::accounts::ClientSpec {
        public: true,
        grants: [GrantType::AuthorizationCode].into(),
        scopes: vec!["read".into()],
        redirect_uris: vec![redirect_uri.clone()],
        first_party: true,
        ..Default::default()
    };
    latchkey::accounts::add_client(&app.change(), "cli-app", spec)
        .await
        .unwrap();
    app.add_user("alice", "correct horse battery", &["user"])
        .await;
    let challenge = support::sign_in::pkce().challenge;
    let url = authorize_url(
        &app,
        "cli-app",
        &redirect_uri,
        &challenge,
        &[("scope", "read"), ("state", "s-v6")],
    );

    let driver = Driver::start().await;
    let browser = driver.session(360).await;
    browser.post("/url", json!({"url": url.as_str()})).await;
    browser.keys("alice").await;
    browser.keys(TAB).await;
    browser.keys("correct horse battery").await;
    browser.keys(ENTER).await;
    let query = tokio::time::timeout(Duration::from_secs(30), callbacks.recv())
        .await
        .expect("the browser reaches the IPv6 redirect URI")
        .unwrap();
    browser.end().await;
    assert!(
        query.contains("code=") && query.contains("state=s-v6"),
        "{query}"
    );
}
