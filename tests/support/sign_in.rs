//! What the tests of sign-in in a browser share: PKCE pairs, and reading a page's form and
//! cookies as a browser would.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A PKCE pair: a random verifier and its S256 challenge.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let verifier = latchkey::domain::random_token(32);
    let challenge = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// The value of a page's hidden field `name` (the issuer's values need no unescaping).
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("hidden field") + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

/// The `Set-Cookie` header of a response for the cookie `name`, whole.
pub fn set_cookie_header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The `name=value` a browser sends back for the cookie `name` a response sets.
pub fn cookie_of(response: &reqwest::Response, name: &str) -> Option<String> {
    set_cookie_header(response, name).map(|v| v.split(';').next().unwrap_or_default().to_owned())
}
