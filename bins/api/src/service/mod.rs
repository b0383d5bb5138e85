//! The api's domain operations, shared by the REST routes and the NATS responders, so a message sent over a
//! socket (`rh.api.send_message`) and one posted over HTTP take exactly the same path.
//!
//! | module | operations |
//! |---|---|
//! | [`access`] | who may do what: [`access::check`] (one query: 404 when the caller cannot see it, 403 when they may not do it) makes the [`access::Authorized`] the act step takes, the `rh.api.access` grant |
//! | [`admin`] | org admins' views: conversation metadata, the audit log (never message text) |
//! | [`directory`] | the org directory search behind "share with…" (only the caller's org) |
//! | [`attachments`] | reading a file of a conversation (any participant) |
//! | [`grants`] | `rh.api.access` answered in batches: one statement per conversation for everything queued |
//! | [`events`] | the one path of a state change: [`events::Change`] commits it with its events and sidebar messages (the outbox the relay publishes) |
//! | [`conversations`] | create, change settings, delete |
//! | [`views`] | what participants read: a conversation with a page of its history, the sidebar list |
//! | [`copy`] | continue as a copy: a new conversation of your own from one you can see |
//! | [`export`] | a conversation as JSON or Markdown |
//! | [`search`] | full-text search over what the caller can see |
//! | [`context`] | a generation job's context, capped by bytes (oldest turns dropped first) |
//! | [`erase`] | delete = erase everywhere: the erase job and its runner |
//! | [`retention`] | per-org retention: the setting and the task that deletes what it expired |
//! | [`limits`] | every limit on abuse, shared by the replicas (AI replies, `max_tokens`, ...): checked before acting |
//! | [`members`] | an org admin removes a member or resets their password (both end their sessions); anyone changes their own |
//! | [`invites`] | invitations: create, list, revoke (admins); look up and accept (the invited, who is signed in) |
//! | [`messages`] | send a message (event + response claim + generation job), also as an edit |
//! | [`versions`] | versions of the last turn: what an edit may replace, regenerate an answer |
//! | [`stops`] | stop one answer or all of a conversation's, also one no worker holds yet |
//! | [`sessions`] | login sessions: open, refresh (rotating, reuse ends the session), end one, end all of a person's |
//! | [`shares`] | share with several people, change, revoke; shares that expire |
//! | [`sso`] | single sign-on per org: the provider (org admins), discovery by email domain, passwords off |
//! | [`sso_login`] | the OIDC authorization code flow with PKCE: start, callback (ID token checks, a session) |
//! | [`sso_account`] | the account an ID token signs in as: by the provider's subject, bound on first sign-in; provisioning |
//! | [`oidc_http`] | the HTTP client the flow calls providers with |
//! | [`teams`] | teams and their members (org admins), sharing with a team (owners) |
//! | [`reach`] | who gained, lost or changed access by a change of shares or teams: their events and sidebar messages |

pub mod access;
pub mod admin;
pub mod attachments;
pub mod context;
pub mod conversations;
pub mod copy;
pub mod directory;
pub mod erase;
pub mod events;
pub mod export;
pub mod grants;
pub mod invites;
pub mod limits;
pub mod members;
pub mod messages;
pub mod models;
pub mod oidc_http;
pub mod reach;
pub mod retention;
pub mod search;
pub mod sessions;
pub mod shares;
pub mod sso;
pub mod sso_account;
pub mod sso_login;
pub mod stops;
pub mod teams;
pub mod versions;
pub mod views;
