//! `GET /search` (issue 14): titles and message text of the conversations the caller can see, ranked and paged;
//! a revoked person, a teammate it was never shared with and another org find nothing.

use crate::helpers::*;
use serde_json::Value;

async fn search(app: &App, who: &rh_testkit::Session, query: &str) -> (u16, Value) {
    let (s, v) = app.api.as_user(who).get(&format!("/search?{query}")).await.unwrap();
    (s.as_u16(), v)
}

fn conversations_found(v: &Value) -> Vec<String> {
    v["results"].as_array().unwrap().iter().map(|h| h["conversation_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn search_finds_only_what_the_caller_can_see() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let gil = outsider(&app).await;
    let dee =
        app.api.add_member(&team.ada, "Dee Ramos", &format!("dee-{}@acme.test", tag()), "pw-dee-123456").await.unwrap();
    let shared = shared_conversation(&app, &team, "Quarterly roadmap").await;
    let private = app.api.create_conversation(&team.ada, "Private notes").await.unwrap();
    let gils = app.api.create_conversation(&gil, "Zebra roadmap at Globex").await.unwrap();
    app.api.send_message(&team.ben, shared, "The zebra migration plan, step one").await.unwrap();
    app.api.send_message(&team.ada, private, "zebra: the secret budget").await.unwrap();
    app.api.send_message(&gil, gils, "zebra zebra zebra").await.unwrap();
    for conv in [shared, private, gils] {
        apply_transcript(&app, conv).await;
    }

    // Ada sees both of hers, best first; the other org's never.
    let (s, v) = search(&app, &team.ada, "q=zebra").await;
    assert_eq!(s, 200, "{v}");
    let found = conversations_found(&v);
    assert_eq!(found.len(), 2, "{v}");
    assert!(found.contains(&shared.to_string()) && found.contains(&private.to_string()), "{v}");
    let hit = &v["results"][0];
    assert!(hit["snippet"].as_str().unwrap().contains("[[zebra]]"), "{v}");
    assert!(hit["message_id"].is_string() && hit["seq"].is_i64(), "{v}");

    // Ben and Cy see the shared one only (View Only may search what it can read).
    for who in [&team.ben, &team.cy] {
        let (_, v) = search(&app, who, "q=zebra").await;
        assert_eq!(conversations_found(&v), vec![shared.to_string()], "{v}");
    }
    // Titles match too.
    let (_, v) = search(&app, &team.cy, "q=roadmap").await;
    assert_eq!(conversations_found(&v), vec![shared.to_string()], "{v}");
    assert!(v["results"][0]["message_id"].is_null(), "a title hit: {v}");

    // Nothing for a teammate it was never shared with, nor for the other org (whose own conversation matches).
    let (_, v) = search(&app, &dee, "q=zebra").await;
    assert_eq!(v["results"], serde_json::json!([]), "{v}");
    let (_, v) = search(&app, &gil, "q=migration%20plan").await;
    assert_eq!(v["results"], serde_json::json!([]), "{v}");
    let (_, v) = search(&app, &gil, "q=zebra").await;
    assert_eq!(conversations_found(&v), vec![gils.to_string(); 2], "its title, then its message: {v}");

    // Revoked: nothing more.
    let (s, _) = app
        .api
        .as_user(&team.ada)
        .delete(&format!("/conversations/{shared}/shares/{}", team.ben.user_id))
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 204);
    let (_, v) = search(&app, &team.ben, "q=zebra").await;
    assert_eq!(v["results"], serde_json::json!([]), "{v}");
}

#[tokio::test]
async fn search_pages_and_refuses_bad_input() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let conv = app.api.create_conversation(&team.ada, "Pages").await.unwrap();
    for i in 0..3 {
        app.api.send_message(&team.ada, conv, &format!("falcon number {i}")).await.unwrap();
    }
    apply_transcript(&app, conv).await;

    let (_, first) = search(&app, &team.ada, "q=falcon&limit=2").await;
    assert_eq!(first["results"].as_array().unwrap().len(), 2, "{first}");
    assert_eq!(first["next_offset"], 2);
    let (_, second) = search(&app, &team.ada, "q=falcon&limit=2&offset=2").await;
    assert_eq!(second["results"].as_array().unwrap().len(), 1, "{second}");
    assert!(second["next_offset"].is_null());
    let mut ids: Vec<_> = [&first, &second]
        .iter()
        .flat_map(|p| p["results"].as_array().unwrap().iter().map(|h| h["message_id"].clone()))
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "no message twice across pages");
    // Web search syntax: a phrase, an exclusion; words that are not operators are just words.
    let (_, v) = search(&app, &team.ada, "q=%22number%201%22").await;
    assert_eq!(v["results"].as_array().unwrap().len(), 1, "{v}");
    let (_, v) = search(&app, &team.ada, "q=falcon%20-1%20-2").await;
    assert_eq!(v["results"].as_array().unwrap().len(), 1, "{v}");
    let (s, v) = search(&app, &team.ada, "q=%28%28%20%26%20!").await;
    assert_eq!(s, 200, "odd punctuation is not an error: {v}");

    for bad in ["", "q=", "q=%20%20", "q=a&limit=0", "q=a&limit=51", "q=a&offset=1001", "q=a&limit=x", "q=a&nope=1"] {
        let (s, v) = app.api.as_user(&team.ada).get(&format!("/search?{bad}")).await.unwrap();
        assert_error(s, &v, 400, "bad_request");
    }
    let long = "x".repeat(201);
    let (s, v) = app.api.as_user(&team.ada).get(&format!("/search?q={long}")).await.unwrap();
    assert_error(s, &v, 400, "bad_request");
    let (s, v) = app.api.get("/search?q=falcon").await.unwrap();
    assert_error(s, &v, 401, "unauthorized");
}
