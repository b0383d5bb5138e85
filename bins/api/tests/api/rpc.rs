//! What the edge asks over NATS.

use crate::helpers::*;
use rh_bus::RequestErrorKind;
use rh_protocol::frame::ErrorCode;
use rh_protocol::rpc::{AccessGrant, AccessRequest, MessageAccepted, SendMessageRequest, StopAccepted, StopRequest};
use rh_protocol::{Permission, subjects};

#[tokio::test]
async fn access_send_and_stop_over_nats() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let gil = outsider(&app).await;
    let conv = shared_conversation(&app, &team, "Socket").await;
    let access = |user: uuid::Uuid| AccessRequest { user_id: user, conversation_id: conv };

    for (who, want) in [(&team.ada, Permission::Owner), (&team.ben, Permission::Respond), (&team.cy, Permission::View)]
    {
        let grant: AccessGrant =
            rh_bus::request(&app.nc, subjects::API_ACCESS, &access(who.user_id), WAIT).await.unwrap();
        assert_eq!(grant.permission, want);
        let http = app.api.conversation(who, conv).await.unwrap();
        assert_eq!(grant.history_seq, http["seq"].as_u64().unwrap());
    }
    // A teammate without a share, another org, an unknown conversation: not_found.
    let dee =
        app.api.add_member(&team.ada, "Dee Ramos", &format!("dee-{}@acme.test", tag()), "pw-dee-123456").await.unwrap();
    for req in [
        access(dee.user_id),
        access(gil.user_id),
        AccessRequest { user_id: team.ada.user_id, conversation_id: uuid::Uuid::new_v4() },
    ] {
        let e = rh_bus::request::<_, AccessGrant>(&app.nc, subjects::API_ACCESS, &req, WAIT).await.unwrap_err();
        assert_eq!(e.kind(), RequestErrorKind::Rejected);
        assert_eq!(e.rejection.unwrap().code, ErrorCode::NotFound);
    }

    // send_message: the same rules and effects as REST.
    let send = |user: uuid::Uuid, text: &str| SendMessageRequest {
        user_id: user,
        conversation_id: conv,
        text: text.into(),
        client_msg_id: Some("sock-1".into()),
        max_tokens: None,
        edit_of: None,
    };
    let ok: MessageAccepted =
        rh_bus::request(&app.nc, subjects::API_SEND_MESSAGE, &send(team.ben.user_id, "from a socket"), WAIT)
            .await
            .unwrap();
    let events = conv_events(&app, conv).await;
    let (seq, env) = events.iter().find(|(_, e)| e.event.kind() == "message.created").unwrap();
    assert_eq!(*seq, ok.seq);
    assert!(
        matches!(&env.event, rh_protocol::Event::MessageCreated { message_id, client_msg_id, .. } if *message_id == ok.message_id && client_msg_id.as_deref() == Some("sock-1"))
    );
    for (user, code) in [(team.cy.user_id, ErrorCode::Forbidden), (gil.user_id, ErrorCode::NotFound)] {
        let e = rh_bus::request::<_, MessageAccepted>(&app.nc, subjects::API_SEND_MESSAGE, &send(user, "nope"), WAIT)
            .await
            .unwrap_err();
        assert_eq!(e.rejection.unwrap().code, code);
    }
    let e =
        rh_bus::request::<_, MessageAccepted>(&app.nc, subjects::API_SEND_MESSAGE, &send(team.ben.user_id, "  "), WAIT)
            .await
            .unwrap_err();
    assert_eq!(e.rejection.unwrap().code, ErrorCode::BadRequest);

    // stop.
    let stop = |user: uuid::Uuid| StopRequest { user_id: user, conversation_id: conv, response_id: None };
    let _: StopAccepted = rh_bus::request(&app.nc, subjects::API_STOP, &stop(team.ada.user_id), WAIT).await.unwrap();
    let e = rh_bus::request::<_, StopAccepted>(&app.nc, subjects::API_STOP, &stop(team.cy.user_id), WAIT)
        .await
        .unwrap_err();
    assert_eq!(e.rejection.unwrap().code, ErrorCode::Forbidden);

    // Garbage gets a bad_request reply, not silence.
    let reply = app.nc.request(subjects::API_ACCESS, "not json".into()).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(v["error"]["code"], "bad_request");
}

/// A burst of subscribes (answered in batches, one statement per conversation) gets every answer right: each
/// person their own permission on each conversation, strangers `not_found`, and the metric counts every request.
#[tokio::test]
async fn a_burst_of_access_requests_gets_each_persons_own_answer() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let gil = outsider(&app).await;
    let first = shared_conversation(&app, &team, "First").await;
    let second = app.api.create_conversation(&team.ben, "Ben's own").await.unwrap();
    let want = |user: uuid::Uuid, conv: uuid::Uuid| match (conv == first, user) {
        (true, u) if u == team.ada.user_id => Some(Permission::Owner),
        (true, u) if u == team.ben.user_id => Some(Permission::Respond),
        (true, u) if u == team.cy.user_id => Some(Permission::View),
        (false, u) if u == team.ben.user_id => Some(Permission::Owner),
        _ => None,
    };
    let people = [team.ada.user_id, team.ben.user_id, team.cy.user_id, gil.user_id];
    let asked: Vec<(uuid::Uuid, uuid::Uuid)> =
        (0..400).map(|i| (people[i % people.len()], [first, second][(i / people.len()) % 2])).collect();
    let answers = futures::future::join_all(asked.iter().map(|(user, conv)| {
        let req = AccessRequest { user_id: *user, conversation_id: *conv };
        let nc = app.nc.clone();
        async move { rh_bus::request::<_, AccessGrant>(&nc, subjects::API_ACCESS, &req, WAIT).await }
    }))
    .await;
    let history = app.api.conversation(&team.ada, first).await.unwrap()["seq"].as_u64().unwrap();
    for ((user, conv), answer) in asked.iter().zip(answers) {
        match (want(*user, *conv), answer) {
            (Some(permission), Ok(grant)) => {
                assert_eq!(grant.permission, permission, "{user} on {conv}");
                if *conv == first {
                    assert_eq!(grant.history_seq, history);
                }
            }
            (None, Err(e)) => assert_eq!(e.rejection.map(|r| r.code), Some(ErrorCode::NotFound), "{user} on {conv}"),
            (want, got) => panic!("{user} on {conv}: want {want:?}, got {got:?}"),
        }
    }
    let metrics = reqwest::get(format!("{}/metrics", app.process.http_url())).await.unwrap().text().await.unwrap();
    let batched: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("relayhub_api_grant_batch_size_sum ")?.trim().parse().ok())
        .expect("the batch size metric");
    assert_eq!(batched, asked.len() as f64, "every request went through a batch once");
}

/// What a socket sends reaches the api over NATS: a NUL in any field is refused there too (bad_request), so it
/// never reaches an event the audit writer could not store.
#[tokio::test]
async fn nul_characters_over_nats_are_refused() {
    let app = spawn_app().await;
    let team = team(&app).await;
    let conv = shared_conversation(&app, &team, "Socket NUL").await;
    for (text, client_msg_id) in [("hi\u{0}", None), ("hi", Some("id\u{0}".to_owned()))] {
        let req = SendMessageRequest {
            user_id: team.ben.user_id,
            conversation_id: conv,
            text: text.into(),
            client_msg_id,
            max_tokens: None,
            edit_of: None,
        };
        let e =
            rh_bus::request::<_, MessageAccepted>(&app.nc, subjects::API_SEND_MESSAGE, &req, WAIT).await.unwrap_err();
        assert_eq!(e.kind(), RequestErrorKind::Rejected);
        assert_eq!(e.rejection.unwrap().code, ErrorCode::BadRequest);
    }
    assert!(!event_kinds(&app, conv).await.contains(&"message.created"), "nothing was published");
}
