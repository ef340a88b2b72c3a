//! The Plex Media Server client: identity and library sections of one server.
//!
//! Owns the PMS routes Usher reads (XML, the server's default format). Rule kept: the server token
//! goes only in a sensitive header; `/identity` is called without one, as the server allows.

use std::fmt;

use reqwest::Method;
use secrecy::SecretString;
use serde::Deserialize;

use super::error::PlexError;
use super::http::{Call, Format, Http, decode_xml};
use super::model::{PmsIdentity, PmsSection, SectionKey};

const IDENTITY: &str = "GET /identity";
const SECTIONS: &str = "GET /library/sections";

/// A client for one Plex Media Server (one base URL).
#[derive(Clone)]
pub struct PmsClient {
    http: Http,
}

impl fmt::Debug for PmsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PmsClient")
            .field("base_url", &self.http.base().as_str())
            .finish_non_exhaustive()
    }
}

impl PmsClient {
    pub(crate) fn from_http(http: Http) -> Self {
        Self { http }
    }

    /// The server's machine identifier and version (no token needed).
    pub async fn identity(&self) -> Result<PmsIdentity, PlexError> {
        #[derive(Deserialize)]
        struct Container {
            #[serde(rename = "@machineIdentifier")]
            machine_identifier: String,
            #[serde(rename = "@version", default)]
            version: String,
        }
        let body = self
            .http
            .expect_success(xml_call(IDENTITY, &["identity"]), None)
            .await?;
        let container: Container = decode_xml(IDENTITY, &body, None)?;
        Ok(PmsIdentity {
            machine_identifier: container.machine_identifier,
            version: container.version,
        })
    }

    /// The server's library sections, keyed by their server-local keys.
    pub async fn library_sections(
        &self,
        token: &SecretString,
    ) -> Result<Vec<PmsSection>, PlexError> {
        #[derive(Deserialize)]
        struct Container {
            #[serde(rename = "Directory", default)]
            directories: Vec<Directory>,
        }
        #[derive(Deserialize)]
        struct Directory {
            #[serde(rename = "@key")]
            key: String,
            #[serde(rename = "@title", default)]
            title: String,
            #[serde(rename = "@type", default)]
            kind: String,
            #[serde(rename = "@uuid", default)]
            uuid: String,
        }
        let body = self
            .http
            .expect_success(xml_call(SECTIONS, &["library", "sections"]), Some(token))
            .await?;
        let container: Container = decode_xml(SECTIONS, &body, Some(token))?;
        Ok(container
            .directories
            .into_iter()
            .map(|d| PmsSection {
                key: SectionKey(d.key),
                title: d.title,
                kind: d.kind,
                uuid: d.uuid,
            })
            .collect())
    }
}

fn xml_call<'a>(endpoint: &'static str, segments: &'a [&'a str]) -> Call<'a> {
    Call {
        endpoint,
        method: Method::GET,
        segments,
        query: &[],
        accept: Format::Xml,
        body: None,
    }
}
