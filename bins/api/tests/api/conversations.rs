use crate::helpers::*;
use rh_protocol::Event;
use serde_json::json;

#[tokio::test]
async fn create_list_get_delete() {
    let app = spawn_app().await;
    let team = team(&app).await;

    // Created with the same shape GET returns.
    let (s, created) = app
        .api
        .as_user(&team.ben)
        .post("/conversations", json!({"title": "  Launch plan ", "model": "sim-2"}))
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 201, "{created}");
    assert_eq!(created["title"], "Launch plan");
    assert_eq!(created["model"], "sim-2");
    assert_eq!(created["permission"], "owner");
    assert_eq!(created["owner_id"], team.ben.user_id.to_string());
    assert!(created["seq"].is_u64());
    for field in ["messages", "participants", "attachments"] {
        assert_eq!(created[field], json!([]), "{field}");
    }
    let id: uuid::Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let (s, got) = app.api.as_user(&team.ben).get(&format!("/conversations/{id}")).await.unwrap();
    assert_eq!(s.as_u16(), 200);
    assert_eq!(got["id"], created["id"]);
    assert_eq!(got["title"], "Launch plan");

    // No body at all: defaults.
    let (client, base, _) = app.api.raw();
    let r = client.post(format!("{base}/conversations")).bearer_auth(&team.ben.token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let untitled: serde_json::Value = r.json().await.unwrap();
    assert_eq!(untitled["title"], "New conversation");
    assert_eq!(untitled["model"], "sim-1");
    let (s, v) = app.api.as_user(&team.ben).post("/conversations", json!({"title": "a\nb"})).await.unwrap();
    assert_error(s, &v, 400, "bad_request");
    let (s, v) = app.api.as_user(&team.ben).post("/conversations", json!({"model": "not a model!"})).await.unwrap();
    assert_error(s, &v, 400, "bad_request");

    // The conversation.created event is on the stream, first.
    let events = conv_events(&app, id).await;
    let (_, first) = &events[0];
    assert!(
        matches!(&first.event, Event::ConversationCreated { owner_id, title, settings } if *owner_id == team.ben.user_id && title == "Launch plan" && settings.model == "sim-2")
    );

    // The sidebar: newest first, with my permission; shared ones say so.
    app.api.share(&team.ben, id, &team.cy, "view").await.unwrap();
    let (s, list) = app.api.as_user(&team.ben).get("/conversations").await.unwrap();
    assert_eq!(s.as_u16(), 200);
    let convs = list["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 2);
    assert_eq!(convs[0]["id"], untitled["id"], "newest first");
    assert_eq!(convs[1]["permission"], "owner");
    assert_eq!(convs[1]["shared"], false);
    let (_, list) = app.api.as_user(&team.cy).get("/conversations").await.unwrap();
    let convs = list["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0]["id"], id.to_string());
    assert_eq!(convs[0]["permission"], "view");
    assert_eq!(convs[0]["shared"], true);
    assert_eq!(convs[0]["owner_name"], "Ben Okafor");
    // Ada (an admin, but not shared with) sees nothing of Ben's in her sidebar.
    let (_, list) = app.api.as_user(&team.ada).get("/conversations").await.unwrap();
    assert_eq!(list["conversations"], json!([]));

    // Only the owner deletes; a participant gets 403, an outsider 404.
    let (s, v) = app.api.as_user(&team.cy).delete(&format!("/conversations/{id}")).await.unwrap();
    assert_error(s, &v, 403, "forbidden");
    let (s, v) = app.api.as_user(&team.ada).delete(&format!("/conversations/{id}")).await.unwrap();
    assert_error(s, &v, 404, "not_found");
    let mut cy_inbox = Inbox::open(&app.nc, team.cy.user_id).await;
    let (s, _) = app.api.as_user(&team.ben).delete(&format!("/conversations/{id}")).await.unwrap();
    assert_eq!(s.as_u16(), 204);
    let m = cy_inbox.next_where(|m| m.action == rh_protocol::frame::SidebarAction::Deleted).await;
    assert_eq!(m.conversation_id, id);
    for who in [&team.ben, &team.cy] {
        let (s, v) = app.api.as_user(who).get(&format!("/conversations/{id}")).await.unwrap();
        assert_error(s, &v, 404, "not_found");
    }
    let (_, list) = app.api.as_user(&team.cy).get("/conversations").await.unwrap();
    assert_eq!(list["conversations"], json!([]));
    let (s, _) = app.api.as_user(&team.ben).delete(&format!("/conversations/{id}")).await.unwrap();
    assert_eq!(s.as_u16(), 404, "deleting twice");
    // Its erasure is queued, with who asked (e2e/tests/e2e/erasure.rs checks what it erases).
    let pg = app.db.connect().await.unwrap();
    let job =
        pg.query_one("SELECT requested_by, reason FROM erase_jobs WHERE conversation_id = $1", &[&id]).await.unwrap();
    assert_eq!(job.get::<_, Option<uuid::Uuid>>(0), Some(team.ben.user_id));
    assert_eq!(job.get::<_, String>(1), "deleted");
}

#[tokio::test]
async fn conversations_nobody_shared_are_invisible() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let gil = outsider(&app).await;
    let conv = app.api.create_conversation(&team.ben, "Private").await.unwrap();
    // A teammate, the org admin, another org: all 404 — the same as an id that never existed.
    for who in [&team.cy, &team.ada, &gil] {
        let (s, v) = app.api.as_user(who).get(&format!("/conversations/{conv}")).await.unwrap();
        assert_error(s, &v, 404, "not_found");
    }
    let (s, never) = app.api.as_user(&team.ben).get(&format!("/conversations/{}", uuid::Uuid::new_v4())).await.unwrap();
    assert_error(s, &never, 404, "not_found");
    let (_, hidden) = app.api.as_user(&team.cy).get(&format!("/conversations/{conv}")).await.unwrap();
    assert_eq!(hidden, never, "existence is never revealed");
    let (s, v) = app.api.as_user(&team.ben).get("/conversations/not-a-uuid").await.unwrap();
    assert_error(s, &v, 404, "not_found");
}

/// The sidebar in pages: newest first, every conversation once across the pages (own and shared), even when
/// new ones are created between pages; a bad limit or cursor is a 400.
#[tokio::test]
async fn the_sidebar_comes_in_pages_newest_first() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let mut made = Vec::new();
    for i in 0..7 {
        // Ben's own, and every third one Ada's shared with him.
        let id = if i % 3 == 2 {
            let id = app.api.create_conversation(&team.ada, &format!("Shared {i}")).await.unwrap();
            app.api.share(&team.ada, id, &team.ben, "view").await.unwrap();
            id
        } else {
            app.api.create_conversation(&team.ben, &format!("Own {i}")).await.unwrap()
        };
        made.push(id.to_string());
    }
    let ben = app.api.as_user(&team.ben);
    let (s, first) = ben.get("/conversations?limit=3").await.unwrap();
    assert_eq!(s.as_u16(), 200, "{first}");
    let mut seen: Vec<String> = Vec::new();
    let mut page = first;
    let mut pages = 0;
    loop {
        pages += 1;
        let items = page["conversations"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|c| c["id"].as_str().unwrap().to_owned()));
        if pages == 1 {
            // Created after the first page: it belongs before it, never on a later page.
            app.api.create_conversation(&team.ben, "Newer").await.unwrap();
        }
        let Some(next) = page["next_before"].as_str() else { break };
        let (s, p) = ben.get(&format!("/conversations?limit=3&before={next}")).await.unwrap();
        assert_eq!(s.as_u16(), 200, "{p}");
        page = p;
    }
    made.reverse();
    assert_eq!(seen, made, "newest first, each once");
    assert_eq!(pages, 3);
    let (_, all) = ben.get("/conversations").await.unwrap();
    assert_eq!(all["conversations"].as_array().unwrap().len(), 8);
    assert!(all["next_before"].is_null());

    for bad in ["limit=0", "limit=501", "before=yesterday", "before=12_x", "order=asc"] {
        let (s, v) = ben.get(&format!("/conversations?{bad}")).await.unwrap();
        assert_error(s, &v, 400, "bad_request");
    }
}

/// The owner renames a conversation: the event reaches the stream (live headers) and every participant's sidebar
/// is told; Can Respond and View Only are refused (403), a stranger gets 404, a blank title 400.
#[tokio::test]
async fn the_owner_renames_and_every_participant_is_told() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let gil = outsider(&app).await;
    let conv = shared_conversation(&app, &team, "Draft").await;
    let path = format!("/conversations/{conv}");
    let mut cy_inbox = Inbox::open(&app.nc, team.cy.user_id).await;

    let (s, v) = app.api.as_user(&team.ada).patch(&path, json!({"title": "  Launch plan v2 "})).await.unwrap();
    assert_eq!(s.as_u16(), 200, "{v}");
    assert_eq!(v["title"], "Launch plan v2");
    let seq = v["seq"].as_u64().expect("seq of the event");
    let events = conv_events(&app, conv).await;
    let (_, env) = events.iter().find(|(s, _)| *s == seq).expect("the event in the stream");
    assert_eq!(
        env.event,
        Event::ConversationRenamed {
            renamed_by: team.ada.user_id,
            renamed_by_name: "Ada Lovelace".into(),
            title: "Launch plan v2".into(),
            from_first_message: false,
        }
    );
    let m = cy_inbox.next_where(|m| m.action == rh_protocol::frame::SidebarAction::Changed).await;
    assert_eq!(m.conversation.map(|c| c.title), Some("Launch plan v2".to_owned()));
    let (_, got) = app.api.as_user(&team.cy).get(&path).await.unwrap();
    assert_eq!(got["title"], "Launch plan v2");

    // The same title again changes nothing.
    let (s, v) = app.api.as_user(&team.ada).patch(&path, json!({"title": "Launch plan v2"})).await.unwrap();
    assert_eq!((s.as_u16(), &v["seq"]), (200, &serde_json::Value::Null));

    for who in [&team.ben, &team.cy] {
        let (s, v) = app.api.as_user(who).patch(&path, json!({"title": "Mine now"})).await.unwrap();
        assert_error(s, &v, 403, "forbidden");
    }
    let (s, v) = app.api.as_user(&gil).patch(&path, json!({"title": "Mine now"})).await.unwrap();
    assert_error(s, &v, 404, "not_found");
    for bad in [json!({"title": "  "}), json!({"title": "a\nb"}), json!({"name": "x"}), json!({})] {
        let (s, v) = app.api.as_user(&team.ada).patch(&path, bad.clone()).await.unwrap();
        assert_error(s, &v, 400, "bad_request");
    }
    let (_, got) = app.api.as_user(&team.ada).get(&path).await.unwrap();
    assert_eq!(got["title"], "Launch plan v2", "refused renames changed nothing");
}
