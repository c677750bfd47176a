//! The poem extractor and middleware, the tower layer and the axum extractor answer as RFC 6750
//! says.
#![cfg(all(feature = "poem", feature = "axum"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod stub;

use latchkey_verify::{AccessToken, Verifier, VerifyError};
use stub::{AUDIENCE, Stub, TestKey, claims, now};

async fn setup() -> (Stub, TestKey, Verifier) {
    let key = TestKey::rsa("k1");
    let stub = Stub::start(&[&key]).await;
    let verifier = Verifier::builder(&stub.url, AUDIENCE)
        .connect()
        .await
        .unwrap();
    (stub, key, verifier)
}

mod with_poem {
    use super::*;
    use latchkey_verify::poem::RequireToken;
    use poem::test::TestClient;
    use poem::{EndpointExt, Route, get, handler};

    #[handler]
    fn whoami(token: AccessToken) -> String {
        token.subject
    }

    #[handler]
    fn admin(token: AccessToken) -> Result<String, VerifyError> {
        token.require_role("admin")?;
        Ok("report".into())
    }

    #[handler]
    fn writer(token: AccessToken) -> Result<String, VerifyError> {
        token.require_scope("orders:write")?;
        Ok("written".into())
    }

    #[tokio::test]
    async fn the_extractor_answers_401_403_and_200_as_rfc_6750_says() {
        let (stub, key, verifier) = setup().await;
        let app = Route::new()
            .at("/me", get(whoami))
            .at("/admin", get(admin))
            .at("/write", get(writer))
            .data(verifier);
        let client = TestClient::new(app);
        let token = key.token(&claims(&stub.url, AUDIENCE, now()));

        let missing = client.get("/me").send().await;
        missing.assert_status(poem::http::StatusCode::UNAUTHORIZED);
        missing.assert_header("www-authenticate", "Bearer");

        let bad = client
            .get("/me")
            .header("authorization", "Bearer abc.def.ghi")
            .send()
            .await;
        bad.assert_status(poem::http::StatusCode::UNAUTHORIZED);
        let challenge = bad
            .0
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{challenge}"
        );
        bad.assert_content_type("application/json");

        let ok = client
            .get("/me")
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await;
        ok.assert_status_is_ok();
        ok.assert_text("alice").await;

        let forbidden = client
            .get("/admin")
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await;
        forbidden.assert_status(poem::http::StatusCode::FORBIDDEN);
        let challenge = forbidden
            .0
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{challenge}"
        );
        forbidden
            .assert_json(serde_json::json!({
                "error": "insufficient_scope",
                "error_description": "the token lacks the role 'admin'",
            }))
            .await;

        let scope = client
            .get("/write")
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await;
        scope.assert_status(poem::http::StatusCode::FORBIDDEN);
        let challenge = scope
            .0
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(challenge.contains("scope=\"orders:write\""), "{challenge}");
    }

    #[tokio::test]
    async fn the_middleware_guards_every_route_it_wraps() {
        let (stub, key, verifier) = setup().await;
        let app = Route::new()
            .at("/me", get(whoami))
            .with(RequireToken::new(verifier));
        let client = TestClient::new(app);
        client
            .get("/me")
            .send()
            .await
            .assert_status(poem::http::StatusCode::UNAUTHORIZED);
        let token = key.token(&claims(&stub.url, AUDIENCE, now()));
        let ok = client
            .get("/me")
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await;
        ok.assert_text("alice").await;
    }
}

mod with_tower {
    use super::*;
    use axum_core::extract::FromRequestParts;
    use http::{Request, Response, StatusCode};
    use latchkey_verify::tower::VerifyLayer;
    use tower::{ServiceBuilder, ServiceExt};

    #[tokio::test]
    async fn the_layer_passes_the_verified_token_on_and_refuses_the_rest() {
        let (stub, key, verifier) = setup().await;
        let service = ServiceBuilder::new()
            .layer(VerifyLayer::new(verifier))
            .service_fn(|req: Request<String>| async move {
                let (mut parts, _) = req.into_parts();
                let token = AccessToken::from_request_parts(&mut parts, &()).await;
                Ok::<_, std::convert::Infallible>(Response::new(
                    token.map(|t| t.subject).unwrap_or_default(),
                ))
            });
        let token = key.token(&claims(&stub.url, AUDIENCE, now()));
        let request = |auth: Option<String>| {
            let mut builder = Request::builder().uri("/protected");
            if let Some(auth) = auth {
                builder = builder.header("authorization", auth);
            }
            builder.body(String::new()).unwrap()
        };
        let ok = service
            .clone()
            .oneshot(request(Some(format!("Bearer {token}"))))
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.body(), "alice");

        let refused = service
            .clone()
            .oneshot(request(Some("Bearer x.y.z".into())))
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let challenge = refused.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer error=\"invalid_token\""));
        let body: serde_json::Value = serde_json::from_str(refused.body()).unwrap();
        assert_eq!(body["error"], "invalid_token");

        let missing = service.oneshot(request(None)).await.unwrap();
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    }
}
