//! The pages of sign-in in a browser: server-rendered HTML and CSS, no script, one form whose
//! fields have labels and follow the reading order, readable from 320 px up.
//!
//! Every page goes out with headers that keep it from being framed (clickjacking), cached,
//! or leaking its URL (with the authorization request in it) to other sites, and a Content
//! Security Policy that allows nothing but its own inline style (by hash) and a form posted to
//! the issuer, which then redirects to the client's registered redirect URI (whose origin the
//! policy also names, since browsers apply `form-action` to the redirect after a post; for an
//! IPv6 loopback URI, which no CSP source can name, its scheme).

use std::fmt::Write as _;
use std::sync::LazyLock;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use poem::http::{HeaderValue, header};
use poem::{IntoResponse, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};

const STYLE: &str = "\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;\
color:#1b1f24;background:#f3f4f6}\
main{max-width:24rem;margin:0 auto;padding:2rem 1rem}\
.card{background:#fff;border:1px solid #d0d5dc;border-radius:8px;padding:1.5rem 1.25rem}\
h1{font-size:1.5rem;margin:0 0 .25rem}\
p{margin:0 0 1rem}\
.for{color:#4b5563;overflow-wrap:anywhere}\
label{display:block;font-weight:600;margin:1rem 0 .25rem}\
input{display:block;width:100%;font:inherit;padding:.6rem .7rem;border:1px solid #6b7280;\
border-radius:6px;background:#fff;color:inherit}\
input:focus,button:focus{outline:3px solid #2563eb;outline-offset:2px}\
button{display:block;width:100%;margin-top:1.5rem;font:inherit;font-weight:600;\
padding:.7rem;border:0;border-radius:6px;background:#1d4ed8;color:#fff;cursor:pointer}\
button:hover{background:#1e40af}\
button.secondary{margin-top:.75rem;background:#fff;color:#1d4ed8;border:1px solid #1d4ed8}\
ul{margin:0 0 1rem;padding-left:1.25rem}\
.error{border-left:4px solid #b91c1c;background:#fef2f2;color:#7f1d1d;padding:.6rem .8rem;\
border-radius:4px}\
footer{margin-top:1rem;font-size:.875rem;color:#4b5563;text-align:center}";

/// The CSP source of the inline style: its SHA-256, so no other style (and no script at all)
/// can run on the page.
static STYLE_SOURCE: LazyLock<String> = LazyLock::new(|| {
    let hash = digest::digest(&digest::SHA256, STYLE.as_bytes());
    format!("'sha256-{}'", STANDARD.encode(hash.as_ref()))
});

/// A page of the sign-in flow, with its security headers; `text/html`.
pub struct SignInPage {
    html: String,
    /// The origin the form's post may redirect to (the client's redirect URI's), if any.
    redirect_origin: Option<String>,
}

impl Payload for SignInPage {
    const CONTENT_TYPE: &'static str = "text/html; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some("An HTML page (no script)."),
            example: Some(serde_json::Value::String(
                "<!doctype html>\n<html lang=\"en\">...<form method=\"post\" \
                 action=\"authorize\">...</form>...</html>"
                    .into(),
            )),
            ..MetaSchema::new("string")
        }))
    }
}

impl IntoResponse for SignInPage {
    fn into_response(self) -> Response {
        let form_action = match &self.redirect_origin {
            Some(origin) => format!("'self' {origin}"),
            None => "'self'".to_owned(),
        };
        let policy = format!(
            "default-src 'none'; style-src {}; form-action {form_action}; \
             frame-ancestors 'none'; base-uri 'none'",
            *STYLE_SOURCE
        );
        let mut response = Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .header(header::CACHE_CONTROL, "no-store")
            .header(header::PRAGMA, "no-cache")
            .header(header::X_FRAME_OPTIONS, "DENY")
            .header(header::REFERRER_POLICY, "no-referrer")
            .body(self.html);
        if let Ok(value) = HeaderValue::from_str(&policy) {
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, value);
        }
        response
    }
}

/// `value` safe inside HTML text and double-quoted attributes.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{} · Latchkey</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
         <div class=\"card\">\n{body}</div>\n\
         <footer>Latchkey</footer>\n</main>\n</body>\n</html>\n",
        escape(title)
    )
}

/// What the sign-in form shows and carries.
pub struct SignInForm<'a> {
    /// The client the user signs in to.
    pub client_id: &'a str,
    /// The signed pending request (hidden field `request`).
    pub request: &'a str,
    /// The CSRF token (hidden field `csrf_token`), also set as a cookie.
    pub csrf_token: &'a str,
    /// The username to fill in again after a refused attempt.
    pub username: &'a str,
    /// Shown above the form after a refused attempt.
    pub error: Option<&'a str>,
    /// The origin of the redirect URI the form leads to.
    pub redirect_origin: Option<String>,
}

/// The sign-in form.
pub fn sign_in(form: &SignInForm<'_>) -> SignInPage {
    let mut body = String::new();
    body.push_str("<h1>Sign in</h1>\n");
    let _ = writeln!(
        body,
        "<p class=\"for\">to continue to <strong>{}</strong></p>",
        escape(form.client_id)
    );
    if let Some(error) = form.error {
        let _ = writeln!(
            body,
            "<p class=\"error\" id=\"error\" role=\"alert\">{}</p>",
            escape(error)
        );
    }
    let described = if form.error.is_some() {
        " aria-describedby=\"error\""
    } else {
        ""
    };
    let _ = write!(
        body,
        "<form method=\"post\" action=\"authorize\">\n\
         <input type=\"hidden\" name=\"request\" value=\"{request}\">\n\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\n\
         <label for=\"username\">Username</label>\n\
         <input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" \
         autocapitalize=\"none\" spellcheck=\"false\" required autofocus value=\"{username}\"{described}>\n\
         <label for=\"password\">Password</label>\n\
         <input id=\"password\" name=\"password\" type=\"password\" \
         autocomplete=\"current-password\" required>\n\
         <button type=\"submit\">Sign in</button>\n\
         </form>\n",
        request = escape(form.request),
        csrf = escape(form.csrf_token),
        username = escape(form.username),
    );
    SignInPage {
        html: page("Sign in", &body),
        redirect_origin: form.redirect_origin.clone(),
    }
}

/// What the consent page shows and carries.
pub struct ConsentForm<'a> {
    pub client_id: &'a str,
    pub username: &'a str,
    /// The scopes asked for, one per line.
    pub scopes: Vec<&'a str>,
    /// The signed pending request, with the sign-in (hidden field `request`).
    pub request: &'a str,
    pub csrf_token: &'a str,
    pub redirect_origin: Option<String>,
}

/// The consent page, for clients that are not the operator's own: the scopes, Allow or Deny.
pub fn consent(form: &ConsentForm<'_>) -> SignInPage {
    let mut body = String::new();
    body.push_str("<h1>Allow access?</h1>\n");
    let _ = writeln!(
        body,
        "<p class=\"for\"><strong>{}</strong> asks to act for you, <strong>{}</strong>.</p>",
        escape(form.client_id),
        escape(form.username)
    );
    if form.scopes.is_empty() {
        body.push_str("<p>It asks for no particular permission.</p>\n");
    } else {
        body.push_str("<p>It asks for:</p>\n<ul>\n");
        for scope in &form.scopes {
            let _ = writeln!(body, "<li><code>{}</code></li>", escape(scope));
        }
        body.push_str("</ul>\n");
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"authorize\">\n\
         <input type=\"hidden\" name=\"request\" value=\"{request}\">\n\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\n\
         <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\n\
         <button type=\"submit\" name=\"decision\" value=\"deny\" class=\"secondary\">Deny</button>\n\
         </form>\n",
        request = escape(form.request),
        csrf = escape(form.csrf_token),
    );
    SignInPage {
        html: page("Allow access", &body),
        redirect_origin: form.redirect_origin.clone(),
    }
}

/// What the logout confirmation page shows and carries.
pub struct LogoutForm<'a> {
    /// Who is signed in.
    pub username: &'a str,
    /// The client that asked, when the request proved it (a valid hint, a registered return
    /// address); a client merely named in the URL is not shown, since any site can name one.
    pub client_id: Option<&'a str>,
    /// The signed pending logout (hidden field `request`).
    pub request: &'a str,
    /// The CSRF token (hidden field `csrf_token`), also set as a cookie.
    pub csrf_token: &'a str,
    /// Why the application will not be returned to, when its request was in error.
    pub error: Option<&'a str>,
    /// The origin of the address the form returns to.
    pub redirect_origin: Option<String>,
}

/// The page that asks a user to confirm a logout that another site may have sent them to:
/// Sign out, or Stay signed in.
pub fn confirm_logout(form: &LogoutForm<'_>) -> SignInPage {
    let mut body = String::new();
    body.push_str("<h1>Sign out?</h1>\n");
    let asker = match form.client_id {
        Some(client) => format!("<strong>{}</strong> asks", escape(client)),
        None => "You were sent here".to_owned(),
    };
    let _ = writeln!(
        body,
        "<p class=\"for\">{asker} to sign you, <strong>{}</strong>, out.</p>",
        escape(form.username)
    );
    if let Some(error) = form.error {
        let _ = writeln!(
            body,
            "<p class=\"error\" role=\"alert\">{}</p>",
            escape(error)
        );
    }
    body.push_str(
        "<p>Signing out ends your sign-in in this browser: applications will ask you to sign \
         in again. If you did not ask to sign out, stay signed in.</p>\n",
    );
    let _ = write!(
        body,
        "<form method=\"post\" action=\"logout\">\n\
         <input type=\"hidden\" name=\"request\" value=\"{request}\">\n\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\n\
         <button type=\"submit\" name=\"decision\" value=\"sign_out\">Sign out</button>\n\
         <button type=\"submit\" name=\"decision\" value=\"stay\" class=\"secondary\">\
         Stay signed in</button>\n\
         </form>\n",
        request = escape(form.request),
        csrf = escape(form.csrf_token),
    );
    SignInPage {
        html: page("Sign out", &body),
        redirect_origin: form.redirect_origin.clone(),
    }
}

/// The page after a user chose to stay signed in.
pub fn still_signed_in() -> SignInPage {
    SignInPage {
        html: page(
            "Still signed in",
            "<h1>Still signed in</h1>\n<p>You are still signed in. You may close this page.</p>\n",
        ),
        redirect_origin: None,
    }
}

/// The page after a logout that has nowhere to return to.
pub fn signed_out() -> SignInPage {
    SignInPage {
        html: page(
            "Signed out",
            "<h1>Signed out</h1>\n<p>You are signed out. You may close this page.</p>\n",
        ),
        redirect_origin: None,
    }
}

/// A page that ends the sign-in: the request cannot go on, and why, in words for the user.
pub fn stopped(title: &str, message: &str) -> SignInPage {
    let body = format!(
        "<h1>{}</h1>\n<p class=\"error\" role=\"alert\">{}</p>\n\
         <p>Go back to the application and try again.</p>\n",
        escape(title),
        escape(message)
    );
    SignInPage {
        html: page(title, &body),
        redirect_origin: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_shown_is_escaped() {
        let page = sign_in(&SignInForm {
            client_id: "<script>",
            request: "\"><x",
            csrf_token: "t",
            username: "a'b",
            error: Some("<b>"),
            redirect_origin: None,
        });
        assert!(!page.html.contains("<script>"));
        assert!(!page.html.contains("\"><x"));
        assert!(page.html.contains("&lt;b&gt;"));
        assert!(page.html.contains("a&#39;b"));
    }

    #[test]
    fn the_logout_confirmation_escapes_what_it_shows_and_posts_to_logout() {
        let page = confirm_logout(&LogoutForm {
            username: "<u>",
            client_id: Some("<c>"),
            request: "\"><x",
            csrf_token: "t",
            error: Some("<e>"),
            redirect_origin: None,
        });
        assert!(!page.html.contains("<u>") && !page.html.contains("<c>"));
        assert!(!page.html.contains("\"><x") && !page.html.contains("<e>"));
        assert!(page.html.contains("action=\"logout\""));
        assert!(page.html.contains("value=\"stay\""));
    }

    #[test]
    fn the_policy_allows_the_page_s_own_style_and_no_script() {
        let response = stopped("Stopped", "why").into_response();
        let policy = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(policy.starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(policy.contains("frame-ancestors 'none'"));
        assert!(!policy.contains("script-src"));
        assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
    }
}
