//! Single sign-on per organization (issue 15) against a REAL OpenID Connect provider (`e2e/oidc/provider.mjs`,
//! npm `oidc-provider`) on a free port: an org admin sets it up; a person at the org's domain signs in at the
//! provider's login page and joins the org; a password account of the org signs in as itself. Refused, each with
//! its own code: a tampered state, a sign-in finished in another browser, a replayed callback, a replayed code, a
//! wrong audience, an expired ID token, a replayed ID token, one signed by a key not in the JWKS, an unverified
//! email, an email of another domain or another org. With passwords off: password sign-in, adding a member with a
//! password, joining by invite with a password and signing up at the domain are refused; the invited join by SSO.
//! Accounts are bound to the provider's subject on their first sign-in: an email the provider gives to someone
//! else is refused (`sso_account_bound`), a person whose email changed there still signs in as themselves.

use crate::helpers::*;
use crate::oidc::{CLIENT, PUBLIC_URL, Provider, Return, sign_in_at_provider};
use reqwest::StatusCode;
use rh_protocol::sso::{SsoConfig, SsoDiscovery, SsoStart};
use rh_testkit::{Api, StackOptions};
use serde_json::{Value, json};
use uuid::Uuid;

/// Starts a sign-in at `org_id`'s provider and signs in there as `email`.
async fn at_provider(anon: &Api, p: &Provider, org_id: Uuid, email: &str) -> anyhow::Result<(SsoStart, Return)> {
    let (s, v) = anon.post("/auth/sso/start", json!({ "org_id": org_id })).await?;
    anyhow::ensure!(s.is_success(), "start: {s} {v}");
    let start: SsoStart = serde_json::from_value(v)?;
    let back = sign_in_at_provider(&p.issuer, &start.authorize_url, email).await?;
    Ok((start, back))
}

async fn callback(anon: &Api, start: &SsoStart, back: &Return) -> anyhow::Result<(StatusCode, Value)> {
    let body = json!({ "code": back.code, "state": back.state, "browser_key": start.browser_key });
    anon.post("/auth/sso/callback", body).await
}

/// A whole sign-in as `email`: the callback's answer.
async fn sign_in(anon: &Api, p: &Provider, org_id: Uuid, email: &str) -> anyhow::Result<(StatusCode, Value)> {
    let (start, back) = at_provider(anon, p, org_id, email).await?;
    callback(anon, &start, &back).await
}

#[track_caller]
fn refused(got: (StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!((got.0, got.1["error"]["code"].as_str()), (status, Some(code)), "{}", got.1);
}

/// A team (Acme) whose api knows its public URL and allows the local provider, and that provider.
async fn team_and_provider() -> anyhow::Result<(Team, Provider)> {
    let env = vec![
        ("RH_PUBLIC_URL".to_owned(), PUBLIC_URL.to_owned()),
        ("RH_SSO_ALLOWED_ISSUERS".to_owned(), "http://127.0.0.1:".to_owned()),
        // Some twenty sign-ins from one address within seconds.
        ("RH_LIMIT_SIGNIN_ADDR_BURST".to_owned(), "200".to_owned()),
    ];
    tokio::try_join!(team(StackOptions { api_env: env, ..StackOptions::default() }), Provider::start())
}

/// An org's provider settings: the local provider, vouching for `domain`.
fn provider_config(p: &Provider, display_name: &str, domain: &str) -> Value {
    json!({
        "issuer": p.issuer, "client_id": CLIENT.0, "client_secret": CLIENT.1,
        "display_name": display_name, "email_domains": [domain],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_with_their_orgs_provider_and_every_bad_sign_in_is_refused() -> anyhow::Result<()> {
    let (t, p) = team_and_provider().await?;
    let (acme, admin, anon) = (t.owner.org_id, t.api.as_user(&t.owner), t.stack.api());
    let tag = Uuid::new_v4().simple().to_string();
    let globex = anon.sign_up("Globex", "Gil", &format!("gil-{tag}@globex.test"), "pw-gil-123456").await?;
    let sso_path = format!("/orgs/{acme}/sso");
    let config = provider_config(&p, "Acme Login", "Acme.test");

    // Setting it up: org admins only; a domain where another org has people cannot be claimed.
    refused(t.api.as_user(&t.ben).put(&sso_path, config.clone()).await?, StatusCode::FORBIDDEN, "forbidden");
    let mut claim_globex = config.clone();
    claim_globex["email_domains"] = json!(["acme.test", "globex.test"]);
    refused(admin.put(&sso_path, claim_globex).await?, StatusCode::CONFLICT, "conflict");
    let mut unreachable = config.clone();
    unreachable["issuer"] = json!("http://127.0.0.1:9/nothing");
    refused(admin.put(&sso_path, unreachable).await?, StatusCode::BAD_GATEWAY, "sso_provider_unavailable");
    let (s, v) = admin.put(&sso_path, config.clone()).await?;
    assert!(s.is_success(), "{s} {v}");
    let (s, v) = admin.get(&sso_path).await?;
    assert!(s.is_success() && !v.to_string().contains(CLIENT.1), "the secret never comes back: {v}");
    let set: SsoConfig = serde_json::from_value(v)?;
    assert_eq!((set.email_domains, set.client_secret_set), (vec!["acme.test".to_owned()], true));
    assert_eq!(set.redirect_uri, format!("{PUBLIC_URL}/"));
    refused(t.api.as_user(&globex).get(&sso_path).await?, StatusCode::FORBIDDEN, "forbidden");

    // Discovery by domain: the same answer for a person with an account and one without.
    let discover = |email: String| {
        let anon = anon.clone();
        async move { anon.get(&format!("/auth/sso?email={email}")).await }
    };
    let (s, known) = discover(t.ben.email.clone()).await?;
    let (_, unknown) = discover(format!("nobody-{tag}@acme.test")).await?;
    assert!(s.is_success() && known == unknown, "{known} vs {unknown}");
    let found: SsoDiscovery = serde_json::from_value(known)?;
    assert_eq!(found.sso.map(|o| (o.org_id, o.display_name)), Some((acme, "Acme Login".to_owned())));
    let (_, none) = discover(format!("gil-{tag}@globex.test")).await?;
    assert_eq!(none, json!({ "sso": null }));
    refused(discover("not-an-email".into()).await?, StatusCode::BAD_REQUEST, "bad_request");

    // A person new to the org signs in at the provider and joins it (member); the next sign-in is the same account.
    let zoe = format!("zoe-{tag}@acme.test");
    let (s, v) = sign_in(&anon, &p, acme, &zoe).await?;
    assert!(s.is_success(), "{s} {v}");
    let (s, me) = anon.with_token(v["token"].as_str().unwrap_or_default()).get("/me").await?;
    assert!(s.is_success(), "{me}");
    assert_eq!(
        (me["org_id"].as_str(), me["role"].as_str(), me["email"].as_str()),
        (Some(&*acme.to_string()), Some("member"), Some(&*zoe))
    );
    let (_, again) = sign_in(&anon, &p, acme, &zoe).await?;
    assert_eq!(again["user"]["id"], me["id"], "{again}");
    // The session is the password login's: it refreshes.
    let (s, v) = anon.post("/auth/refresh", json!({ "refresh_token": again["refresh_token"] })).await?;
    assert!(s.is_success(), "{s} {v}");
    // A password account of the org signs in as itself.
    let (_, ben) = sign_in(&anon, &p, acme, &t.ben.email).await?;
    assert_eq!(ben["user"]["id"], json!(t.ben.user_id), "{ben}");

    // A tampered state, then the right state from another browser (which uses the sign-in up).
    let (start, back) = at_provider(&anon, &p, acme, &format!("tam-{tag}@acme.test")).await?;
    let mut tampered = back.clone();
    tampered.state.push('x');
    refused(callback(&anon, &start, &tampered).await?, StatusCode::BAD_REQUEST, "sso_state_invalid");
    let other_browser = SsoStart { browser_key: "someone-elses-key".into(), ..start.clone() };
    refused(callback(&anon, &other_browser, &back).await?, StatusCode::BAD_REQUEST, "sso_state_invalid");
    refused(callback(&anon, &start, &back).await?, StatusCode::BAD_REQUEST, "sso_state_invalid");

    // A replayed callback, and its code brought to a new sign-in.
    let (start, back) = at_provider(&anon, &p, acme, &zoe).await?;
    assert!(callback(&anon, &start, &back).await?.0.is_success());
    refused(callback(&anon, &start, &back).await?, StatusCode::BAD_REQUEST, "sso_state_invalid");
    let (start2, back2) = at_provider(&anon, &p, acme, &zoe).await?;
    let stolen = Return { code: back.code.clone(), state: back2.state };
    refused(callback(&anon, &start2, &stolen).await?, StatusCode::UNAUTHORIZED, "sso_code_rejected");

    // ID tokens the provider's token endpoint hands out wrong (re-signed with its own key, or another one).
    for (mode, status, code) in [
        ("wrong-audience", StatusCode::UNAUTHORIZED, "sso_token_audience"),
        ("expired", StatusCode::UNAUTHORIZED, "sso_token_expired"),
        ("foreign-key", StatusCode::UNAUTHORIZED, "sso_token_invalid"),
    ] {
        p.set_mode(mode).await?;
        refused(sign_in(&anon, &p, acme, &zoe).await?, status, code);
    }
    // A sign-in that works, then the provider hands its ID token out again.
    p.set_mode("normal").await?;
    assert!(sign_in(&anon, &p, acme, &zoe).await?.0.is_success());
    p.set_mode("replay").await?;
    refused(sign_in(&anon, &p, acme, &zoe).await?, StatusCode::UNAUTHORIZED, "sso_token_replayed");
    p.set_mode("normal").await?;

    // Unverified email; another domain; a person of another org: refused, and no account is made.
    let unverified = format!("unverified-{tag}@acme.test");
    refused(sign_in(&anon, &p, acme, &unverified).await?, StatusCode::FORBIDDEN, "sso_email_unverified");
    let outsider = format!("mallory-{tag}@elsewhere.test");
    refused(sign_in(&anon, &p, acme, &outsider).await?, StatusCode::FORBIDDEN, "sso_domain_not_allowed");
    refused(sign_in(&anon, &p, acme, &globex.email).await?, StatusCode::FORBIDDEN, "sso_domain_not_allowed");
    let (_, people) = admin.get("/users?q=").await?;
    for email in [&unverified, &outsider] {
        assert!(!people.to_string().contains(email.as_str()), "{email} was provisioned: {people}");
    }

    // Passwords off.
    let mut off = config.clone();
    off["passwords_off"] = json!(true);
    off.as_object_mut().map(|o| o.remove("client_secret"));
    let (s, v) = admin.put(&sso_path, off).await?;
    assert!(s.is_success() && v["passwords_off"] == json!(true), "{s} {v}");
    let login = |email: String, password: &'static str| {
        let anon = anon.clone();
        async move { anon.post("/auth/login", json!({ "email": email, "password": password })).await }
    };
    refused(login(t.ben.email.clone(), "pw-ben-123456").await?, StatusCode::FORBIDDEN, "passwords_off");
    refused(login(format!("nobody-{tag}@acme.test"), "whatever-123").await?, StatusCode::FORBIDDEN, "passwords_off");
    let member = json!({ "name": "Pat", "email": format!("pat-{tag}@acme.test"), "password": "pw-pat-123456" });
    refused(admin.post(&format!("/orgs/{acme}/members"), member).await?, StatusCode::FORBIDDEN, "passwords_off");
    let signup = json!({ "org_name": "Acme 2", "name": "Sam", "email": format!("sam-{tag}@acme.test"), "password": "pw-sam-123456" });
    refused(anon.post("/orgs", signup).await?, StatusCode::FORBIDDEN, "passwords_off");
    // An invited contractor at another domain: not with a password, but by SSO, with the invite's role.
    let contractor = format!("cleo-{tag}@contractor.test");
    let (s, v) =
        admin.post(&format!("/orgs/{acme}/invites"), json!({ "emails": [contractor], "role": "admin" })).await?;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let token = v["invites"][0]["token"].as_str().unwrap_or_default().to_owned();
    let accept = json!({ "token": token, "name": "Cleo", "password": "pw-cleo-123456" });
    refused(anon.post("/invites/accept", accept).await?, StatusCode::FORBIDDEN, "passwords_off");
    let (s, v) = sign_in(&anon, &p, acme, &contractor).await?;
    assert!(s.is_success() && v["user"]["role"] == "admin" && v["user"]["org_id"] == json!(acme), "{s} {v}");
    let (_, invites) = admin.get(&format!("/orgs/{acme}/invites")).await?;
    assert_eq!(invites["invites"][0]["status"], "used", "{invites}");
    // SSO still signs Ben in; another org's passwords are untouched.
    assert!(sign_in(&anon, &p, acme, &t.ben.email).await?.0.is_success());
    anon.login(&globex.email, "pw-gil-123456").await?;

    // Everything is in the audit log.
    let (_, audit) = admin.get("/admin/audit").await?;
    for action in ["sso.configured", "sso.joined"] {
        assert!(audit.to_string().contains(action), "{action} missing: {audit}");
    }
    // Turned off: passwords work again.
    let (s, _) = admin.delete(&sso_path).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    anon.login(&t.ben.email, "pw-ben-123456").await?;
    Ok(())
}

/// The provider's subject (`sub`) names the person; an email finds the account only on its first sign-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_bound_to_the_providers_subject_and_a_reassigned_email_takes_nothing_over() -> anyhow::Result<()> {
    let (t, p) = team_and_provider().await?;
    let (acme, admin, anon) = (t.owner.org_id, t.api.as_user(&t.owner), t.stack.api());
    let tag = Uuid::new_v4().simple().to_string();
    let (s, v) = admin.put(&format!("/orgs/{acme}/sso"), provider_config(&p, "Acme Login", "acme.test")).await?;
    assert!(s.is_success(), "{s} {v}");

    // First sign-ins: Zoe joins; Ben, who has a password account, signs in as himself. Both are bound now.
    let zoe = format!("zoe-{tag}@acme.test");
    let (s, first) = sign_in(&anon, &p, acme, &zoe).await?;
    assert!(s.is_success(), "{s} {first}");
    let zoe_id = first["user"]["id"].clone();
    let (_, ben) = sign_in(&anon, &p, acme, &t.ben.email).await?;
    assert_eq!(ben["user"]["id"], json!(t.ben.user_id), "{ben}");

    // The provider gives their emails to other people (other subjects): refused, and nothing changes hands.
    for (n, email) in [&zoe, &t.ben.email].into_iter().enumerate() {
        let newcomer = format!("newcomer-{n}-{tag}");
        p.set_email(&newcomer, email).await?;
        refused(sign_in(&anon, &p, acme, &newcomer).await?, StatusCode::FORBIDDEN, "sso_account_bound");
    }
    let (_, again) = sign_in(&anon, &p, acme, &t.ben.email).await?;
    assert_eq!(again["user"]["id"], json!(t.ben.user_id), "{again}");

    // Zoe's email changes at the provider: her subject still signs in as her, and her account keeps its email.
    let renamed = format!("zoe.renamed-{tag}@acme.test");
    p.set_email(&zoe, &renamed).await?;
    let (s, v) = sign_in(&anon, &p, acme, &zoe).await?;
    assert!(s.is_success(), "{s} {v}");
    assert_eq!((&v["user"]["id"], v["user"]["email"].as_str()), (&zoe_id, Some(&*zoe)), "{v}");
    let (_, people) = admin.get("/users?q=renamed").await?;
    assert!(!people.to_string().contains(&renamed), "an account was made for the new email: {people}");

    // An identity bound in another org (same provider) signs in only there, whatever email it brings.
    let gil = format!("gil-{tag}@globex.test");
    let globex = anon.sign_up("Globex", "Gil", &gil, "pw-gil-123456").await?;
    let globex_sso = provider_config(&p, "Globex Login", "globex.test");
    let (s, v) = t.api.as_user(&globex).put(&format!("/orgs/{}/sso", globex.org_id), globex_sso).await?;
    assert!(s.is_success(), "{s} {v}");
    let (_, v) = sign_in(&anon, &p, globex.org_id, &gil).await?;
    assert_eq!(v["user"]["id"], json!(globex.user_id), "{v}");
    p.set_email(&gil, &format!("gil-{tag}@acme.test")).await?;
    refused(sign_in(&anon, &p, acme, &gil).await?, StatusCode::FORBIDDEN, "sso_domain_not_allowed");

    // A removed member's identity signs in no more.
    let (s, _) = admin.delete(&format!("/orgs/{acme}/members/{}", zoe_id.as_str().unwrap_or_default())).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    refused(sign_in(&anon, &p, acme, &zoe).await?, StatusCode::FORBIDDEN, "sso_domain_not_allowed");

    // Binding an account that existed before is in the audit log.
    let (_, audit) = admin.get("/admin/audit").await?;
    assert!(audit.to_string().contains("sso.bound"), "sso.bound missing: {audit}");
    Ok(())
}
