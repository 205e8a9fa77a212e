//! Who may publish and subscribe: static tokens, JWTs (HS256, RS256, ES256),
//! `--protect`, on every transport, with real clients.

use std::path::PathBuf;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::graphql_limits::{doubling, graphql_get};
use crate::node_client::POSITIONS;
use crate::test_app::{TestApp, spawn_app_with, tokens_file, within};

const TOKENS: &str = "\
# token       rights     limits
pub-all       publish
pub-bus       publish    trackers=bus-1,bus-2 name=buses
read-only     subscribe
everything
";

async fn app_with_tokens(name: &str, protect: &[&str]) -> TestApp {
    let path = tokens_file(name, TOKENS);
    let protect: Vec<String> = protect.iter().map(|s| (*s).to_owned()).collect();
    spawn_app_with(move |c| {
        c.tokens_file = Some(path);
        c.protect = protect;
    })
    .await
}

async fn post(app: &TestApp, token: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = app.http.post(app.url("/longlat")).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("POST /longlat")
}

async fn problem(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = response.json().await.expect("a problem document");
    assert_eq!(body["code"], code, "{body}");
    body
}

async fn stored_count(app: &TestApp, token: &str) -> usize {
    let page: Value = app
        .http
        .get(app.url("/longlat/history"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /longlat/history")
        .json()
        .await
        .expect("a page");
    page["events"].as_array().expect("events").len()
}

const STOCKHOLM: fn() -> Value = || json!({"longitude": 18.06, "latitude": 59.33});

#[tokio::test]
async fn publishing_without_a_valid_token_is_401_with_a_challenge_and_stores_nothing() {
    let app = app_with_tokens("publish-401", &["publish"]).await;

    let missing = post(&app, None, STOCKHOLM()).await;
    assert_eq!(
        missing.headers()["www-authenticate"],
        r#"Bearer realm="longlat""#
    );
    problem(missing, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let wrong = post(&app, Some("not-a-token"), STOCKHOLM()).await;
    assert_eq!(
        wrong.headers()["www-authenticate"],
        r#"Bearer realm="longlat", error="invalid_token""#
    );
    let body = problem(wrong, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert!(
        !body.to_string().contains("not-a-token"),
        "the token is not echoed: {body}"
    );

    let basic = app
        .http
        .post(app.url("/longlat"))
        .basic_auth("user", Some("pass"))
        .json(&STOCKHOLM())
        .send()
        .await
        .expect("POST");
    problem(basic, StatusCode::UNAUTHORIZED, "unauthorized").await;

    // Reading is open (only publishing is protected), and nothing was stored.
    let page = app.get_json("/longlat/history").await;
    assert_eq!(page["events"], json!([]));

    let ok = post(&app, Some("pub-all"), STOCKHOLM()).await;
    assert_eq!(ok.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_token_that_may_not_publish_or_not_for_that_tracker_is_403() {
    let app = app_with_tokens("publish-403", &["publish"]).await;

    let read_only = post(&app, Some("read-only"), STOCKHOLM()).await;
    problem(read_only, StatusCode::FORBIDDEN, "forbidden").await;

    let mut bus = STOCKHOLM();
    bus["tracker"] = "bus-2".into();
    assert_eq!(
        post(&app, Some("pub-bus"), bus.clone()).await.status(),
        StatusCode::CREATED
    );
    bus["tracker"] = "taxi-7".into();
    let other = problem(
        post(&app, Some("pub-bus"), bus).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert!(other["detail"].as_str().unwrap().contains("taxi-7"));
    // No tracker at all is not one of its trackers either.
    problem(
        post(&app, Some("pub-bus"), STOCKHOLM()).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    assert_eq!(stored_count(&app, "everything").await, 1);
}

#[tokio::test]
async fn the_graphql_mutation_asks_for_the_same_credential() {
    let app = app_with_tokens("graphql-mutation", &["publish"]).await;
    let mutation =
        json!({"query": "mutation { publish(input: {longitude: 18.06, latitude: 59.33}) { id } }"});
    let answer = |token: Option<&'static str>| {
        let mut request = app.http.post(app.url("/graphql")).json(&mutation);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let response = request.send().await.expect("POST /graphql");
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.expect("a GraphQL answer")
        }
    };
    let missing = answer(None).await;
    assert_eq!(missing["errors"][0]["extensions"]["code"], "unauthorized");
    assert_eq!(missing["data"], Value::Null);
    let forbidden = answer(Some("read-only")).await;
    assert_eq!(forbidden["errors"][0]["extensions"]["code"], "forbidden");
    let ok = answer(Some("pub-all")).await;
    assert!(ok["errors"].is_null(), "{ok}");
    assert!(ok["data"]["publish"]["id"].is_string());
    assert_eq!(stored_count(&app, "everything").await, 1);
}

#[tokio::test]
async fn protected_reading_needs_a_token_on_every_transport() {
    let app = app_with_tokens("subscribe", &["publish", "subscribe"]).await;

    // HTTP reads.
    for path in ["/longlat/history", "/longlat/latest", "/events"] {
        let response = app.http.get(app.url(path)).send().await.expect("GET");
        problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let response = app
            .http
            .get(app.url(path))
            .bearer_auth("pub-all")
            .send()
            .await
            .expect("GET");
        problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }

    // A WebSocket without a token is refused before the upgrade.
    let refused = tokio_tungstenite::connect_async(app.ws_url("/ws")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
        }
        other => panic!("expected 401, got {other:?}"),
    }
    // Browsers pass it in the URL; others in the header.
    let mut by_query = app.subscribe("/ws?access_token=read-only").await;
    let mut request = app.ws_url("/ws").into_client_request().expect("a request");
    request.headers_mut().insert(
        "authorization",
        "Bearer everything".parse().expect("a header"),
    );
    let (socket, _) = within("the handshake", tokio_tungstenite::connect_async(request))
        .await
        .expect("a WebSocket with a bearer header");
    let mut by_header = crate::test_app::WsClient { socket };
    let sse = app
        .http
        .get(app.url("/events?access_token=read-only"))
        .send()
        .await
        .expect("GET /events");
    assert_eq!(sse.status(), 200);

    // GraphQL over HTTP (refused before the document is read: every
    // operation needs a token) and over WebSocket.
    let query = app
        .http
        .post(app.url("/graphql"))
        .json(&json!({"query": "{ latest { id } }"}))
        .send()
        .await
        .expect("POST /graphql");
    problem(query, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let mut anonymous = app.graphql_subscribe(POSITIONS, json!({}));
    assert_eq!(anonymous.close_code().await, 4401);
    let mut publisher = app.graphql_subscribe_with(
        POSITIONS,
        json!({}),
        json!({"authorization": "Bearer pub-all"}),
    );
    assert_eq!(publisher.close_code().await, 4403);
    let mut reader =
        app.graphql_subscribe_with(POSITIONS, json!({}), json!({"token": "read-only"}));
    // The subscription is live once it sees an event; keep publishing until then.
    let seen = within("the authorised GraphQL subscriber's first event", async {
        loop {
            let published = post(&app, Some("pub-all"), STOCKHOLM()).await;
            assert_eq!(published.status(), StatusCode::CREATED);
            if let Some(position) = reader
                .position_within(std::time::Duration::from_millis(200))
                .await
            {
                return position;
            }
        }
    })
    .await;
    assert_eq!(seen["latitude"], 59.33);
    let first_ws = by_query.next_json().await;
    assert_eq!(first_ws["latitude"], 59.33);
    assert_eq!(by_header.next_json().await["id"], first_ws["id"]);
}

#[tokio::test]
async fn an_address_that_keeps_presenting_wrong_tokens_is_refused_for_a_while_on_every_transport() {
    let app = app_with_tokens("guessing", &["publish", "subscribe"]).await;
    // The default limit: 20 refused credentials per minute per address.
    for i in 0..20 {
        let guess = format!("guess-{i}");
        problem(
            post(&app, Some(&guess), STOCKHOLM()).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
    }
    let refused = post(&app, Some("guess-20"), STOCKHOLM()).await;
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;

    // From then on no credential from this address is looked at, valid or
    // not, wherever it is presented.
    problem(
        post(&app, Some("everything"), STOCKHOLM()).await,
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
    )
    .await;
    let by_query = app
        .http
        .get(app.url("/events?access_token=read-only"))
        .send()
        .await
        .expect("GET /events");
    problem(by_query, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;
    let mut request = app.ws_url("/ws").into_client_request().expect("a request");
    request.headers_mut().insert(
        "authorization",
        "Bearer everything".parse().expect("a header"),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert!(response.headers().contains_key("retry-after"));
        }
        other => panic!("expected 429, got {other:?}"),
    }
    // Every GraphQL operation needs a credential here: refused before the
    // document is read.
    let graphql = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth("everything")
        .json(&json!({"query": "{ latest { id } }"}))
        .send()
        .await
        .expect("POST /graphql");
    problem(graphql, StatusCode::TOO_MANY_REQUESTS, "rate-limited").await;
    let mut reader =
        app.graphql_subscribe_with(POSITIONS, json!({}), json!({"token": "read-only"}));
    assert_eq!(reader.close_code().await, 4429);
}

fn jwt(algorithm: Algorithm, key: &EncodingKey, claims: Value) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), &claims, key).expect("sign a JWT")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn key_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/api/keys/{name}"))
}

#[tokio::test]
async fn hs256_jwts_are_checked_for_signature_expiry_not_before_and_audience() {
    let app = spawn_app_with(|c| {
        c.jwt_secret = Some("test-secret".into());
        c.jwt_audience = Some("longlat".into());
    })
    .await;
    let key = EncodingKey::from_secret(b"test-secret");
    let good = json!({"sub": "device-1", "aud": "longlat", "exp": now() + 600});
    let token = jwt(Algorithm::HS256, &key, good.clone());
    assert_eq!(
        post(&app, Some(&token), STOCKHOLM()).await.status(),
        StatusCode::CREATED
    );

    let mut refused = Vec::new();
    let other_key = EncodingKey::from_secret(b"another-secret");
    refused.push((
        "bad signature",
        jwt(Algorithm::HS256, &other_key, good.clone()),
    ));
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 3600);
    refused.push(("expired", jwt(Algorithm::HS256, &key, expired)));
    let mut early = good.clone();
    early["nbf"] = json!(now() + 3600);
    refused.push(("not yet valid", jwt(Algorithm::HS256, &key, early)));
    let mut wrong_audience = good.clone();
    wrong_audience["aud"] = json!("someone-else");
    refused.push((
        "wrong audience",
        jwt(Algorithm::HS256, &key, wrong_audience),
    ));
    let mut no_audience = good.clone();
    no_audience.as_object_mut().unwrap().remove("aud");
    refused.push(("no audience", jwt(Algorithm::HS256, &key, no_audience)));
    let mut no_expiry = good.clone();
    no_expiry.as_object_mut().unwrap().remove("exp");
    refused.push(("no expiry", jwt(Algorithm::HS256, &key, no_expiry)));
    for (what, token) in refused {
        let response = post(&app, Some(&token), STOCKHOLM()).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        let body: Value = response.json().await.expect("a problem");
        assert_eq!(body["code"], "unauthorized", "{what}: {body}");
    }

    // Claims restrict what a valid token may do.
    let mut subscriber = good.clone();
    subscriber["scope"] = json!("subscribe");
    let token = jwt(Algorithm::HS256, &key, subscriber);
    problem(
        post(&app, Some(&token), STOCKHOLM()).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let mut one_tracker = good;
    one_tracker["trackers"] = json!(["ferry-3"]);
    let token = jwt(Algorithm::HS256, &key, one_tracker);
    let mut body = STOCKHOLM();
    body["tracker"] = "ferry-3".into();
    assert_eq!(
        post(&app, Some(&token), body.clone()).await.status(),
        StatusCode::CREATED
    );
    body["tracker"] = "ferry-4".into();
    problem(
        post(&app, Some(&token), body).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn with_an_issuer_and_audience_configured_a_jwt_lacking_either_claim_is_401() {
    let app = spawn_app_with(|c| {
        c.jwt_secret = Some("test-secret".into());
        c.jwt_issuer = Some("https://auth.example".into());
        c.jwt_audience = Some("longlat".into());
    })
    .await;
    let key = EncodingKey::from_secret(b"test-secret");
    let good =
        json!({"sub": "d", "iss": "https://auth.example", "aud": "longlat", "exp": now() + 600});
    let token = jwt(Algorithm::HS256, &key, good.clone());
    assert_eq!(
        post(&app, Some(&token), STOCKHOLM()).await.status(),
        StatusCode::CREATED
    );
    for claim in ["iss", "aud"] {
        let mut lacking = good.clone();
        lacking.as_object_mut().unwrap().remove(claim);
        let token = jwt(Algorithm::HS256, &key, lacking);
        let body = problem(
            post(&app, Some(&token), STOCKHOLM()).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        )
        .await;
        assert!(
            body["detail"].as_str().unwrap().contains(claim),
            "the refusal names the missing {claim}: {body}"
        );
    }

    let issuer_only = spawn_app_with(|c| {
        c.jwt_secret = Some("test-secret".into());
        c.jwt_issuer = Some("https://auth.example".into());
    })
    .await;
    let token = jwt(
        Algorithm::HS256,
        &key,
        json!({"sub": "d", "exp": now() + 600}),
    );
    problem(
        post(&issuer_only, Some(&token), STOCKHOLM()).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn rs256_and_es256_jwts_are_checked_with_the_public_key() {
    for (public, private, algorithm) in [
        ("rsa-public.pem", "rsa-private.pem", Algorithm::RS256),
        ("ec-public.pem", "ec-private.pem", Algorithm::ES256),
    ] {
        let public = key_path(public);
        let app = spawn_app_with(|c| c.jwt_public_key = Some(public)).await;
        let pem = std::fs::read(key_path(private)).expect("a private key");
        let key = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
            _ => EncodingKey::from_ec_pem(&pem),
        }
        .expect("a signing key");
        let token = jwt(algorithm, &key, json!({"sub": "d", "exp": now() + 600}));
        assert_eq!(
            post(&app, Some(&token), STOCKHOLM()).await.status(),
            StatusCode::CREATED,
            "{algorithm:?}"
        );
        // A token signed with a shared secret is refused: no secret is configured,
        // so HS256 cannot be used to forge a token with the public key.
        let forged = jwt(
            Algorithm::HS256,
            &EncodingKey::from_secret(&std::fs::read(key_path("rsa-public.pem")).unwrap()),
            json!({"sub": "d", "exp": now() + 600}),
        );
        let response = post(&app, Some(&forged), STOCKHOLM()).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{algorithm:?}");
    }
}

#[tokio::test]
async fn a_server_with_a_token_file_it_cannot_use_does_not_start() {
    let bad = tokens_file("bad", "some-token publsh\n");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_longlat"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--broker",
            "memory",
            "--tokens-file",
        ])
        .arg(&bad)
        .output();
    let output = within("the server to refuse to start", output)
        .await
        .expect("run longlat");
    assert!(!output.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(said.contains("line 1"), "{said}");
    assert!(!said.contains("some-token"), "{said}");
}

#[tokio::test]
async fn with_every_operation_protected_a_graphql_document_is_not_read_without_a_credential() {
    let app = app_with_tokens("graphql-before-parse", &["publish", "subscribe"]).await;
    // Fragments that double at each level: refused unread, so at no cost.
    let hostile = doubling("query { ...F0 }", "Query", 30, "latest { id }");
    for token in [None, Some("not-a-token")] {
        let mut request = app
            .http
            .post(app.url("/graphql"))
            .json(&json!({ "query": hostile }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST /graphql");
        problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;

        let mut request = app.http.get(app.url(&graphql_get(&hostile)));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("GET /graphql");
        problem(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
    // A token that may only publish still sends mutations.
    let mutation =
        json!({"query": "mutation { publish(input: {longitude: 1, latitude: 2}) { id } }"});
    let response = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth("pub-all")
        .json(&mutation)
        .send()
        .await
        .expect("POST /graphql");
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert!(answer["data"]["publish"]["id"].is_string(), "{answer}");
}
