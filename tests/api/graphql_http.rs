//! Queries and mutations over HTTP on /graphql, the limits that protect a
//! public endpoint, and GraphiQL in a browser with no internet.

use serde_json::{Value, json};

use crate::node_client::NodeClient;
use crate::test_app::{TestApp, spawn_app, spawn_app_with};

async fn get_graphql(app: &TestApp, query: &str) -> reqwest::Response {
    let encoded = serde_urlencoded::to_string([("query", query)]).unwrap();
    app.http
        .get(app.url(&format!("/graphql?{encoded}")))
        .send()
        .await
        .expect("GET /graphql")
}

#[tokio::test]
async fn a_position_published_by_the_mutation_is_stored_like_one_posted_with_curl() {
    let app = spawn_app().await;
    let answer = app
        .graphql(
            "mutation($input: PositionInput!) { publish(input: $input) { id longitude latitude tracker receivedAt } }",
            json!({ "input": { "longitude": 18.06324, "latitude": 59.334591, "tracker": "bus-1" } }),
        )
        .await;
    let event = &answer["data"]["publish"];
    assert_eq!(event["tracker"], "bus-1");
    let stored: Value = app
        .get_json(&format!("/longlat/{}", event["id"].as_str().unwrap()))
        .await;
    assert_eq!(stored["receivedAt"], event["receivedAt"]);
    assert_eq!(stored["latitude"], 59.334591);

    let response = get_graphql(&app, "{ latest { id } }").await;
    assert_eq!(response.status(), 200);
    let latest: Value = response.json().await.unwrap();
    assert_eq!(latest["data"]["latest"]["id"], event["id"]);
}

#[tokio::test]
async fn an_invalid_position_is_an_error_naming_the_field_and_nothing_is_published() {
    let app = spawn_app().await;
    let answer = app
        .graphql(
            "mutation { publish(input: {longitude: 10, latitude: 91}) { id } }",
            json!({}),
        )
        .await;
    let error = &answer["errors"][0];
    assert_eq!(error["extensions"]["code"], "invalid-position");
    assert_eq!(error["extensions"]["field"], "latitude");
    assert_eq!(error["path"], json!(["publish"]));
    assert_eq!(answer["data"], Value::Null);

    let bad_tracker = app
        .graphql(
            "mutation { publish(input: {longitude: 1, latitude: 1, tracker: \"no spaces\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(bad_tracker["errors"][0]["extensions"]["field"], "tracker");

    let latest = app.graphql("{ latest { id } }", json!({})).await;
    assert_eq!(
        latest["data"]["latest"],
        Value::Null,
        "nothing was published"
    );
}

#[tokio::test]
async fn a_body_that_is_not_one_graphql_request_is_a_problem_document() {
    let app = spawn_app().await;
    let post = |body: String| {
        app.http
            .post(app.url("/graphql"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let not_json = post("{ latest { id } }".into()).await.unwrap();
    assert_eq!(not_json.status(), 400);
    let problem: Value = not_json.json().await.unwrap();
    assert_eq!(problem["code"], "malformed-body");

    let huge = json!({ "query": format!("{{ latest {{ id }} }} #{}", "x".repeat(20_000)) });
    let too_large = post(huge.to_string()).await.unwrap();
    assert_eq!(too_large.status(), 413);
}

#[tokio::test]
async fn history_pages_through_recent_events_with_a_bounded_limit() {
    let app = spawn_app_with(|c| c.history_size = 4).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let event = app.publish(f64::from(i), 0.0, None).await;
        ids.push(event["id"].clone());
    }
    let query = "query($after: ID, $limit: Int) { history(after: $after, limit: $limit) { events { id } cursorTooOld } }";
    let page = app.graphql(query, json!({ "limit": 3 })).await;
    assert_eq!(
        page["data"]["history"]["events"],
        json!([{ "id": ids[2] }, { "id": ids[3] }, { "id": ids[4] }])
    );

    let next = app
        .graphql(query, json!({ "after": ids[4], "limit": 3 }))
        .await;
    assert_eq!(next["data"]["history"]["events"], json!([{ "id": ids[5] }]));
    assert_eq!(next["data"]["history"]["cursorTooOld"], false);

    let too_old = app.graphql(query, json!({ "after": ids[0] })).await;
    assert_eq!(
        too_old["data"]["history"]["cursorTooOld"], true,
        "{too_old}"
    );

    let too_many = app.graphql(query, json!({ "limit": 1001 })).await;
    assert_eq!(
        too_many["errors"][0]["extensions"]["code"],
        "invalid-parameter"
    );
    assert_eq!(too_many["errors"][0]["extensions"]["field"], "limit");
}

#[tokio::test]
async fn mutations_are_refused_over_get() {
    let app = spawn_app().await;
    let response = get_graphql(
        &app,
        "mutation { publish(input: {longitude: 1, latitude: 1}) { id } }",
    )
    .await;
    assert_eq!(response.status(), 405);
    let latest = app.graphql("{ latest { id } }", json!({})).await;
    assert_eq!(latest["data"]["latest"], Value::Null);
}

#[tokio::test]
async fn a_query_too_deep_or_too_complex_is_refused() {
    let app = spawn_app().await;
    let deep = format!(
        "{{ __schema {{ types {{ {}name{} }} }} }}",
        "ofType { ".repeat(20),
        " }".repeat(20)
    );
    let answer = app.graphql(&deep, json!({})).await;
    let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("nested too deep"), "{answer}");

    let page = "events { id longitude latitude tracker receivedAt }";
    let one_big_page = format!("{{ history(limit: 1000) {{ {page} }} }}");
    let answer = app.graphql(&one_big_page, json!({})).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    let two_big_pages =
        format!("{{ a: history(limit: 1000) {{ {page} }} b: history(limit: 1000) {{ {page} }} }}");
    let answer = app.graphql(&two_big_pages, json!({})).await;
    let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("too complex"), "{answer}");

    // Each alias costs 2 (`latest` and `id`): 510 of them cost 1,020.
    let wide: String = (0..510).map(|i| format!("a{i}:latest{{id}} ")).collect();
    let answer = app.graphql(&format!("{{ {wide} }}"), json!({})).await;
    let message = answer["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("too complex"), "{answer}");
}

#[tokio::test]
async fn graphiqls_introspection_fits_the_limits_and_every_type_and_field_is_described() {
    let app = spawn_app().await;
    let mut printer = NodeClient::start("introspection-query.mjs", &[]);
    let request = printer.next_line().await;
    let answer = app
        .graphql(request["query"].as_str().unwrap(), json!({}))
        .await;
    assert!(answer.get("errors").is_none(), "{answer}");
    let types = answer["data"]["__schema"]["types"].as_array().unwrap();
    let ours = types.iter().filter(|t| {
        let name = t["name"].as_str().unwrap();
        !name.starts_with("__") && !["String", "Float", "Int", "Boolean", "ID"].contains(&name)
    });
    for ty in ours {
        let name = &ty["name"];
        assert!(
            ty["description"].is_string(),
            "type {name} has no description"
        );
        let fields = ty["fields"].as_array().into_iter().flatten();
        let inputs = ty["inputFields"].as_array().into_iter().flatten();
        for field in fields.chain(inputs) {
            let field_name = &field["name"];
            assert!(
                field["description"].is_string(),
                "{name}.{field_name} has no description"
            );
            for arg in field["args"].as_array().into_iter().flatten() {
                assert!(
                    arg["description"].is_string(),
                    "{name}.{field_name}({}) has no description",
                    arg["name"]
                );
            }
        }
    }
}

#[tokio::test]
async fn a_browser_gets_graphiql_with_every_asset_served_locally() {
    let app = spawn_app().await;
    let page = app
        .http
        .get(app.url("/graphql"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("GraphiQL"));
    assert!(
        !html.contains("https://") && !html.contains("http://"),
        "no CDN"
    );
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|part| part.starts_with("/graphiql/"))
        .collect();
    assert_eq!(assets.len(), 5, "{assets:?}");
    for asset in assets {
        let response = app.http.get(app.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset}");
    }
    let licences = concat!(env!("CARGO_MANIFEST_DIR"), "/static/graphiql");
    for licence in [
        "LICENSE.graphiql",
        "LICENSE.react",
        "LICENSE.react-dom",
        "LICENSE.graphql-ws",
    ] {
        assert!(
            std::path::Path::new(licences).join(licence).is_file(),
            "{licence}"
        );
    }
}

#[tokio::test]
async fn a_bad_cursor_tracker_or_box_is_refused_alike_over_graphql_and_http() {
    let app = spawn_app().await;
    let cases = [
        (
            "after=yesterday",
            "{ history(after: \"yesterday\") { cursorTooOld } }",
        ),
        (
            "tracker=bus-1,a%20b",
            "{ history(tracker: [\"bus-1\", \"a b\"]) { cursorTooOld } }",
        ),
        ("tracker=a%20b", "{ latest(tracker: \"a b\") { id } }"),
        (
            "bbox=10,91,20,50",
            "{ history(bbox: {minLongitude: 10, minLatitude: 91, maxLongitude: 20, maxLatitude: 50}) { cursorTooOld } }",
        ),
    ];
    for (query_string, document) in cases {
        let path = if document.contains("latest") {
            "latest"
        } else {
            "history"
        };
        let response = app
            .http
            .get(app.url(&format!("/longlat/{path}?{query_string}")))
            .send()
            .await
            .expect("GET /longlat/history");
        assert_eq!(response.status(), 400, "{query_string}");
        let problem: Value = response.json().await.expect("a problem document");
        let answer = app.graphql(document, json!({})).await;
        let extensions = &answer["errors"][0]["extensions"];
        assert_eq!(extensions["code"], problem["code"], "{answer}");
        assert_eq!(extensions["field"], problem["field"], "{answer}");
        assert_eq!(
            answer["errors"][0]["message"], problem["detail"],
            "{query_string}"
        );
    }

    // An id to look up is named as the id, not as a cursor.
    let rest: Value = app
        .http
        .get(app.url("/longlat/yesterday"))
        .send()
        .await
        .expect("GET /longlat/{id}")
        .json()
        .await
        .expect("a problem document");
    let answer = app
        .graphql("{ event(id: \"yesterday\") { id } }", json!({}))
        .await;
    assert_eq!(answer["errors"][0]["extensions"]["field"], rest["field"]);
    assert_eq!(rest["field"], "id");
}
