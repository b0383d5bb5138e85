//! The closed bus: every service connects with its own NATS user (`nats/auth.conf`), and the server refuses
//! what that service does not need. Each case acts as the service would (its user, its inbox prefix), tries a
//! forbidden action, and checks both that the server said no and that nothing happened.

use crate::helpers::{Viewer, WAIT, check_response, response_id as response_id_of, stored_response, team};
use anyhow::Context as _;
use async_nats::{Client, ConnectErrorKind, ServerError};
use futures::StreamExt;
use rh_bus::Role;
use rh_protocol::subjects;
use rh_protocol::{ClientFrame, Event, ServerFrame};
use rh_testkit::{NatsServer, StackOptions, WsClient};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A connection as `role` that records what the server refused it.
struct As {
    client: Client,
    refused: Arc<Mutex<Vec<String>>>,
}

impl As {
    async fn connect(nats: &NatsServer, role: Role) -> anyhow::Result<Self> {
        let refused = Arc::new(Mutex::new(Vec::new()));
        let sink = refused.clone();
        let client = nats
            .options_as(role)
            .event_callback(move |event| {
                let sink = sink.clone();
                async move {
                    if let async_nats::Event::ServerError(ServerError::Other(e)) = event {
                        sink.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                    }
                }
            })
            .connect(nats.url())
            .await?;
        Ok(As { client, refused })
    }

    /// Waits until the server has told us it refused `subject`.
    async fn assert_refused(&self, what: &str, subject: &str) -> anyhow::Result<()> {
        let needle = format!("Permissions Violation for {what} to \"{subject}\"");
        rh_testkit::eventually(WAIT, &needle, || async {
            self.refused.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|e| e.contains(&needle)).then_some(())
        })
        .await
    }
}

/// Publishes `subject` as `who`, then `marker` (a subject `who` may publish). An admin subscriber on both gets the
/// marker; messages from one connection arrive in order, so if the forbidden one had gone through it would
/// have arrived first.
async fn assert_publish_refused(nats: &NatsServer, role: Role, subject: &str, marker: &str) -> anyhow::Result<()> {
    let who = As::connect(nats, role).await?;
    let admin = nats.client().await?;
    let mut watch = admin.subscribe(subject.to_owned()).await?;
    let mut marks = admin.subscribe(marker.to_owned()).await?;
    round_trip(&admin, "rh.test.sync").await;
    who.client.publish(subject.to_owned(), "forged".into()).await?;
    who.client.publish(marker.to_owned(), "marker".into()).await?;
    who.client.flush().await?;
    tokio::time::timeout(WAIT, marks.next())
        .await
        .with_context(|| format!("{role:?}'s marker {marker} after {subject}"))?
        .context("marker lost")?;
    let leaked = tokio::time::timeout(Duration::ZERO, watch.next()).await;
    assert!(leaked.is_err(), "{role:?} published {subject}");
    who.assert_refused("Publish", subject).await
}

/// Waits until the server has processed everything `client` sent before: a request (to a subject `client` may
/// publish) comes back with an answer or "no responders" only after that. (`flush` only writes the socket.)
async fn round_trip(client: &Client, subject: &str) {
    let _ = tokio::time::timeout(WAIT, client.request(subject.to_owned(), "".into())).await;
}

/// A subject each role may publish and an admin may watch.
fn marker(role: Role) -> String {
    match role {
        Role::Api => subjects::WORKER_MODELS.to_owned(),
        Role::Edge => subjects::presence(uuid::Uuid::new_v4()),
        Role::Worker => format!("rh.conv.{}.delta", uuid::Uuid::new_v4()),
        Role::Audit => format!("$JS.API.STREAM.INFO.{}", subjects::STREAM_CONV),
    }
}

#[tokio::test]
async fn anonymous_and_wrong_password_connections_are_refused() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let anonymous = async_nats::ConnectOptions::new().connect(nats.url()).await;
    assert_eq!(anonymous.err().map(|e| e.kind()), Some(ConnectErrorKind::AuthorizationViolation));
    let wrong =
        async_nats::ConnectOptions::with_user_and_password("api".into(), "guess".into()).connect(nats.url()).await;
    assert_eq!(wrong.err().map(|e| e.kind()), Some(ConnectErrorKind::AuthorizationViolation));
    // The same server lets each service in with its own password.
    for role in Role::ALL {
        nats.client_as(role).await?;
    }
    Ok(())
}

#[tokio::test]
async fn services_may_not_publish_what_is_not_theirs() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    nats.jetstream().await?;
    let conv = uuid::Uuid::new_v4();
    let user = uuid::Uuid::new_v4();
    let cases: Vec<(Role, String)> = vec![
        // Only the api and the worker write conversation events; only the api queues jobs and stops responses;
        // only the api and the audit writer (the "responding…" marker) feed sidebars.
        (Role::Edge, format!("rh.conv.{conv}.event")),
        (Role::Edge, format!("rh.conv.{conv}.delta")),
        (Role::Edge, subjects::JOBS_GENERATE.to_owned()),
        (Role::Edge, subjects::user_inbox(user)),
        (Role::Edge, subjects::stop_control(conv)),
        (Role::Worker, subjects::user_inbox(user)),
        (Role::Worker, subjects::stop_control(conv)),
        (Role::Worker, subjects::JOBS_GENERATE.to_owned()),
        (Role::Edge, subjects::SESSION_ENDED.to_owned()),
        (Role::Worker, subjects::SESSION_ENDED.to_owned()),
        (Role::Audit, format!("rh.conv.{conv}.event")),
        (Role::Audit, subjects::stop_control(conv)),
        // Only the edge asks the api to act for a person.
        (Role::Audit, subjects::API_SEND_MESSAGE.to_owned()),
        (Role::Worker, subjects::API_SEND_MESSAGE.to_owned()),
        (Role::Api, subjects::API_ACCESS.to_owned()),
        // Only the api creates streams; nobody but an operator deletes them.
        (Role::Edge, format!("$JS.API.STREAM.CREATE.{}", subjects::STREAM_CONV)),
        (Role::Worker, format!("$JS.API.STREAM.DELETE.{}", subjects::STREAM_JOBS)),
        (Role::Audit, format!("$JS.API.STREAM.PURGE.{}", subjects::STREAM_CONV)),
        (Role::Api, format!("$JS.API.STREAM.DELETE.{}", subjects::STREAM_CONV)),
        // Nobody but the audit writer touches its consumer.
        (Role::Edge, format!("$JS.API.CONSUMER.DELETE.{}.{}", subjects::STREAM_AUDIT, subjects::AUDIT_CONSUMER)),
        (Role::Worker, format!("$JS.API.CONSUMER.DELETE.{}.{}", subjects::STREAM_AUDIT, subjects::AUDIT_CONSUMER)),
    ];
    for (role, subject) in cases {
        assert_publish_refused(&nats, role, &subject, &marker(role)).await?;
    }
    Ok(())
}

#[tokio::test]
async fn the_edge_cannot_delete_a_stream() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    nats.jetstream().await?;
    let edge = As::connect(&nats, Role::Edge).await?;
    let js = async_nats::jetstream::new(edge.client.clone());
    let deleted = tokio::time::timeout(WAIT, js.delete_stream(subjects::STREAM_CONV)).await;
    assert!(!matches!(deleted, Ok(Ok(_))), "the edge deleted RH_CONV");
    edge.assert_refused("Publish", &format!("$JS.API.STREAM.DELETE.{}", subjects::STREAM_CONV)).await?;
    let admin = async_nats::jetstream::new(nats.client().await?);
    admin.get_stream(subjects::STREAM_CONV).await?;
    Ok(())
}

#[tokio::test]
async fn services_may_not_read_what_is_not_theirs() -> anyhow::Result<()> {
    let nats = NatsServer::start().await?;
    let cases = [
        (Role::Worker, subjects::USER_INBOX_ALL.to_owned()),
        (Role::Worker, "_INBOX_api.>".to_owned()),
        (Role::Worker, subjects::STREAM_CONV_SUBJECTS.to_owned()),
        (Role::Worker, subjects::LIVE_CONV_SUBJECTS.to_owned()),
        (Role::Audit, subjects::LIVE_CONV_SUBJECTS.to_owned()),
        (Role::Audit, subjects::USER_INBOX_ALL.to_owned()),
        (Role::Audit, subjects::STREAM_CONV_SUBJECTS.to_owned()),
        (Role::Edge, "_INBOX_api.>".to_owned()),
        (Role::Edge, subjects::API_SEND_MESSAGE.to_owned()),
        (Role::Edge, subjects::JOBS_GENERATE.to_owned()),
        (Role::Api, "_INBOX_edge.>".to_owned()),
    ];
    let admin = nats.client().await?;
    for (role, subject) in cases {
        let who = As::connect(&nats, role).await?;
        let mut sub = who.client.subscribe(subject.clone()).await?;
        who.assert_refused("Subscription", &subject).await?;
        // Something the subscription would match, then a marker on the service's own inbox: it gets the marker
        // and nothing before it.
        let concrete = subject.replace('*', "00000000-0000-0000-0000-000000000001").replace('>', "x.event");
        let mark = format!("{}.marker", role.inbox_prefix());
        let mut marks = who.client.subscribe(mark.clone()).await?;
        round_trip(&who.client, &marker(role)).await;
        admin.publish(concrete, "secret".into()).await?;
        admin.publish(mark, "marker".into()).await?;
        admin.flush().await?;
        tokio::time::timeout(WAIT, marks.next())
            .await
            .with_context(|| format!("{role:?}'s marker after subscribing to {subject}"))?
            .context("marker lost")?;
        let leaked = tokio::time::timeout(Duration::ZERO, sub.next()).await;
        assert!(!matches!(leaked, Ok(Some(_))), "{role:?} read {subject}");
    }
    Ok(())
}

/// The whole product runs with every service on its own narrow rights: sockets subscribe, catch up from the
/// stream on a second edge, send and stop over the socket, the AI answers, attachments go in and out, models are
/// listed, the sidebar follows, the transcript is stored; and the server refused nothing along the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_works_and_nothing_it_does_is_refused() -> anyhow::Result<()> {
    let t = team(StackOptions { edges: 2, ..Default::default() }).await?;
    let conv = t.api.create_conversation(&t.owner, "Closed bus").await?;
    t.api.share(&t.owner, conv, &t.ben, "respond").await?;
    let mut ada = Viewer::join(&t.stack.ws_url_of(0), &t.owner, conv, Some(0)).await?;

    // Ben sends over the socket (rh.api.send_message): the worker answers, everyone sees it, PostgreSQL keeps it.
    let mut ben = WsClient::connect(&t.stack.ws_url_of(0), &t.ben.token).await?;
    ben.send(&ClientFrame::SendMessage {
        conversation_id: conv,
        text: "/sim tokens=20 rate=200\nhello".into(),
        client_msg_id: "m1".into(),
        edit_of: None,
    })
    .await?;
    let (f, _) =
        ben.until(WAIT, |f| matches!(f, ServerFrame::MessageAccepted { .. } | ServerFrame::Error { .. })).await?;
    let ServerFrame::MessageAccepted { response_id, .. } = f else { anyhow::bail!("send refused: {f:?}") };
    ada.until_response_end(response_id).await?;
    let text = check_response(&ada.seen, response_id)?;
    assert_eq!(stored_response(&t.api, &t.owner, conv, response_id).await?, text);

    // A viewer on the other edge catches up from the stream (STREAM.MSG.GET), then stops a long response
    // (rh.api.stop -> KV rh_stops + rh.ctl).
    let mut late = Viewer::join(&t.stack.ws_url_of(1), &t.ben, conv, Some(0)).await?;
    late.until_response_end(response_id).await?;
    assert_eq!(check_response(&late.seen, response_id)?, text);
    let long = response_id_of(&t.api.send_message(&t.ben, conv, "/sim tokens=400 rate=20\nlong").await?)?;
    late.until_deltas(long, 2).await?;
    late.ws.send(&ClientFrame::Stop { conversation_id: conv, response_id: None }).await?;
    let end = late.until_response_end(long).await?;
    assert!(matches!(end.event.event, Event::ResponseStopped { .. }), "{end:?}");

    // Attachments (object store) in and out; models (rh.worker.models); the sidebar (rh.user.<id>.inbox).
    let (http, base, _) = t.api.raw();
    let form = "--b0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nbus\r\n--b0--\r\n";
    let up = http
        .post(format!("{base}/conversations/{conv}/attachments"))
        .bearer_auth(&t.ben.token)
        .header("content-type", "multipart/form-data; boundary=b0")
        .body(form)
        .send()
        .await?;
    assert_eq!(up.status().as_u16(), 201);
    let id = up.json::<serde_json::Value>().await?["id"].as_str().unwrap_or_default().to_owned();
    let down =
        http.get(format!("{base}/conversations/{conv}/attachments/{id}")).bearer_auth(&t.owner.token).send().await?;
    assert_eq!(down.bytes().await?.as_ref(), b"bus");
    let (status, models) = t.api.as_user(&t.owner).get("/models").await?;
    assert_eq!(status.as_u16(), 200, "{models}");
    let other = t.api.create_conversation(&t.owner, "For Cy").await?;
    let mut cy = WsClient::connect(&t.stack.ws_url_of(1), &t.cy.token).await?;
    cy.send(&ClientFrame::Ping).await?;
    cy.until(WAIT, |f| matches!(f, ServerFrame::Pong)).await?;
    t.api.share(&t.owner, other, &t.cy, "view").await?;
    cy.until(WAIT, |f| matches!(f, ServerFrame::Sidebar { .. })).await?;

    assert_eq!(t.stack.nats.violations(), Vec::<String>::new(), "the server refused a service something it needs");
    Ok(())
}

/// With an ops listener, `/metrics` (and the probes) are there and not on the public port an ingress or load
/// balancer routes to.
#[tokio::test]
async fn metrics_are_only_on_the_ops_port_when_there_is_one() -> anyhow::Result<()> {
    let options = StackOptions {
        edges: 0,
        workers: 0,
        audit: false,
        api_env: vec![("RH_API_OPS_LISTEN".into(), "127.0.0.1:0".into())],
        ..Default::default()
    };
    let stack = rh_testkit::Stack::start(options).await?;
    let edge = rh_testkit::Service::spawn(
        "edge",
        &[
            ("RH_NATS_URL", stack.nats.url()),
            ("RH_JWT_SECRET", stack.jwt_secret()),
            ("RH_EDGE_LISTEN", "127.0.0.1:0"),
            ("RH_EDGE_OPS_LISTEN", "127.0.0.1:0"),
        ],
    )
    .await?;
    rh_testkit::init_crypto();
    let http = reqwest::Client::new();
    for (public, ops, service) in [
        (stack.api.addr(), stack.api.listener("api_ops").await?, "api"),
        (edge.addr(), edge.listener("edge_ops").await?, "edge"),
    ] {
        let public = http.get(format!("http://{public}/metrics")).send().await?;
        assert_eq!(public.status().as_u16(), 404, "{service} serves /metrics publicly");
        let metrics = http.get(format!("http://{ops}/metrics")).send().await?;
        assert_eq!(metrics.status().as_u16(), 200);
        assert!(metrics.text().await?.contains(&format!("relayhub_{service}_")), "{service} metrics");
        let ready = rh_testkit::eventually(WAIT, "ready on the ops port", || async {
            let r = http.get(format!("http://{ops}/readyz")).send().await.ok()?;
            (r.status().as_u16() == 200).then_some(())
        });
        ready.await?;
    }
    Ok(())
}
