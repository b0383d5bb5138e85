//! The permission matrix: every action on a conversation, tried as every kind of person, over REST and over the
//! socket, asserting exactly who succeeds and that everyone else gets the right refusal.
//!
//! People: the owner (a plain member), `respond` and `view` teammates, a teammate whose share was revoked, a
//! teammate it was never shared with, the org's admin (no share: metadata and audit log, never content), the
//! admin of another org — and the team roles: a member of a team the conversation is shared with Can Respond, one
//! of a View Only team, one who left the Can Respond team, and one with a personal View share who is also in the Can Respond
//! team (the higher permission wins).

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use rh_protocol::{ClientFrame, ServerFrame};
use rh_testkit::{Api, Session, Stack, StackOptions, WsClient};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Owner,
    Respond,
    View,
    Revoked,
    Outsider,
    Admin,
    OtherOrg,
    TeamRespond,
    TeamView,
    TeamLeft,
    ViewPlusTeam,
}

const EVERYONE: [Who; 11] = [
    Who::Owner,
    Who::Respond,
    Who::View,
    Who::Revoked,
    Who::Outsider,
    Who::Admin,
    Who::OtherOrg,
    Who::TeamRespond,
    Who::TeamView,
    Who::TeamLeft,
    Who::ViewPlusTeam,
];

/// Everyone but the owner.
fn not_owner() -> impl Iterator<Item = Who> {
    EVERYONE.into_iter().filter(|who| *who != Who::Owner)
}

/// Who plays each role in Acme but its admin: name, and the email's first part.
const MEMBERS: [(Who, &str, &str); 9] = [
    (Who::Owner, "Olu Owner", "olu"),
    (Who::Respond, "Ren Respond", "ren"),
    (Who::View, "Vi View", "vi"),
    (Who::Revoked, "Rex Revoked", "rex"),
    (Who::Outsider, "Ola Outsider", "ola"),
    (Who::TeamRespond, "Tia Writer", "tia"),
    (Who::TeamView, "Tom Reader", "tom"),
    (Who::TeamLeft, "Lea Left", "lea"),
    (Who::ViewPlusTeam, "Bo Both", "bo"),
];

fn find(people: &[(Who, Session)], who: Who) -> &Session {
    &people.iter().find(|(w, _)| *w == who).expect("every role has a session").1
}

struct World {
    stack: Stack,
    api: Api,
    people: Vec<(Who, Session)>,
    conv: Uuid,
    attachment: Uuid,
    /// The Can Respond team.
    writers: Uuid,
}

impl World {
    fn session(&self, who: Who) -> &Session {
        find(&self.people, who)
    }
    fn as_(&self, who: Who) -> Api {
        self.api.as_user(self.session(who))
    }

    /// `method path` with `body` as each of `people`, in turn: who, status, body.
    async fn try_as(
        &self,
        people: impl IntoIterator<Item = Who>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Vec<(Who, StatusCode, String)>> {
        let mut r = Vec::new();
        for who in people {
            let (s, v) = self.as_(who).send(method.clone(), path, body.clone()).await?;
            r.push((who, s, v.to_string()));
        }
        Ok(r)
    }
}

/// `multipart/form-data` with one `file` field, built by hand (no extra reqwest feature needed).
async fn upload(
    api: &Api,
    conv: Uuid,
    name: &str,
    content_type: &str,
    bytes: &[u8],
) -> anyhow::Result<(StatusCode, Value)> {
    let (http, base, token) = api.raw();
    let boundary = format!("rh-{}", Uuid::new_v4().simple());
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {content_type}\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut req = http
        .post(format!("{base}/conversations/{conv}/attachments"))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

async fn download(api: &Api, conv: Uuid, att: Uuid) -> anyhow::Result<(StatusCode, Vec<u8>)> {
    let (http, base, token) = api.raw();
    let mut req = http.get(format!("{base}/conversations/{conv}/attachments/{att}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await?;
    Ok((resp.status(), resp.bytes().await?.to_vec()))
}

async fn world() -> anyhow::Result<World> {
    let stack = Stack::start(StackOptions::default()).await?;
    let api = stack.api();
    let tag = Uuid::new_v4().simple().to_string();
    let pw = "matrix-pw-123456";
    let admin = api.sign_up("Acme", "Ada Admin", &format!("ada-{tag}@acme.test"), pw).await?;
    let mut people = vec![(Who::Admin, admin.clone())];
    for (who, name, email) in MEMBERS {
        people.push((who, api.add_member(&admin, name, &format!("{email}-{tag}@acme.test"), pw).await?));
    }
    people.push((Who::OtherOrg, api.sign_up("Globex", "Gil Globex", &format!("gil-{tag}@globex.test"), pw).await?));
    let p = |who: Who| find(&people, who);
    let client = api.client();
    let writers = client.create_team(&admin, "Writers").await?.id;
    let readers = client.create_team(&admin, "Readers").await?.id;
    let writing = [Who::TeamRespond, Who::ViewPlusTeam, Who::TeamLeft].map(|who| p(who).user_id);
    client.add_team_members(&admin, writers, &writing).await?;
    client.add_team_members(&admin, readers, &[p(Who::TeamView).user_id]).await?;

    let owner = p(Who::Owner);
    let conv = api.create_conversation(owner, "Quarterly plan").await?;
    for (who, permission) in
        [(Who::Respond, "respond"), (Who::View, "view"), (Who::Revoked, "respond"), (Who::ViewPlusTeam, "view")]
    {
        api.share(owner, conv, p(who), permission).await?;
    }
    client.share_with_team(owner, conv, writers, "respond").await?;
    client.share_with_team(owner, conv, readers, "view").await?;
    // Lea takes part through her team, then leaves it: her message must stay in history too.
    api.send_message(p(Who::TeamLeft), conv, "/sim tokens=3 rate=500\nLea was here").await?;
    client.remove_team_member(&admin, writers, p(Who::TeamLeft).user_id).await?;
    // Rex takes part, then loses access: his message must stay in history.
    let revoked = p(Who::Revoked);
    api.send_message(revoked, conv, "/sim tokens=3 rate=500\nRex was here").await?;
    let (s, v) = api.as_user(owner).delete(&format!("/conversations/{conv}/shares/{}", revoked.user_id)).await?;
    anyhow::ensure!(s.is_success(), "revoke: {s} {v}");
    let (s, v) = upload(&api.as_user(owner), conv, "plan.txt", "text/plain", b"the plan").await?;
    anyhow::ensure!(s == StatusCode::CREATED, "owner upload: {s} {v}");
    let attachment = Uuid::parse_str(
        v["id"].as_str().or_else(|| v.pointer("/attachment/id").and_then(Value::as_str)).unwrap_or_default(),
    )?;
    Ok(World { stack, api, people, conv, attachment, writers })
}

/// Asserts that exactly `allowed` succeed and that everyone else gets `denied` (or, for people who must not even
/// learn that the conversation exists, 404).
fn expect(action: &str, results: &[(Who, StatusCode, String)], allowed: &[Who], forbidden: &[Who]) {
    for (who, status, body) in results {
        if allowed.contains(who) {
            assert!(status.is_success(), "{action} as {who:?} must succeed, got {status}: {body}");
        } else if forbidden.contains(who) {
            assert_eq!(*status, StatusCode::FORBIDDEN, "{action} as {who:?} must be forbidden: {body}");
            assert!(body.contains("\"error\""), "{action} as {who:?}: the refusal says why: {body}");
        } else {
            assert_eq!(*status, StatusCode::NOT_FOUND, "{action} as {who:?} must not see the conversation: {body}");
        }
    }
}

const PARTICIPANTS: [Who; 6] =
    [Who::Owner, Who::Respond, Who::View, Who::TeamRespond, Who::TeamView, Who::ViewPlusTeam];
const RESPONDERS: [Who; 4] = [Who::Owner, Who::Respond, Who::TeamRespond, Who::ViewPlusTeam];
/// Participants who may not respond: refused with 403 (they know the conversation exists).
const VIEWERS: [Who; 2] = [Who::View, Who::TeamView];
/// Participants who are not the owner: refused with 403 what only the owner may do.
const GUESTS: [Who; 5] = [Who::Respond, Who::View, Who::TeamRespond, Who::TeamView, Who::ViewPlusTeam];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_over_rest_as_every_kind_of_person() -> anyhow::Result<()> {
    let w = world().await?;
    let conv = w.conv;

    let r = w.try_as(EVERYONE, Method::GET, &format!("/conversations/{conv}"), None).await?;
    expect("read the conversation", &r, &PARTICIPANTS, &[]);
    // Rex's and Lea's messages stay in history after they lost access.
    rh_testkit::eventually(WAIT, "the revoked people's messages in history", || async {
        let (_, v) = w.as_(Who::View).get(&format!("/conversations/{conv}")).await.ok()?;
        let text = v.to_string();
        (text.contains("Rex was here") && text.contains("Lea was here")).then_some(())
    })
    .await?;
    // Each sees the permission the rules give: the higher of a personal and a team share.
    for (who, want) in [
        (Who::TeamRespond, "respond"),
        (Who::TeamView, "view"),
        (Who::ViewPlusTeam, "respond"),
        (Who::Respond, "respond"),
        (Who::View, "view"),
    ] {
        let (_, v) = w.as_(who).get(&format!("/conversations/{conv}")).await?;
        assert_eq!(v["permission"], want, "{who:?}'s permission: {v}");
    }

    // Export, search and copy (issue 14): whoever can read it, nobody else.
    let r = w.try_as(EVERYONE, Method::GET, &format!("/conversations/{conv}/export?format=markdown"), None).await?;
    expect("export it", &r, &PARTICIPANTS, &[]);
    for who in EVERYONE {
        let (s, v) = w.as_(who).get("/search?q=Rex").await?;
        assert!(s.is_success(), "{who:?} search: {s} {v}");
        let found = v.to_string().contains(&conv.to_string());
        assert_eq!(found, PARTICIPANTS.contains(&who), "{who:?} finds it: {found}: {v}");
    }
    let r = w.try_as(EVERYONE, Method::POST, &format!("/conversations/{conv}/copy"), Some(json!({}))).await?;
    expect("continue it as a copy", &r, &PARTICIPANTS, &[]);
    // Regenerate (issue 14): those who may respond get it, or a 409 when an answer runs; the rest are refused.
    for who in EVERYONE {
        let (s, v) = w.as_(who).post(&format!("/conversations/{conv}/regenerate"), json!({})).await?;
        let want: &[u16] = if RESPONDERS.contains(&who) {
            &[202, 409]
        } else if VIEWERS.contains(&who) {
            &[403]
        } else {
            &[404]
        };
        assert!(want.contains(&s.as_u16()), "regenerate as {who:?}: {s} {v}");
    }

    // The sidebar lists it exactly for participants.
    for who in EVERYONE {
        let (s, v) = w.as_(who).get("/conversations").await?;
        assert!(s.is_success(), "{who:?} sidebar: {s}");
        let listed = v.to_string().contains(&conv.to_string());
        assert_eq!(listed, PARTICIPANTS.contains(&who), "{who:?} sidebar lists it: {listed}: {v}");
    }

    for (action, method, path, body) in [
        ("send a message", Method::POST, "messages", json!({"text": "/sim tokens=2 rate=500\nhi"})),
        ("stop a response", Method::POST, "stop", json!({})),
        ("change settings", Method::PATCH, "settings", json!({"temperature": 0.5})),
    ] {
        let r = w.try_as(EVERYONE, method, &format!("/conversations/{conv}/{path}"), Some(body)).await?;
        expect(action, &r, &RESPONDERS, &VIEWERS);
    }

    let mut r = Vec::new();
    for who in EVERYONE {
        let (s, v) = upload(&w.as_(who), conv, "notes.txt", "text/plain", b"notes").await?;
        r.push((who, s, v.to_string()));
    }
    expect("attach a file", &r, &RESPONDERS, &VIEWERS);

    let mut r = Vec::new();
    for who in EVERYONE {
        let (s, bytes) = download(&w.as_(who), conv, w.attachment).await?;
        if s.is_success() {
            assert_eq!(bytes, b"the plan", "{who:?} downloads the file itself");
        }
        r.push((who, s, String::from_utf8_lossy(&bytes).into_owned()));
    }
    expect("download an attachment", &r, &PARTICIPANTS, &[]);

    for (action, path) in [("list who has access", "shares"), ("list the teams it is shared with", "teams")] {
        let r = w.try_as(EVERYONE, Method::GET, &format!("/conversations/{conv}/{path}"), None).await?;
        expect(action, &r, &PARTICIPANTS, &[]);
    }

    // Sharing and managing access: the owner only.
    let extra = w.session(Who::Outsider).user_id;
    let mut r = Vec::new();
    for who in not_owner() {
        let other = if who == Who::View { Who::Respond } else { Who::View };
        for (method, path, body) in [
            (Method::PUT, format!("teams/{}", w.writers), Some(json!({"permission": "view"}))),
            (Method::DELETE, format!("teams/{}", w.writers), None),
            (Method::POST, "shares".into(), Some(json!({"shares": [{"user_id": extra, "permission": "respond"}]}))),
            (Method::PATCH, format!("shares/{}", w.session(Who::View).user_id), Some(json!({"permission": "respond"}))),
            // Someone else's share: anyone may remove their own (leave), only the owner others'.
            (Method::DELETE, format!("shares/{}", w.session(other).user_id), None),
        ] {
            r.extend(w.try_as([who], method, &format!("/conversations/{conv}/{path}"), body).await?);
        }
    }
    expect("manage access", &r, &[], &GUESTS);
    // Renaming: the owner only.
    let mut r = Vec::new();
    for who in EVERYONE {
        let title = json!({"title": format!("{who:?}'s")});
        r.extend(w.try_as([who], Method::PATCH, &format!("/conversations/{conv}"), Some(title)).await?);
    }
    expect("rename", &r, &[Who::Owner], &GUESTS);
    let (_, v) = w.as_(Who::View).get(&format!("/conversations/{conv}")).await?;
    assert_eq!(v["title"], "Owner's", "only the owner's rename took: {v}");
    // Nothing changed for Vi.
    let (_, v) = w.as_(Who::Owner).get(&format!("/conversations/{conv}/shares")).await?;
    assert!(v.to_string().contains(&w.session(Who::View).user_id.to_string()), "{v}");
    // The owner cannot share across orgs.
    let (s, v) = w
        .as_(Who::Owner)
        .post(
            &format!("/conversations/{conv}/shares"),
            json!({"shares": [{"user_id": w.session(Who::OtherOrg).user_id, "permission": "view"}]}),
        )
        .await?;
    assert!(s.is_client_error(), "sharing with another org must fail: {s} {v}");

    // Admin views: metadata and the audit log, never content.
    for who in EVERYONE {
        let (s, v) = w.as_(who).get("/admin/conversations").await?;
        if who == Who::Admin {
            assert!(s.is_success(), "{s} {v}");
            assert!(v.to_string().contains(&conv.to_string()), "admin sees the conversation's metadata: {v}");
            assert!(!v.to_string().contains("Rex was here"), "admin metadata holds no content: {v}");
        } else if who == Who::OtherOrg {
            // An admin too, of another org: sees nothing of ours.
            assert!(!v.to_string().contains(&conv.to_string()), "{v}");
        } else {
            assert_eq!(s, StatusCode::FORBIDDEN, "{who:?} is no admin: {v}");
        }
    }
    let audit = rh_testkit::eventually(WAIT, "share, revoke and attachment in the audit log", || async {
        let (s, v) = w.as_(Who::Admin).get(&format!("/admin/audit?conversation_id={conv}")).await.ok()?;
        let text = v.to_string();
        (s.is_success() && text.contains("participant.removed") && text.contains("attachment.added")).then_some(text)
    })
    .await?;
    assert!(!audit.contains("Rex was here"), "the audit log holds no content: {audit}");
    assert!(audit.contains("team_share.set"), "the team shares are in the audit log: {audit}");
    let (s, _) = w.as_(Who::Respond).get("/admin/audit").await?;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Deleting: the owner only; afterwards it is gone for everyone.
    let r = w.try_as(not_owner(), Method::DELETE, &format!("/conversations/{conv}"), None).await?;
    expect("delete", &r, &[], &GUESTS);
    let (s, v) = w.as_(Who::Owner).delete(&format!("/conversations/{conv}")).await?;
    assert!(s.is_success(), "owner deletes: {s} {v}");
    for who in EVERYONE {
        let (s, _) = w.as_(who).get(&format!("/conversations/{conv}")).await?;
        assert_eq!(s, StatusCode::NOT_FOUND, "{who:?} after delete");
    }
    drop(w.stack);
    Ok(())
}

/// The socket's refusal for someone who may not respond: View Only people know the conversation, the rest do not.
fn refusal(who: Who) -> &'static str {
    if VIEWERS.contains(&who) { "forbidden" } else { "not_found" }
}

/// The socket's answer to the frame sent with `client_msg_id` `id`: accepted, or an error naming it.
async fn answer_to(ws: &mut WsClient, id: &str) -> anyhow::Result<ServerFrame> {
    let (f, _) = ws
        .until(WAIT, |f| match f {
            ServerFrame::Error { reference, .. } => reference.as_deref() == Some(id),
            ServerFrame::MessageAccepted { client_msg_id, .. } => client_msg_id == id,
            _ => false,
        })
        .await?;
    Ok(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_over_the_socket_as_every_kind_of_person() -> anyhow::Result<()> {
    let w = world().await?;
    let conv = w.conv;
    let ws_url = w.stack.ws_url();
    for who in EVERYONE {
        let mut ws = WsClient::connect(&ws_url, &w.session(who).token).await?;
        ws.subscribe(conv, None).await?;
        let (f, _) =
            ws.until(WAIT, |f| matches!(f, ServerFrame::Subscribed { .. } | ServerFrame::Error { .. })).await?;
        let may_read = PARTICIPANTS.contains(&who);
        match &f {
            ServerFrame::Subscribed { .. } => assert!(may_read, "{who:?} must not subscribe"),
            ServerFrame::Error { code, .. } => {
                assert!(!may_read, "{who:?} must subscribe: {f:?}");
                assert_eq!(code, "not_found", "{who:?}");
            }
            _ => unreachable!(),
        }

        let id = format!("m-{who:?}");
        ws.send(&ClientFrame::SendMessage {
            conversation_id: conv,
            text: "/sim tokens=2 rate=500\nsocket".into(),
            client_msg_id: id.clone(),
            edit_of: None,
        })
        .await?;
        let f = answer_to(&mut ws, &id).await?;
        match &f {
            ServerFrame::MessageAccepted { .. } => assert!(RESPONDERS.contains(&who), "{who:?} must not send"),
            ServerFrame::Error { code, .. } => {
                assert!(!RESPONDERS.contains(&who), "{who:?} must send: {f:?}");
                assert_eq!(code, refusal(who), "{who:?} send refusal");
            }
            _ => unreachable!(),
        }

        // Regenerate: refused like a send; those who may respond get it, or a 409 (`response_in_progress` while an
        // answer runs, `conflict` before the transcript has a message).
        let id = format!("r-{who:?}");
        ws.send(&ClientFrame::Regenerate { conversation_id: conv, client_msg_id: id.clone(), message_id: None })
            .await?;
        let f = answer_to(&mut ws, &id).await?;
        match &f {
            ServerFrame::MessageAccepted { .. } => assert!(RESPONDERS.contains(&who), "{who:?} must not regenerate"),
            ServerFrame::Error { code, .. } if RESPONDERS.contains(&who) => {
                assert!(["response_in_progress", "conflict"].contains(&code.as_str()), "{who:?} regenerate: {f:?}")
            }
            ServerFrame::Error { code, .. } => assert_eq!(code, refusal(who), "{who:?} regenerate refusal"),
            _ => unreachable!(),
        }

        // Stop, and who is typing: only those who may respond; View Only is refused, the rest never subscribed.
        for (what, frame) in [
            ("stop", ClientFrame::Stop { conversation_id: conv, response_id: None }),
            ("typing", ClientFrame::Typing { conversation_id: conv, typing: true }),
        ] {
            ws.send(&frame).await?;
            if !RESPONDERS.contains(&who) {
                let (f, _) = ws.until(WAIT, |f| matches!(f, ServerFrame::Error { .. })).await?;
                let want = refusal(who);
                assert!(matches!(&f, ServerFrame::Error { code, .. } if code == want), "{who:?} {what}: {f:?}");
            }
        }
        // The socket still answers after every refusal.
        ws.send(&ClientFrame::Ping).await?;
        ws.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
        ws.close().await;
    }
    Ok(())
}
