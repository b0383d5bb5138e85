//! Continue as a copy and export (issue 14), over the whole stack: the copy's transcript is written by the audit
//! writer from its events like any conversation's, and it takes new messages and answers at once.

use crate::helpers::*;
use rh_protocol::frame::SidebarAction;
use rh_protocol::{ClientFrame, ServerFrame};
use rh_testkit::WsClient;
use serde_json::{Value, json};
use uuid::Uuid;

/// Texts of a conversation's history as `(role, text)`.
fn turns(v: &Value) -> Vec<(String, String)> {
    v["messages"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|m| (m["role"].as_str().unwrap_or("").into(), m["text"].as_str().unwrap_or("").into()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_copy_for_those_who_can_see_and_nobody_else() -> anyhow::Result<()> {
    let t = team(Default::default()).await?;
    let gil = t.api.sign_up("Globex", "Gil", &format!("gil-{}@globex.test", Uuid::new_v4()), "pw-gil-123456").await?;
    let conv = t.api.create_conversation(&t.owner, "Plans | Q3").await?;
    t.api.share(&t.owner, conv, &t.ben, "respond").await?;
    t.api.share(&t.owner, conv, &t.cy, "view").await?;
    let mut answers = Vec::new();
    for q in ["/sim tokens=6 rate=200\nFirst question", "/sim tokens=6 rate=200\nSecond question"] {
        let rid = response_id(&t.api.send_message(&t.ben, conv, q).await?)?;
        answers.push(stored_response(&t.api, &t.owner, conv, rid).await?);
    }
    let (http, base, _) = t.api.raw();
    let form = "--b0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"brief.md\"\r\nContent-Type: text/markdown\r\n\r\n# Brief\r\n--b0--\r\n";
    let resp = http
        .post(format!("{base}/conversations/{conv}/attachments"))
        .bearer_auth(&t.owner.token)
        .header("content-type", "multipart/form-data; boundary=b0")
        .body(form)
        .send()
        .await?;
    anyhow::ensure!(resp.status().is_success(), "upload: {}", resp.status());
    let source = t.api.conversation(&t.owner, conv).await?;
    let source_turns = turns(&source);
    assert_eq!(source_turns.len(), 4, "{source}");

    // Export: JSON and Markdown for Cy (View Only), as downloads.
    let cy = t.api.as_user(&t.cy);
    let resp =
        http.get(format!("{base}/conversations/{conv}/export?format=json")).bearer_auth(&t.cy.token).send().await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-disposition"].to_str()?.starts_with("attachment; filename=\"conversation-"));
    let export: rh_protocol::tools::ConversationExport = resp.json().await?;
    assert_eq!(export.title, "Plans | Q3");
    let exported: Vec<_> = export.messages.iter().map(|m| (m.role.clone(), m.text.clone())).collect();
    assert_eq!(exported, source_turns);
    assert_eq!(export.messages[0].author_name.as_deref(), Some("Ben Builder"));
    let resp =
        http.get(format!("{base}/conversations/{conv}/export?format=markdown")).bearer_auth(&t.cy.token).send().await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"].to_str()?.starts_with("text/markdown"));
    let md = resp.text().await?;
    assert!(md.starts_with("# Plans | Q3\n"), "{md}");
    assert!(
        md.contains("**Ben Builder**") && md.contains("Second question") && md.contains(answers[1].trim_end()),
        "{md}"
    );
    let (s, v) = cy.get(&format!("/conversations/{conv}/export?format=pdf")).await?;
    assert_eq!((s.as_u16(), v["error"]["code"].as_str()), (400, Some("bad_request")));
    for (who, path) in [(&gil, "export?format=json"), (&gil, "copy")] {
        let (s, v) = if path == "copy" {
            t.api.as_user(who).post(&format!("/conversations/{conv}/{path}"), json!({})).await?
        } else {
            t.api.as_user(who).get(&format!("/conversations/{conv}/{path}")).await?
        };
        assert_eq!((s.as_u16(), v["error"]["code"].as_str()), (404, Some("not_found")), "{path}: {v}");
    }

    // Cy (View Only) continues from the first answer: a conversation of her own, unshared, without the file.
    let mut cy_ws = WsClient::connect(&t.stack.ws_url(), &t.cy.token).await?;
    cy_ws.send(&ClientFrame::Ping).await?;
    cy_ws.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
    let first_answer = source["messages"][1]["id"].as_str().unwrap_or_default().to_owned();
    let (s, copy) = cy.post(&format!("/conversations/{conv}/copy"), json!({ "up_to": first_answer })).await?;
    assert_eq!(s.as_u16(), 201, "{copy}");
    let copy_id = Uuid::parse_str(copy["id"].as_str().unwrap_or_default())?;
    assert_ne!(copy_id, conv);
    assert_eq!((copy["title"].as_str(), copy["permission"].as_str()), (Some("Copy of Plans | Q3"), Some("owner")));
    assert_eq!(copy["owner_id"], t.cy.user_id.to_string());
    assert_eq!(copy["participants"], json!([]));
    assert_eq!(copy["attachments"], json!([]));
    let (f, _) = cy_ws
        .until(WAIT, |f| matches!(f, ServerFrame::Sidebar { action: SidebarAction::Added, conversation_id, .. } if *conversation_id == copy_id))
        .await?;
    assert!(matches!(f, ServerFrame::Sidebar { conversation: Some(c), .. } if !c.shared));
    let copied = rh_testkit::eventually(WAIT, "the copy's transcript", || async {
        let v = t.api.conversation(&t.cy, copy_id).await.ok()?;
        (turns(&v).len() == 2).then_some(v)
    })
    .await?;
    assert_eq!(turns(&copied), source_turns[..2].to_vec());
    assert_eq!(copied["messages"][0]["author_name"], "Ben Builder", "authors kept");
    // Nobody else sees the copy, not even the source's owner.
    let (s, _) = t.api.as_user(&t.owner).get(&format!("/conversations/{copy_id}")).await?;
    assert_eq!(s.as_u16(), 404);
    // It is live at once: Cy asks in her copy, with the copied context.
    let rid = response_id(&t.api.send_message(&t.cy, copy_id, "/sim tokens=4 rate=200\nAnd then?").await?)?;
    stored_response(&t.api, &t.cy, copy_id, rid).await?;
    // The source is untouched.
    assert_eq!(turns(&t.api.conversation(&t.owner, conv).await?), source_turns);

    // Ben copies all of it with the file: the bytes come along.
    let (s, all) = t
        .api
        .as_user(&t.ben)
        .post(&format!("/conversations/{conv}/copy"), json!({ "title": "Mine", "attachments": true }))
        .await?;
    assert_eq!(s.as_u16(), 201, "{all}");
    let all_id = all["id"].as_str().unwrap_or_default().to_owned();
    let att = all["attachments"][0]["id"].as_str().unwrap_or_default().to_owned();
    assert_ne!(att, source["attachments"][0]["id"].as_str().unwrap_or_default());
    let bytes =
        http.get(format!("{base}/conversations/{all_id}/attachments/{att}")).bearer_auth(&t.ben.token).send().await?;
    assert_eq!(bytes.text().await?, "# Brief");
    rh_testkit::eventually(WAIT, "the full copy's transcript", || async {
        let v = t.api.as_user(&t.ben).get(&format!("/conversations/{all_id}")).await.ok()?.1;
        (turns(&v) == source_turns).then_some(())
    })
    .await?;

    // Bad requests.
    for body in
        [json!({ "up_to": Uuid::new_v4() }), json!({ "title": "" , "nope": 1 }), json!({ "attachments": "yes" })]
    {
        let (s, v) = cy.post(&format!("/conversations/{conv}/copy"), body).await?;
        assert_eq!((s.as_u16(), v["error"]["code"].as_str()), (400, Some("bad_request")), "{v}");
    }
    Ok(())
}
