//! The shared v1 client (`rh-client`, used by the load tool and the test harness) against the real api: typed
//! calls decode the replies, a refusal keeps the api's status and error code, raw requests return any status.

use crate::helpers::*;
use rh_client::{Client, ErrorKind, Method, StatusCode};

#[tokio::test]
async fn the_shared_client_decodes_replies_and_keeps_the_apis_error_codes() {
    let app = spawn_app().await;
    let client = Client::new(&format!("{}/", app.process.http_url())).expect("client");
    assert_eq!(client.base(), format!("{}/api/v1", app.process.http_url()), "the trailing slash is dropped");
    let t = tag();
    let ada = client.sign_up("Acme", "Ada Lovelace", &format!("ada-{t}@acme.test"), "pw-ada-123456").await.unwrap();
    assert_eq!(ada.name, "Ada Lovelace");
    let cy = client.add_member(&ada, "Cy Tanaka", &format!("cy-{t}@acme.test"), "pw-cy-1234567").await.unwrap();
    assert_eq!(cy.org_id, ada.org_id);
    let conv = client.create_conversation(&ada, "Client").await.unwrap();
    client.share(&ada, conv, &[(cy.user_id, "view")]).await.unwrap();
    let accepted = client.send_message(&ada, conv, "/sim tokens=2 rate=500\nhi").await.unwrap();
    assert!(accepted.seq > 0);
    let v = client.conversation(&cy.token, conv).await.unwrap();
    assert_eq!(v.permission, rh_protocol::Permission::View);
    assert_eq!(client.history_seq(&cy.token, conv).await.unwrap(), v.seq);
    // The history in pages of one turn: the same turns as one big page (the message, once the audit writer —
    // here its own code — stored it).
    apply_transcript(&app, conv).await;
    client.send_message(&ada, conv, "/sim tokens=2 rate=500\nagain").await.unwrap();
    apply_transcript(&app, conv).await;
    let (seq, turns) = client.history(&cy.token, conv, 1).await.unwrap();
    let whole = client.history_page(&cy.token, conv, Some(500), None).await.unwrap();
    assert_eq!((seq, &turns), (whole.seq, &whole.messages));
    assert_eq!(
        turns.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["/sim tokens=2 rate=500\nhi", "/sim tokens=2 rate=500\nagain"]
    );
    assert!(!whole.has_more && whole.next_before.is_none());

    // View Only cannot send: the error says which call failed, the status and the api's code.
    let e = client.send_message(&cy, conv, "hi").await.expect_err("view only");
    assert_eq!(e.kind(), &ErrorKind::Status { status: StatusCode::FORBIDDEN, code: Some("forbidden".into()) });
    assert_eq!(e.op(), "send message");
    // A wrong password: 401 with the api's code.
    let e = client.login(&cy.email, "wrong-password-1").await.expect_err("wrong password");
    assert_eq!((e.status(), e.code()), (Some(StatusCode::UNAUTHORIZED), Some("unauthorized")));

    // Raw requests return any status with the JSON body.
    let (s, v) =
        client.request(Method::DELETE, &format!("/conversations/{conv}"), Some(&cy.token), None).await.unwrap();
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "forbidden");
    let (s, v) =
        client.request(Method::DELETE, &format!("/conversations/{conv}"), Some(&ada.token), None).await.unwrap();
    assert_eq!((s, v), (StatusCode::NO_CONTENT, serde_json::Value::Null));
}
