use crate::helpers::*;

#[tokio::test]
async fn admins_see_metadata_and_audit_but_never_content() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let gil = outsider(&app).await;
    let secret = "the-secret-acquisition-plan";
    let conv = app.api.create_conversation(&team.ben, "Q3 plans").await.unwrap();
    app.api.share(&team.ben, conv, &team.cy, "view").await.unwrap();
    app.api.send_message(&team.ben, conv, secret).await.unwrap();
    app.api
        .as_user(&team.ben)
        .patch(&format!("/conversations/{conv}/settings"), serde_json::json!({"system_prompt": secret}))
        .await
        .unwrap();
    apply_transcript(&app, conv).await;
    app.api.create_conversation(&gil, "Globex only").await.unwrap();

    let (s, v) = app.api.as_user(&team.ada).get("/admin/conversations").await.unwrap();
    assert_eq!(s.as_u16(), 200, "{v}");
    assert!(!v.to_string().contains(secret), "no content in the admin view: {v}");
    let list = v["conversations"].as_array().unwrap();
    assert_eq!(list.len(), 1, "only Acme's conversations: {v}");
    let c = &list[0];
    assert_eq!(c["id"], conv.to_string());
    assert_eq!(c["title"], "Q3 plans");
    assert_eq!(c["owner"]["id"], team.ben.user_id.to_string());
    assert_eq!(c["owner"]["name"], "Ben Okafor");
    assert_eq!(c["participants"][0]["user_id"], team.cy.user_id.to_string());
    assert_eq!(c["participants"][0]["permission"], "view");
    assert_eq!(c["message_count"], 1);
    assert_eq!(c["deleted"], false);

    // The audit log: who did what, never the text.
    let (s, v) = app.api.as_user(&team.ada).get(&format!("/admin/audit?conversation_id={conv}")).await.unwrap();
    assert_eq!(s.as_u16(), 200, "{v}");
    assert!(!v.to_string().contains(secret), "{v}");
    let actions: Vec<_> =
        v["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect();
    assert_eq!(actions, ["conversation.created", "participant.added", "message.created", "settings.changed"]);
    assert_eq!(v["entries"][2]["actor_name"], "Ben Okafor");
    let (_, later) = app.api.as_user(&team.ada).get("/admin/audit?since=2999-01-01T00:00:00Z").await.unwrap();
    assert_eq!(later["entries"], serde_json::json!([]));
    let (s, v) = app.api.as_user(&team.ada).get("/admin/audit?since=yesterday").await.unwrap();
    assert_error(s, &v, 400, "bad_request");

    // Being admin does not open the content itself.
    let (s, _) = app.api.as_user(&team.ada).get(&format!("/conversations/{conv}")).await.unwrap();
    assert_eq!(s.as_u16(), 404);
    // Members are refused; Gil (admin of Globex) sees nothing of Acme.
    for path in ["/admin/conversations", "/admin/audit"] {
        let (s, v) = app.api.as_user(&team.ben).get(path).await.unwrap();
        assert_error(s, &v, 403, "forbidden");
    }
    let (_, v) = app.api.as_user(&gil).get(&format!("/admin/audit?conversation_id={conv}")).await.unwrap();
    assert_eq!(v["entries"], serde_json::json!([]));
}
