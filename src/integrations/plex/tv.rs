//! The plex.tv account API client: tokens, Plex sign-in (PINs), account validation, servers,
//! sections and shares.
//!
//! Owns the plex.tv routes Usher uses and their wire shapes (v2 routes as JSON, v1 routes as XML).
//! Rule kept: every call takes the owner token as a `SecretString` and sends it only in a sensitive
//! header; shares are always created with plex.tv-global section ids and `skipFriendship: true`;
//! a token a PIN yields comes back as a `SecretString` and is never logged.

use std::fmt;

use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::PlexConfig;
use super::error::{ErrorBody, PlexError};
use super::http::{Call, Format, Http, decode_error, decode_json, decode_xml};
use super::model::{
    Connection, Invite, OwnedServer, PinCheck, PlexAccount, PlexFriend, PlexPin, PlexPinId,
    PlexSection, PlexSectionId, SectionKey, ServerLibraries, ShareSettings, ShareState,
    ShareUpdate, SharedServer, SharedServerId, Validation,
};
use super::pms::PmsClient;

const USER: &str = "GET /api/v2/user";
const CREATE_PIN: &str = "POST /api/v2/pins";
const CHECK_PIN: &str = "GET /api/v2/pins/{id}";
/// Where a person signs in to Plex and approves a PIN (plex.tv's own page; not configurable).
const SIGN_IN_PAGE: &str = "https://app.plex.tv/auth";
const VALIDATE: &str = "POST /api/users/validate";
const RESOURCES: &str = "GET /api/v2/resources";
const SERVER: &str = "GET /api/servers/{machineId}";
const CREATE_SHARE: &str = "POST /api/v2/shared_servers";
const UPDATE_SHARE: &str = "POST /api/v2/shared_servers/{id}";
const DELETE_SHARE: &str = "DELETE /api/v2/shared_servers/{id}";
const ACCEPTED: &str = "GET /api/v2/shared_servers/owned/accepted";
const PENDING: &str = "GET /api/v2/shared_servers/invites/owned/pending";
const USERS: &str = "GET /api/users";

/// A plex.tv client for one Usher installation (one client identifier).
#[derive(Clone)]
pub struct PlexTvClient {
    http: Http,
    client_identifier: String,
    product: String,
}

impl fmt::Debug for PlexTvClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlexTvClient")
            .field("base_url", &self.http.base().as_str())
            .finish_non_exhaustive()
    }
}

impl PlexTvClient {
    /// Builds the client; fails only on an unusable configuration.
    pub fn new(config: &PlexConfig) -> Result<Self, PlexError> {
        Ok(Self {
            http: Http::new(config)?,
            client_identifier: config.client_identifier.clone(),
            product: config.product.clone(),
        })
    }

    /// A client for one Plex Media Server, sharing this client's connection pool and identity.
    pub fn media_server(&self, base_url: Url) -> PmsClient {
        PmsClient::from_http(self.http.rebased(base_url))
    }

    /// Tests a token: the account it belongs to (plex.tv id, uuid, username, email, Plex Pass), or
    /// [`PlexError::Unauthorized`]. Works for any account's token: an owner's, or one a
    /// subscriber's sign-in PIN yielded.
    pub async fn account(&self, token: &SecretString) -> Result<PlexAccount, PlexError> {
        #[derive(Deserialize)]
        struct Wire {
            id: u64,
            uuid: String,
            username: String,
            email: String,
            #[serde(default)]
            subscription: Option<Subscription>,
        }
        #[derive(Deserialize)]
        struct Subscription {
            #[serde(default)]
            active: bool,
        }
        let body = self
            .http
            .expect_success(
                json_call(USER, Method::GET, &["api", "v2", "user"]),
                Some(token),
            )
            .await?;
        let wire: Wire = decode_json(USER, &body, Some(token))?;
        Ok(PlexAccount {
            id: wire.id,
            uuid: wire.uuid,
            username: wire.username,
            email: wire.email,
            plex_pass: wire.subscription.is_some_and(|s| s.active),
        })
    }

    /// Starts a Plex sign-in: `POST /api/v2/pins?strong=true` (no token), a PIN bound to this
    /// installation's client identifier. Send the person to [`Self::sign_in_url`], then poll
    /// [`Self::check_pin`].
    pub async fn create_pin(&self) -> Result<PlexPin, PlexError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire {
            id: u64,
            code: String,
            #[serde(default)]
            expires_at: Option<String>,
        }
        let call = Call {
            query: &[("strong", "true")],
            ..json_call(CREATE_PIN, Method::POST, &["api", "v2", "pins"])
        };
        let body = self.http.expect_success(call, None).await?;
        let wire: Wire = decode_json(CREATE_PIN, &body, None)?;
        if wire.code.is_empty() {
            return Err(decode_error(CREATE_PIN, "the PIN has no code", None));
        }
        Ok(PlexPin {
            id: PlexPinId(wire.id),
            code: wire.code,
            expires_at: wire
                .expires_at
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(&at).ok())
                .map(|at| at.to_utc()),
        })
    }

    /// The page where a person signs in to Plex and approves `pin`; after approving, plex.tv
    /// sends the browser to `forward` when given (a web sign-in's return page).
    pub fn sign_in_url(&self, pin: &PlexPin, forward: Option<&Url>) -> Url {
        let mut fragment = url::form_urlencoded::Serializer::new(String::new());
        fragment
            .append_pair("clientID", &self.client_identifier)
            .append_pair("code", &pin.code)
            .append_pair("context[device][product]", &self.product);
        if let Some(forward) = forward {
            fragment.append_pair("forwardUrl", forward.as_str());
        }
        let mut url = Url::parse(SIGN_IN_PAGE).expect("constant URL");
        url.set_fragment(Some(&format!("?{}", fragment.finish())));
        url
    }

    /// Polls a PIN (`GET /api/v2/pins/{id}`, no token): [`PinCheck::Approved`] with the signed-in
    /// account's token once the person approved it, [`PinCheck::Expired`] once plex.tv forgot it.
    pub async fn check_pin(&self, pin: PlexPinId) -> Result<PinCheck, PlexError> {
        let id = pin.to_string();
        let segments = ["api", "v2", "pins", &id];
        let reply = self
            .http
            .send(json_call(CHECK_PIN, Method::GET, &segments), None)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(PinCheck::Expired);
        }
        if !reply.status.is_success() {
            return Err(reply.into_error(CHECK_PIN, None));
        }
        // Read by hand: a decoder's message could quote the token it choked on.
        let answer: serde_json::Value = serde_json::from_slice(&reply.body)
            .map_err(|_| decode_error(CHECK_PIN, "the PIN answer is not JSON", None))?;
        Ok(
            match answer.get("authToken").and_then(serde_json::Value::as_str) {
                Some(token) if !token.is_empty() => {
                    PinCheck::Approved(SecretString::from(token.to_owned()))
                }
                _ => PinCheck::Waiting,
            },
        )
    }

    /// Asks plex.tv whether an email or username is an account. A 410 means the check is
    /// unavailable, never that the user is invalid.
    pub async fn validate_user(
        &self,
        token: &SecretString,
        email_or_username: &str,
    ) -> Result<Validation, PlexError> {
        let query = [("invited_email", email_or_username)];
        let call = Call {
            endpoint: VALIDATE,
            method: Method::POST,
            segments: &["api", "users", "validate"],
            query: &query,
            accept: Format::Xml,
            body: None,
        };
        let reply = self.http.send(call, Some(token)).await?;
        match reply.status {
            StatusCode::GONE => return Ok(Validation::ValidationUnavailable),
            StatusCode::OK | StatusCode::BAD_REQUEST => {
                let answer = ErrorBody::parse(&reply.body);
                match answer.code {
                    Some(0) if reply.status == StatusCode::OK => return Ok(Validation::Valid),
                    Some(code) if code != 0 => return Ok(Validation::NotAnAccount),
                    _ if reply.status == StatusCode::OK => {
                        return Err(decode_error(VALIDATE, "no <Response code> in reply", None));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Err(reply.into_error(VALIDATE, Some(token)))
    }

    /// The servers the owner account owns, with their connections.
    pub async fn owned_servers(&self, token: &SecretString) -> Result<Vec<OwnedServer>, PlexError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Resource {
            name: String,
            client_identifier: String,
            #[serde(default)]
            provides: String,
            #[serde(default)]
            owned: bool,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            connections: Vec<WireConnection>,
        }
        #[derive(Deserialize)]
        struct WireConnection {
            uri: String,
            #[serde(default)]
            local: bool,
            #[serde(default)]
            relay: bool,
        }
        let query = [("includeHttps", "1"), ("includeRelay", "1")];
        let call = Call {
            query: &query,
            ..json_call(RESOURCES, Method::GET, &["api", "v2", "resources"])
        };
        let body = self.http.expect_success(call, Some(token)).await?;
        let resources: Vec<Resource> = decode_json(RESOURCES, &body, Some(token))?;
        resources
            .into_iter()
            .filter(|r| r.owned && r.provides.split(',').any(|p| p.trim() == "server"))
            .map(|r| {
                let connections = r
                    .connections
                    .into_iter()
                    .map(|c| {
                        let uri = Url::parse(&c.uri).map_err(|e| {
                            decode_error(RESOURCES, &format!("connection uri: {e}"), Some(token))
                        })?;
                        Ok(Connection {
                            uri,
                            local: c.local,
                            relay: c.relay,
                        })
                    })
                    .collect::<Result<_, PlexError>>()?;
                Ok(OwnedServer {
                    machine_identifier: r.client_identifier,
                    name: r.name,
                    access_token: r.access_token.map(SecretString::from),
                    connections,
                })
            })
            .collect()
    }

    /// A server's library sections with their plex.tv-global ids (the v1 XML route).
    pub async fn server_libraries(
        &self,
        token: &SecretString,
        machine_identifier: &str,
    ) -> Result<ServerLibraries, PlexError> {
        #[derive(Deserialize)]
        struct Container {
            #[serde(rename = "Server", default)]
            servers: Vec<XmlServer>,
        }
        #[derive(Deserialize)]
        struct XmlServer {
            #[serde(rename = "@machineIdentifier")]
            machine_identifier: String,
            #[serde(rename = "@name", default)]
            name: String,
            #[serde(rename = "Section", default)]
            sections: Vec<XmlSection>,
        }
        #[derive(Deserialize)]
        struct XmlSection {
            #[serde(rename = "@id")]
            id: u64,
            #[serde(rename = "@key")]
            key: String,
            #[serde(rename = "@title", default)]
            title: String,
            #[serde(rename = "@type", default)]
            kind: String,
        }
        let call = Call {
            endpoint: SERVER,
            method: Method::GET,
            segments: &["api", "servers", machine_identifier],
            query: &[],
            accept: Format::Xml,
            body: None,
        };
        let body = self.http.expect_success(call, Some(token)).await?;
        let container: Container = decode_xml(SERVER, &body, Some(token))?;
        let server = container
            .servers
            .into_iter()
            .find(|s| s.machine_identifier == machine_identifier)
            .ok_or_else(|| decode_error(SERVER, "the reply lists no such server", None))?;
        Ok(ServerLibraries {
            machine_identifier: server.machine_identifier,
            name: server.name,
            sections: server
                .sections
                .into_iter()
                .map(|s| PlexSection {
                    id: PlexSectionId(s.id),
                    key: SectionKey(s.key),
                    title: s.title,
                    kind: s.kind,
                })
                .collect(),
        })
    }

    /// Shares a server with a user (v2, `skipFriendship: true`); the share starts pending.
    pub async fn invite(
        &self,
        token: &SecretString,
        invite: &Invite,
    ) -> Result<SharedServer, PlexError> {
        let call = Call {
            body: Some(json!({
                "machineIdentifier": invite.machine_identifier,
                "invitedEmail": invite.invited,
                "librarySectionIds": invite.library_ids,
                "settings": invite.settings,
                "skipFriendship": true,
            })),
            ..json_call(CREATE_SHARE, Method::POST, &["api", "v2", "shared_servers"])
        };
        let body = self.http.expect_success(call, Some(token)).await?;
        let share: WireShare = decode_json(CREATE_SHARE, &body, Some(token))?;
        Ok(share.into())
    }

    /// Replaces a share's libraries and settings (send the full settings every time).
    pub async fn update_share(
        &self,
        token: &SecretString,
        share: SharedServerId,
        update: &ShareUpdate,
    ) -> Result<(), PlexError> {
        let id = share.to_string();
        let segments = ["api", "v2", "shared_servers", &id];
        let call = Call {
            body: Some(json!({
                "settings": update.settings,
                "librarySectionIds": update.library_ids,
            })),
            ..json_call(UPDATE_SHARE, Method::POST, &segments)
        };
        self.http.expect_success(call, Some(token)).await?;
        Ok(())
    }

    /// Removes a share, accepted or pending.
    pub async fn delete_share(
        &self,
        token: &SecretString,
        share: SharedServerId,
    ) -> Result<(), PlexError> {
        let id = share.to_string();
        let segments = ["api", "v2", "shared_servers", &id];
        let call = json_call(DELETE_SHARE, Method::DELETE, &segments);
        self.http.expect_success(call, Some(token)).await?;
        Ok(())
    }

    /// Every share of every server the owner account has, accepted and pending (two calls).
    pub async fn owned_shares(&self, token: &SecretString) -> Result<Vec<SharedServer>, PlexError> {
        let mut all = self.all_accepted(token).await?;
        all.extend(self.all_pending(token).await?);
        Ok(all)
    }

    async fn all_accepted(&self, token: &SecretString) -> Result<Vec<SharedServer>, PlexError> {
        let segments = ["api", "v2", "shared_servers", "owned", "accepted"];
        let body = self
            .http
            .expect_success(json_call(ACCEPTED, Method::GET, &segments), Some(token))
            .await?;
        let shares: Vec<WireShare> = decode_json(ACCEPTED, &body, Some(token))?;
        Ok(shares.into_iter().map(SharedServer::from).collect())
    }

    async fn all_pending(&self, token: &SecretString) -> Result<Vec<SharedServer>, PlexError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct WireInvite {
            #[serde(default)]
            shared_servers: Vec<WireShare>,
        }
        let segments = ["api", "v2", "shared_servers", "invites", "owned", "pending"];
        let body = self
            .http
            .expect_success(json_call(PENDING, Method::GET, &segments), Some(token))
            .await?;
        let invites: Vec<WireInvite> = decode_json(PENDING, &body, Some(token))?;
        Ok(invites
            .into_iter()
            .flat_map(|i| i.shared_servers)
            .map(|s| SharedServer {
                state: ShareState::Pending,
                ..s.into()
            })
            .collect())
    }

    /// The accepted shares of one server.
    pub async fn accepted_shares(
        &self,
        token: &SecretString,
        machine_identifier: &str,
    ) -> Result<Vec<SharedServer>, PlexError> {
        let mut shares = self.all_accepted(token).await?;
        shares.retain(|s| s.machine_identifier == machine_identifier);
        Ok(shares)
    }

    /// The invites to one server that are still waiting for the user to accept.
    pub async fn pending_invites(
        &self,
        token: &SecretString,
        machine_identifier: &str,
    ) -> Result<Vec<SharedServer>, PlexError> {
        let mut shares = self.all_pending(token).await?;
        shares.retain(|s| s.machine_identifier == machine_identifier);
        Ok(shares)
    }
    /// The owner's friends and Plex Home members (`GET /api/users`, v1 XML): everyone who holds
    /// a seat on the account besides pending invitees and the owner.
    pub async fn users(&self, token: &SecretString) -> Result<Vec<PlexFriend>, PlexError> {
        #[derive(Deserialize)]
        struct Container {
            #[serde(rename = "User", default)]
            users: Vec<XmlUser>,
        }
        #[derive(Deserialize)]
        struct XmlUser {
            #[serde(rename = "@id")]
            id: u64,
            #[serde(rename = "@username", default)]
            username: String,
            #[serde(rename = "@title", default)]
            title: String,
            #[serde(rename = "@email", default)]
            email: String,
            #[serde(rename = "@home", default)]
            home: String,
            #[serde(rename = "@restricted", default)]
            restricted: String,
        }
        let call = Call {
            endpoint: USERS,
            method: Method::GET,
            segments: &["api", "users"],
            query: &[],
            accept: Format::Xml,
            body: None,
        };
        let body = self.http.expect_success(call, Some(token)).await?;
        let container: Container = decode_xml(USERS, &body, Some(token))?;
        let yes = |v: &str| v == "1" || v.eq_ignore_ascii_case("true");
        Ok(container
            .users
            .into_iter()
            .map(|u| PlexFriend {
                id: u.id,
                username: if u.username.is_empty() {
                    u.title
                } else {
                    u.username
                },
                email: Some(u.email).filter(|e| !e.is_empty()),
                home: yes(&u.home),
                restricted: yes(&u.restricted),
            })
            .collect())
    }
}

fn json_call<'a>(endpoint: &'static str, method: Method, segments: &'a [&'a str]) -> Call<'a> {
    Call {
        endpoint,
        method,
        segments,
        query: &[],
        accept: Format::Json,
        body: None,
    }
}

/// A v2 share object, as `POST /api/v2/shared_servers` and the share listings return it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireShare {
    id: u64,
    machine_identifier: String,
    #[serde(default)]
    invited_id: Option<u64>,
    #[serde(default)]
    invited_email: Option<String>,
    #[serde(default)]
    invited: Option<WireInvited>,
    #[serde(default)]
    accepted: bool,
    #[serde(default)]
    sharing_settings: Option<ShareSettings>,
    #[serde(default)]
    libraries: Vec<WireLibrary>,
    #[serde(default)]
    all_libraries: bool,
    // plex.tv keeps listing a share whose user left (or that was deleted) for a while, with the
    // time it happened; such a share gives no access and holds no seat.
    #[serde(default)]
    left_at: Option<serde_json::Value>,
    #[serde(default)]
    deleted_at: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct WireInvited {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
struct WireLibrary {
    id: u64,
}

impl From<WireShare> for SharedServer {
    fn from(wire: WireShare) -> Self {
        let invited = wire.invited.unwrap_or(WireInvited {
            id: None,
            username: None,
            email: None,
        });
        Self {
            id: SharedServerId(wire.id),
            machine_identifier: wire.machine_identifier,
            invited_id: wire.invited_id.or(invited.id),
            invited_email: wire.invited_email.or(invited.email),
            invited_username: invited.username,
            state: if wire.accepted {
                ShareState::Accepted
            } else {
                ShareState::Pending
            },
            library_ids: wire.libraries.iter().map(|l| PlexSectionId(l.id)).collect(),
            all_libraries: wire.all_libraries,
            settings: wire.sharing_settings.unwrap_or_default(),
            left: [&wire.left_at, &wire.deleted_at]
                .into_iter()
                .any(|at| at.as_ref().is_some_and(|v| !v.is_null())),
        }
    }
}
