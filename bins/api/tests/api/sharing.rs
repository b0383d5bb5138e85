use crate::helpers::*;
use rh_protocol::frame::SidebarAction;
use rh_protocol::{Event, Permission};
use serde_json::json;

#[tokio::test]
async fn share_with_several_change_and_revoke() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let conv = app.api.create_conversation(&team.ada, "Roadmap").await.unwrap();
    let mut ben_inbox = Inbox::open(&app.nc, team.ben.user_id).await;
    let mut cy_inbox = Inbox::open(&app.nc, team.cy.user_id).await;
    let path = format!("/conversations/{conv}/shares");

    // Several people at once, each with their own permission.
    let (s, v) = app
        .api
        .as_user(&team.ada)
        .post(&path, json!({"shares": [{"user_id": team.ben.user_id, "permission": "respond"}, {"user_id": team.cy.user_id, "permission": "view"}]}))
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 200, "{v}");
    let shares = v["shares"].as_array().unwrap();
    assert_eq!(shares.len(), 2);
    let (_, listed) = app.api.as_user(&team.ada).get(&path).await.unwrap();
    assert_eq!(listed, v);
    let ben_entry = shares.iter().find(|s| s["user_id"] == team.ben.user_id.to_string()).unwrap();
    assert_eq!(ben_entry["permission"], "respond");
    assert_eq!(ben_entry["name"], "Ben Okafor");
    assert_eq!(ben_entry["email"], team.ben.email);

    // Each learns it in their sidebar, with their own permission.
    let m = ben_inbox.next().await;
    assert_eq!((m.action, m.conversation_id), (SidebarAction::Added, conv));
    let summary = m.conversation.unwrap();
    assert_eq!((summary.title.as_str(), summary.permission, summary.shared), ("Roadmap", Permission::Respond, true));
    assert_eq!(summary.owner_name, "Ada Lovelace");
    let m = cy_inbox.next().await;
    assert_eq!(m.conversation.unwrap().permission, Permission::View);

    // GET shows the participants to everyone with access.
    let v = app.api.conversation(&team.cy, conv).await.unwrap();
    assert_eq!(v["participants"].as_array().unwrap().len(), 2);
    assert_eq!(v["permission"], "view");

    // Sharing again with an existing person updates them (and only emits a change).
    let (s, _) = app
        .api
        .as_user(&team.ada)
        .post(&path, json!({"shares": [{"user_id": team.cy.user_id, "permission": "respond"}, {"user_id": team.ben.user_id, "permission": "respond"}]}))
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 200);
    assert_eq!(cy_inbox.next().await.action, SidebarAction::Changed);

    // PATCH one person.
    let (s, v) = app
        .api
        .as_user(&team.ada)
        .patch(&format!("{path}/{}", team.ben.user_id), json!({"permission": "view"}))
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 200, "{v}");
    assert_eq!(v["permission"], "view");
    let m = ben_inbox.next().await;
    assert_eq!(m.action, SidebarAction::Changed);
    assert_eq!(m.conversation.unwrap().permission, Permission::View);
    assert_eq!(app.api.conversation(&team.ben, conv).await.unwrap()["permission"], "view");

    // DELETE revokes: gone from REST, sidebar told.
    let (s, _) = app.api.as_user(&team.ada).delete(&format!("{path}/{}", team.ben.user_id)).await.unwrap();
    assert_eq!(s.as_u16(), 204);
    let m = ben_inbox.next().await;
    assert_eq!((m.action, m.conversation_id, m.conversation), (SidebarAction::Removed, conv, None));
    let (s, _) = app.api.as_user(&team.ben).get(&format!("/conversations/{conv}")).await.unwrap();
    assert_eq!(s.as_u16(), 404);
    let (s, v) = app.api.as_user(&team.ada).delete(&format!("{path}/{}", team.ben.user_id)).await.unwrap();
    assert_error(s, &v, 404, "not_found");
    let (s, v) = app
        .api
        .as_user(&team.ada)
        .patch(&format!("{path}/{}", team.ben.user_id), json!({"permission": "view"}))
        .await
        .unwrap();
    assert_error(s, &v, 404, "not_found");

    // The stream tells live viewers (the edge) the same story, in order.
    let events = conv_events(&app, conv).await;
    let participant_events: Vec<_> = events
        .iter()
        .filter_map(|(_, e)| match &e.event {
            Event::ParticipantAdded { user_id, permission, .. } => Some(("added", *user_id, Some(*permission))),
            Event::ParticipantChanged { user_id, permission } => Some(("changed", *user_id, Some(*permission))),
            Event::ParticipantRemoved { user_id } => Some(("removed", *user_id, None)),
            _ => None,
        })
        .collect();
    assert_eq!(
        participant_events,
        [
            ("added", team.ben.user_id, Some(Permission::Respond)),
            ("added", team.cy.user_id, Some(Permission::View)),
            ("changed", team.cy.user_id, Some(Permission::Respond)),
            ("changed", team.ben.user_id, Some(Permission::View)),
            ("removed", team.ben.user_id, None),
        ]
    );
    assert!(
        events
            .iter()
            .filter(|(_, e)| e.event.kind().starts_with("participant."))
            .all(|(_, e)| e.actor == Some(team.ada.user_id))
    );
}

#[tokio::test]
async fn sharing_is_refused_outside_the_rules() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let gil = outsider(&app).await;
    let conv = app.api.create_conversation(&team.ada, "Plans").await.unwrap();
    let path = format!("/conversations/{conv}/shares");
    let share = |user: uuid::Uuid, permission: &str| json!({"shares": [{"user_id": user, "permission": permission}]});

    // Another org's person, an unknown id, the owner herself, a bad permission, nobody, the same person twice.
    for body in [
        share(gil.user_id, "view"),
        share(uuid::Uuid::new_v4(), "view"),
        share(team.ada.user_id, "view"),
        share(team.ben.user_id, "owner"),
        share(team.ben.user_id, "admin"),
        json!({"shares": []}),
        json!({"shares": [{"user_id": team.ben.user_id, "permission": "view"}, {"user_id": team.ben.user_id, "permission": "respond"}]}),
        json!({"shares": [{"user_id": "nope", "permission": "view"}]}),
    ] {
        let (s, v) = app.api.as_user(&team.ada).post(&path, body.clone()).await.unwrap();
        assert_error(s, &v, 400, "bad_request");
    }
    // All or nothing: a batch with one bad entry shares with nobody.
    let (s, _) = app
        .api
        .as_user(&team.ada)
        .post(&path, json!({"shares": [{"user_id": team.ben.user_id, "permission": "view"}, {"user_id": gil.user_id, "permission": "view"}]}))
        .await
        .unwrap();
    assert_eq!(s.as_u16(), 400);
    let (_, v) = app.api.as_user(&team.ada).get(&path).await.unwrap();
    assert_eq!(v["shares"], json!([]));
    assert!(!event_kinds(&app, conv).await.iter().any(|k| k.starts_with("participant.")));

    // Only the owner shares: a Can Respond participant gets 403; the other org's person 404.
    app.api.share(&team.ada, conv, &team.ben, "respond").await.unwrap();
    let (s, v) = app.api.as_user(&team.ben).post(&path, share(team.cy.user_id, "view")).await.unwrap();
    assert_error(s, &v, 403, "forbidden");
    let (s, v) = app
        .api
        .as_user(&team.ben)
        .patch(&format!("{path}/{}", team.ben.user_id), json!({"permission": "view"}))
        .await
        .unwrap();
    assert_error(s, &v, 403, "forbidden");
    let (s, v) = app.api.as_user(&gil).post(&path, share(gil.user_id, "view")).await.unwrap();
    assert_error(s, &v, 404, "not_found");
    let (s, v) = app
        .api
        .as_user(&team.ada)
        .patch(&format!("{path}/{}", team.ben.user_id), json!({"permission": "owner"}))
        .await
        .unwrap();
    assert_error(s, &v, 400, "bad_request");
}

/// A participant leaves: their share is gone (404 from then on), the conversation leaves their sidebar, everyone
/// watching sees `participant.removed`; nobody leaves on someone else's behalf, and the owner has nothing to leave.
#[tokio::test]
async fn a_participant_leaves_on_their_own() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let conv = shared_conversation(&app, &team, "Standup").await;
    let mut cy_inbox = Inbox::open(&app.nc, team.cy.user_id).await;
    let share_of = |who: uuid::Uuid| format!("/conversations/{conv}/shares/{who}");

    // Cy (View Only) cannot remove Ben; Ben (Can Respond) cannot remove Cy.
    let (s, v) = app.api.as_user(&team.cy).delete(&share_of(team.ben.user_id)).await.unwrap();
    assert_error(s, &v, 403, "forbidden");
    let (s, v) = app.api.as_user(&team.ben).delete(&share_of(team.cy.user_id)).await.unwrap();
    assert_error(s, &v, 403, "forbidden");

    let (s, v) = app.api.as_user(&team.cy).delete(&share_of(team.cy.user_id)).await.unwrap();
    assert_eq!(s.as_u16(), 204, "{v}");
    let m = cy_inbox.next_where(|m| m.action == SidebarAction::Removed).await;
    assert_eq!(m.conversation_id, conv);
    let events = conv_events(&app, conv).await;
    assert!(events.iter().any(|(_, e)| e.event == Event::ParticipantRemoved { user_id: team.cy.user_id }));
    let (s, v) = app.api.as_user(&team.cy).get(&format!("/conversations/{conv}")).await.unwrap();
    assert_error(s, &v, 404, "not_found");
    let (s, v) = app.api.as_user(&team.cy).delete(&share_of(team.cy.user_id)).await.unwrap();
    assert_error(s, &v, 404, "not_found");
    // Ben still has his access; the owner has no share to leave.
    let (s, _) = app.api.as_user(&team.ben).get(&format!("/conversations/{conv}")).await.unwrap();
    assert_eq!(s.as_u16(), 200);
    let (s, v) = app.api.as_user(&team.ada).delete(&share_of(team.ada.user_id)).await.unwrap();
    assert_error(s, &v, 404, "not_found");
}

/// The owner's sidebar says with how many people each of their conversations is shared; nobody else's does.
#[tokio::test]
async fn the_owners_sidebar_counts_who_it_is_shared_with() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let conv = app.api.create_conversation(&team.ada, "Roadmap").await.unwrap();
    let alone = app.api.create_conversation(&team.ada, "Notes").await.unwrap();
    let shared_with = |list: &serde_json::Value, id: uuid::Uuid| {
        let entry = list["conversations"].as_array().unwrap().iter().find(|c| c["id"] == id.to_string()).cloned();
        entry.map(|c| c["shared_with"].clone())
    };
    let shares = json!({"shares": [{"user_id": team.ben.user_id, "permission": "respond"}, {"user_id": team.cy.user_id, "permission": "view"}]});
    let (s, _) = app.api.as_user(&team.ada).post(&format!("/conversations/{conv}/shares"), shares).await.unwrap();
    assert_eq!(s.as_u16(), 200);
    let (_, list) = app.api.as_user(&team.ada).get("/conversations").await.unwrap();
    assert_eq!(shared_with(&list, conv), Some(json!(2)));
    assert_eq!(shared_with(&list, alone), Some(json!(0)));
    // Ben sees it, but not who else has it.
    let (_, list) = app.api.as_user(&team.ben).get("/conversations").await.unwrap();
    assert_eq!(shared_with(&list, conv), Some(serde_json::Value::Null));
    let (s, _) =
        app.api.as_user(&team.ada).delete(&format!("/conversations/{conv}/shares/{}", team.cy.user_id)).await.unwrap();
    assert_eq!(s.as_u16(), 204);
    let (_, list) = app.api.as_user(&team.ada).get("/conversations").await.unwrap();
    assert_eq!(shared_with(&list, conv), Some(json!(1)));
}

/// An org admin removes a member: the conversations shared with them drop them (their share rows go), each with
/// `participant.removed` for whoever has it open, and the owner's sidebar gets the new "Shared with N" of each;
/// another member's shares stay.
#[tokio::test]
async fn removing_a_member_removes_their_shares_and_the_owner_sees_the_count_drop() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let roadmap = shared_conversation(&app, &team, "Roadmap").await;
    let notes = app.api.create_conversation(&team.ada, "Notes").await.unwrap();
    app.api.share(&team.ada, notes, &team.ben, "view").await.unwrap();
    outbox_drained(&app).await;
    let mut ada_inbox = Inbox::open(&app.nc, team.ada.user_id).await;

    let path = format!("/orgs/{}/members/{}", team.ada.org_id, team.ben.user_id);
    let (s, v) = app.api.as_user(&team.ada).delete(&path).await.unwrap();
    assert_eq!(s.as_u16(), 204, "{v}");

    // The owner's sidebar hears each conversation's new count (Cy still has Roadmap); the inbox fails the test
    // if they do not come.
    let want = std::collections::HashMap::from([(roadmap, Some(1)), (notes, Some(0))]);
    let mut counts = std::collections::HashMap::new();
    while counts != want {
        let m = ada_inbox.next_where(|m| m.action == SidebarAction::Changed).await;
        counts.insert(m.conversation_id, m.conversation.and_then(|c| c.shared_with));
    }

    // Gone from the share lists and the participants; Cy's share stays.
    for (conv, left) in [(roadmap, vec![team.cy.user_id.to_string()]), (notes, vec![])] {
        let (_, v) = app.api.as_user(&team.ada).get(&format!("/conversations/{conv}/shares")).await.unwrap();
        let ids: Vec<String> =
            v["shares"].as_array().unwrap().iter().map(|s| s["user_id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(ids, left, "{v}");
    }
    let removed = conv_events(&app, roadmap)
        .await
        .into_iter()
        .any(|(_, e)| matches!(e.event, Event::ParticipantRemoved { user_id } if user_id == team.ben.user_id));
    assert!(removed, "participant.removed on the conversation");
    // The sidebar list says the same after a reload.
    let (_, v) = app.api.as_user(&team.ada).get("/conversations").await.unwrap();
    let row =
        |id: uuid::Uuid| v["conversations"].as_array().unwrap().iter().find(|c| c["id"] == id.to_string()).cloned();
    assert_eq!(row(roadmap).unwrap()["shared_with"], 1, "{v}");
    assert!(row(notes).unwrap().get("shared_with").is_none_or(|n| n == 0), "{v}");
}

/// More shares at once than the api has database connections: each holds one connection for its transaction and
/// needs no second, so all succeed (before, each asked for a second one inside its transaction, and a burst held
/// the whole pool waiting: 503 "the database is busy" after the checkout timeout).
#[tokio::test]
async fn more_shares_at_once_than_database_connections_all_succeed() {
    let app = spawn_app_with(&[("RH_DB_POOL_SIZE", "2"), ("RH_DB_CHECKOUT_TIMEOUT_MS", "3000")]).await;
    let team = team(&app).await;
    let mut convs = Vec::new();
    for i in 0..8 {
        convs.push(app.api.create_conversation(&team.ada, &format!("Burst {i}")).await.unwrap());
    }
    let body = json!({"shares": [{"user_id": team.ben.user_id, "permission": "view"},
                                 {"user_id": team.cy.user_id, "permission": "respond"}]});
    let shares = convs.iter().map(|conv| {
        let (api, ada, body) = (&app.api, &team.ada, body.clone());
        async move { api.as_user(ada).post(&format!("/conversations/{conv}/shares"), body).await }
    });
    for answer in futures::future::join_all(shares).await {
        let (s, v) = answer.unwrap();
        assert_eq!(s.as_u16(), 200, "{v}");
        assert_eq!(v["shares"].as_array().map(Vec::len), Some(2), "Ben and Cy: {v}");
    }
}
