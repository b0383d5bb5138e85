//! Edit the last message and regenerate an answer (issue 14), over the whole stack: a new attempt for the last
//! turn streams live to every viewer, REST and socket; View Only, revoked and other-org people are refused on both
//! paths; history and the audit log keep every version.

use crate::helpers::*;
use rh_protocol::{ClientFrame, Event, ServerFrame};
use rh_testkit::{Session, WsClient};
use serde_json::{Value, json};
use uuid::Uuid;

/// Sends `frame` on `ws` and waits for its `message_accepted` (→ `(message_id, response_id)`) or `error` (→ its
/// code), matched by `client_msg_id`.
async fn ask(ws: &mut WsClient, frame: ClientFrame, id: &str) -> anyhow::Result<Result<(Uuid, Uuid), String>> {
    ws.send(&frame).await?;
    let (f, _) = ws
        .until(WAIT, |f| match f {
            ServerFrame::MessageAccepted { client_msg_id, .. } => client_msg_id == id,
            ServerFrame::Error { reference, .. } => reference.as_deref() == Some(id),
            _ => false,
        })
        .await?;
    Ok(match f {
        ServerFrame::MessageAccepted { message_id, response_id, .. } => Ok((message_id, response_id)),
        ServerFrame::Error { code, .. } => Err(code),
        _ => unreachable!("until returns a matching frame"),
    })
}

fn regenerate(conv: Uuid, id: &str, message_id: Option<Uuid>) -> ClientFrame {
    ClientFrame::Regenerate { conversation_id: conv, client_msg_id: id.into(), message_id }
}

/// A socket that has answered a ping (so it is authenticated), subscribed to nothing.
async fn socket(ws_url: &str, who: &Session) -> anyhow::Result<WsClient> {
    let mut ws = WsClient::connect(ws_url, &who.token).await?;
    ws.send(&ClientFrame::Ping).await?;
    ws.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
    Ok(ws)
}

/// Waits until the stored history has row `id` with `status`.
async fn stored_as(t: &Team, conv: Uuid, id: Uuid, status: &str) -> anyhow::Result<()> {
    rh_testkit::eventually(WAIT, "the row in the stored history", || async {
        let v = t.api.conversation(&t.owner, conv).await.ok()?;
        v["messages"].as_array()?.iter().any(|m| m["id"] == id.to_string() && m["status"] == status).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_attempt_streams_to_every_viewer_and_every_version_stays() -> anyhow::Result<()> {
    let t = team(Default::default()).await?;
    let dee =
        t.api.add_member(&t.owner, "Dee Gone", &format!("dee-{}@acme.test", Uuid::new_v4()), "pw-dee-123456").await?;
    let gil =
        t.api.sign_up("Globex", "Gil Other", &format!("gil-{}@globex.test", Uuid::new_v4()), "pw-gil-123456").await?;
    let conv = t.api.create_conversation(&t.owner, "Versions").await?;
    for (who, permission) in [(&t.ben, "respond"), (&t.cy, "view"), (&dee, "respond")] {
        t.api.share(&t.owner, conv, who, permission).await?;
    }
    let (s, body) = t.api.as_user(&t.owner).delete(&format!("/conversations/{conv}/shares/{}", dee.user_id)).await?;
    anyhow::ensure!(s.is_success(), "revoke: {s} {body}");
    let reply = t.api.send_message(&t.ben, conv, "/sim tokens=8 rate=200\nFirst question").await?;
    let q1 = Uuid::parse_str(reply["message_id"].as_str().unwrap_or_default())?;
    let a1 = response_id(&reply)?;
    let first = stored_response(&t.api, &t.owner, conv, a1).await?;

    let ws = t.stack.ws_url();
    let h = history_seq(&t.api, &t.cy, conv).await?;
    let mut cy = Viewer::join(&ws, &t.cy, conv, Some(h)).await?;
    let mut ben = Viewer::join(&ws, &t.ben, conv, Some(h)).await?;

    // Ben regenerates over the socket: Cy (View Only) watches the new attempt stream in.
    let (answered, a2) = ask(&mut ben.ws, regenerate(conv, "r1", Some(q1)), "r1").await?.map_err(anyhow::Error::msg)?;
    assert_eq!(answered, q1);
    let requested = cy.until_event(|s| matches!(s.event.event, Event::ResponseRequested { .. })).await?;
    assert_eq!(
        requested.event.event,
        Event::ResponseRequested {
            response_id: a2,
            message_id: q1,
            requested_by: t.ben.user_id,
            requested_by_name: "Ben Builder".into()
        }
    );
    cy.until_response_end(a2).await?;
    let second = check_response(&cy.seen, a2)?;
    assert_eq!(second, stored_response(&t.api, &t.owner, conv, a2).await?);
    assert_eq!(second, first, "the simulated AI answers the same question the same way");

    // Refused on both paths: View Only (forbidden), revoked and another org (not found). Nothing is published.
    for (who, code) in [(&t.cy, "forbidden"), (&dee, "not_found"), (&gil, "not_found")] {
        let mut s = socket(&ws, who).await?;
        assert_eq!(ask(&mut s, regenerate(conv, "x1", None), "x1").await?, Err(code.to_owned()));
        let edit = ClientFrame::SendMessage {
            conversation_id: conv,
            text: "mine".into(),
            client_msg_id: "x2".into(),
            edit_of: Some(q1),
        };
        assert_eq!(ask(&mut s, edit, "x2").await?, Err(code.to_owned()));
        let status = if code == "forbidden" { 403 } else { 404 };
        let api = t.api.as_user(who);
        let (st, v) = api.post(&format!("/conversations/{conv}/regenerate"), json!({})).await?;
        assert_eq!((st.as_u16(), v["error"]["code"].as_str()), (status, Some(code)), "{v}");
        let (st, v) = api.post(&format!("/conversations/{conv}/messages"), json!({"text": "x", "edit_of": q1})).await?;
        assert_eq!((st.as_u16(), v["error"]["code"].as_str()), (status, Some(code)), "{v}");
    }

    // Ben edits his question over the socket: a new version with a new answer, live for Cy.
    let edit = ClientFrame::SendMessage {
        conversation_id: conv,
        text: "/sim tokens=120 rate=40\nFirst question, reworded".into(),
        client_msg_id: "e1".into(),
        edit_of: Some(q1),
    };
    let (q2, a3) = ask(&mut ben.ws, edit, "e1").await?.map_err(anyhow::Error::msg)?;
    let created = cy
        .until_event(|s| matches!(&s.event.event, Event::MessageCreated { message_id, .. } if *message_id == q2))
        .await?;
    assert!(matches!(created.event.event, Event::MessageCreated { edit_of: Some(e), .. } if e == q1));
    cy.until_deltas(a3, 2).await?;
    // While it streams (as the transcript says) the last turn cannot change: 409 on both paths.
    rh_testkit::eventually(WAIT, "the conversation listed as responding", || async {
        let (_, list) = t.api.as_user(&t.owner).get("/conversations").await.ok()?;
        let c = list["conversations"].as_array()?.iter().find(|c| c["id"] == conv.to_string())?.clone();
        (c["responding"] == true).then_some(())
    })
    .await?;
    let (st, v) = t.api.as_user(&t.owner).post(&format!("/conversations/{conv}/regenerate"), json!({})).await?;
    assert_eq!((st.as_u16(), v["error"]["code"].as_str()), (409, Some("response_in_progress")), "{v}");
    assert_eq!(ask(&mut ben.ws, regenerate(conv, "r2", None), "r2").await?, Err("response_in_progress".into()));
    let (st, v) =
        t.api.as_user(&t.ben).post(&format!("/conversations/{conv}/stop"), json!({"response_id": a3})).await?;
    anyhow::ensure!(st.is_success(), "stop: {st} {v}");
    cy.until_response_end(a3).await?;
    stored_as(&t, conv, a3, "stopped").await?;

    // The owner regenerates over REST; naming the old version is a conflict, the current one works.
    let owner = t.api.as_user(&t.owner);
    let (st, v) = owner.post(&format!("/conversations/{conv}/regenerate"), json!({"message_id": q1})).await?;
    assert_eq!((st.as_u16(), v["error"]["code"].as_str()), (409, Some("conflict")), "{v}");
    let (st, v) = owner.post(&format!("/conversations/{conv}/regenerate"), json!({"message_id": q2})).await?;
    assert_eq!(st.as_u16(), 202, "{v}");
    let a4 = response_id(&v)?;
    cy.until_response_end(a4).await?;
    check_response(&cy.seen, a4)?;
    stored_response(&t.api, &t.owner, conv, a4).await?;

    // History (what a reload shows) keeps every version with its links; so does the audit log, without text.
    let history = t.api.conversation(&t.cy, conv).await?;
    let rows: Vec<(String, Option<String>, Option<String>)> = history["messages"]
        .as_array()
        .map(|l| l.iter().map(|m| (id(&m["id"]), opt(&m["reply_to"]), opt(&m["edit_of"]))).collect())
        .unwrap_or_default();
    let s = |u: Uuid| u.to_string();
    assert_eq!(
        rows,
        [
            (s(q1), None, None),
            (s(a1), Some(s(q1)), None),
            (s(a2), Some(s(q1)), None),
            (s(q2), None, Some(s(q1))),
            (s(a3), Some(s(q2)), None),
            (s(a4), Some(s(q2)), None),
        ]
    );
    // The export has every version too, the older ones marked.
    let (st, export) = t.api.as_user(&t.cy).get(&format!("/conversations/{conv}/export?format=json")).await?;
    assert_eq!(st.as_u16(), 200, "{export}");
    let earlier: Vec<String> = export["messages"]
        .as_array()
        .map(|l| l.iter().filter(|m| m["earlier_attempt"] == true).map(|m| id(&m["id"])).collect())
        .unwrap_or_default();
    assert_eq!(earlier, [s(q1), s(a1), s(a2), s(a3)]);
    let (_, log) = owner.get(&format!("/admin/audit?conversation_id={conv}")).await?;
    let actions: Vec<&str> =
        log["entries"].as_array().map(|l| l.iter().filter_map(|e| e["action"].as_str()).collect()).unwrap_or_default();
    assert_eq!(actions.iter().filter(|a| **a == "response.requested").count(), 2, "{log}");
    assert_eq!(actions.iter().filter(|a| **a == "message.created").count(), 2, "{log}");
    assert!(!log.to_string().contains("reworded"), "no text in the audit log");
    Ok(())
}

fn id(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn opt(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}
