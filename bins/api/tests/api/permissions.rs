use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

/// Every write on a conversation, as (method, path suffix, JSON body).
fn writes(ben: uuid::Uuid) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::POST, "/messages".into(), Some(json!({"text": "hello"}))),
        (Method::POST, "/stop".into(), Some(json!({}))),
        (Method::PATCH, "/settings".into(), Some(json!({"model": "sim-2"}))),
        (Method::POST, "/shares".into(), Some(json!({"shares": [{"user_id": ben, "permission": "view"}]}))),
        (Method::PATCH, format!("/shares/{ben}"), Some(json!({"permission": "view"}))),
        (Method::DELETE, format!("/shares/{ben}"), None),
        (Method::DELETE, String::new(), None),
    ]
}

async fn upload(app: &App, who: &rh_testkit::Session, conv: uuid::Uuid) -> (u16, Value) {
    let (client, base, _) = app.api.raw();
    let part =
        reqwest::multipart::Part::bytes(b"notes".to_vec()).file_name("notes.txt").mime_str("text/plain").unwrap();
    let r = client
        .post(format!("{base}/conversations/{conv}/attachments"))
        .bearer_auth(&who.token)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn view_only_can_read_but_every_write_is_forbidden() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let conv = shared_conversation(&app, &team, "Review").await;
    let before = conv_events(&app, conv).await.len();

    for (method, suffix, body) in writes(team.ben.user_id) {
        let (s, v) = app
            .api
            .as_user(&team.cy)
            .send(method.clone(), &format!("/conversations/{conv}{suffix}"), body)
            .await
            .unwrap();
        assert_error(s, &v, 403, "forbidden");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("view-only")
                || v["error"]["message"].as_str().unwrap().contains("owner"),
            "{method} {suffix}: {v}"
        );
    }
    let (s, v) = upload(&app, &team.cy, conv).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "forbidden");
    assert_eq!(conv_events(&app, conv).await.len(), before, "no refused write reached the stream");

    // Reading works.
    let v = app.api.conversation(&team.cy, conv).await.unwrap();
    assert_eq!(v["permission"], "view");
    let (s, _) = app.api.as_user(&team.cy).get(&format!("/conversations/{conv}/shares")).await.unwrap();
    assert_eq!(s.as_u16(), 200);

    // Can Respond may send, stop, change settings and attach — but not share or delete.
    let (s, v) = app
        .api
        .as_user(&team.ben)
        .post(&format!("/conversations/{conv}/messages"), json!({"text": "hi"}))
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 202, "{v}");
    let (s, _) = app.api.as_user(&team.ben).post(&format!("/conversations/{conv}/stop"), json!({})).await.unwrap();
    assert_eq!(s.as_u16(), 202);
    let (s, _) = app
        .api
        .as_user(&team.ben)
        .patch(&format!("/conversations/{conv}/settings"), json!({"temperature": 0.5}))
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 200);
    assert_eq!(upload(&app, &team.ben, conv).await.0, 201);
    let (s, _) = app.api.as_user(&team.ben).delete(&format!("/conversations/{conv}")).await.unwrap();
    assert_eq!(s.as_u16(), 403);
}

#[tokio::test]
async fn people_without_a_share_get_404_on_every_path() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let gil = outsider(&app).await;
    let conv = app.api.create_conversation(&team.ben, "Secret").await.unwrap();
    app.api.share(&team.ben, conv, &team.cy, "view").await.unwrap();
    let attachment = {
        let (s, v) = upload(&app, &team.ben, conv).await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().unwrap().to_owned()
    };
    let before = conv_events(&app, conv).await.len();

    // Ada is the org admin but it is not shared with her; Gil is in another org.
    for who in [&team.ada, &gil] {
        let mut paths: Vec<(Method, String, Option<Value>)> = writes(team.cy.user_id);
        paths.push((Method::GET, String::new(), None));
        paths.push((Method::GET, "/shares".into(), None));
        paths.push((Method::GET, format!("/attachments/{attachment}"), None));
        for (method, suffix, body) in paths {
            let (s, v) = app
                .api
                .as_user(who)
                .send(method.clone(), &format!("/conversations/{conv}{suffix}"), body)
                .await
                .unwrap();
            assert_error(s, &v, 404, "not_found");
        }
        let (s, v) = upload(&app, who, conv).await;
        assert_eq!((s, v["error"]["code"].as_str()), (404, Some("not_found")));
    }
    assert_eq!(conv_events(&app, conv).await.len(), before);
}
