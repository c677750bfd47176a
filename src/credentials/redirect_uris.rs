//! Redirect URIs of clients that sign users in through a browser: checked when registered,
//! then compared character for character (RFC 9700 §4.1.3: no patterns, no partial matches).

use super::is_loopback;

/// The longest redirect URI accepted: it travels in query strings and `Location` headers.
pub const MAX_REDIRECT_URI_LEN: usize = 2048;
/// Redirect URIs one client may register.
pub const MAX_REDIRECT_URIS: usize = 16;

/// A redirect URI as it may be registered: an absolute `https` URL, or `http` for a loopback
/// host only (a native app's listener, RFC 8252 §7.3), with no fragment (RFC 6749 §3.1.2) and
/// no user information. Returned as given, since matching is exact.
pub fn check_redirect_uri(uri: &str) -> Result<String, String> {
    if uri.len() > MAX_REDIRECT_URI_LEN {
        return Err(format!(
            "a redirect URI may be at most {MAX_REDIRECT_URI_LEN} characters"
        ));
    }
    // Exact matching compares what the browser sends: anything the URL parser would rewrite
    // (spaces, non-ASCII, quotes) could never match, so it is refused here.
    if !uri
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(
            "a redirect URI may hold only printable ASCII other than quote and backslash".into(),
        );
    }
    let url = reqwest::Url::parse(uri).map_err(|e| format!("'{}' is not a URL: {e}", echo(uri)))?;
    if uri.contains('#') {
        return Err("a redirect URI may not have a fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a redirect URI may not carry credentials".into());
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(uri.to_owned()),
        "http" if is_loopback(&url) => Ok(uri.to_owned()),
        "http" => Err("a redirect URI must be https (http only for a loopback host)".into()),
        _ => Err("a redirect URI must be an https URL (or http for a loopback host)".into()),
    }
}

/// A client's redirect URIs: at most [`MAX_REDIRECT_URIS`], each valid.
pub fn check_redirect_uris<'a>(
    uris: impl IntoIterator<Item = &'a String>,
) -> Result<std::collections::BTreeSet<String>, String> {
    let mut checked = std::collections::BTreeSet::new();
    for uri in uris {
        checked.insert(check_redirect_uri(uri)?);
    }
    if checked.len() > MAX_REDIRECT_URIS {
        return Err(format!(
            "a client may have at most {MAX_REDIRECT_URIS} redirect URIs"
        ));
    }
    Ok(checked)
}

fn echo(value: &str) -> String {
    value.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_and_loopback_http_redirect_uris_are_accepted() {
        for uri in [
            "https://app.example.com/callback",
            "https://app.example.com/cb?tenant=1",
            "http://127.0.0.1:8400/callback",
            "http://[::1]:8400/cb",
            "http://localhost/cb",
            "https://localhost:9000/",
        ] {
            assert_eq!(check_redirect_uri(uri).as_deref(), Ok(uri), "{uri}");
        }
    }

    #[test]
    fn fragments_plain_http_other_schemes_and_credentials_are_refused() {
        for uri in [
            "https://app.example.com/cb#x",
            "https://app.example.com/cb#",
            "http://app.example.com/cb",
            "javascript:alert(1)",
            "data:text/html,hi",
            "ftp://example.com/",
            "https://user:pw@app.example.com/cb",
            "/relative/cb",
            "https://app.example.com/c b",
            "",
        ] {
            assert!(check_redirect_uri(uri).is_err(), "{uri}");
        }
        assert!(check_redirect_uri(&format!("https://a.example/{}", "x".repeat(2100))).is_err());
    }
}
