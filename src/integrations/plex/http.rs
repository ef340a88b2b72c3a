//! The one place requests to plex.tv and Plex Media Servers are built and sent.
//!
//! Owns the identity headers, the token header and the status classification. Rule kept: the
//! token travels only in the `X-Plex-Token` header, marked sensitive, never in a URL, a log line or
//! an error; transport errors are stripped of their URL before they are returned.

use std::fmt;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::PlexConfig;
use super::error::PlexError;

const X_PLEX_TOKEN: HeaderName = HeaderName::from_static("x-plex-token");

/// Which representation a call asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Format {
    Json,
    Xml,
}

/// One request, described before it is sent.
pub(crate) struct Call<'a> {
    /// `METHOD /route/template`, used in logs and errors.
    pub(crate) endpoint: &'static str,
    pub(crate) method: Method,
    pub(crate) segments: &'a [&'a str],
    pub(crate) query: &'a [(&'a str, &'a str)],
    pub(crate) accept: Format,
    pub(crate) body: Option<serde_json::Value>,
}

/// A response that came back, whatever its status.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// A `reqwest::Client` carrying the installation's identity headers, plus one base URL.
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    base: Url,
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Http {
    pub(crate) fn new(config: &PlexConfig) -> Result<Self, PlexError> {
        let header = |name: &'static str, value: &str| {
            HeaderValue::from_str(value)
                .map(|v| (HeaderName::from_static(name), v))
                .map_err(|_| PlexError::Config {
                    detail: format!("{name} is not a valid header value"),
                })
        };
        let mut headers = HeaderMap::new();
        for (name, value) in [
            header("x-plex-client-identifier", &config.client_identifier)?,
            header("x-plex-product", &config.product)?,
            header("x-plex-version", &config.version)?,
        ] {
            headers.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .default_headers(headers)
            .timeout(config.timeout)
            .build()
            .map_err(|e| PlexError::Config {
                detail: e.without_url().to_string(),
            })?;
        Ok(Self {
            client,
            base: with_trailing_slash(config.base_url.clone()),
        })
    }

    /// The same client and identity, aimed at another base URL.
    pub(crate) fn rebased(&self, base: Url) -> Self {
        Self {
            client: self.client.clone(),
            base: with_trailing_slash(base),
        }
    }

    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    /// Sends the call and returns the response whatever its status.
    pub(crate) async fn send(
        &self,
        call: Call<'_>,
        token: Option<&SecretString>,
    ) -> Result<Reply, PlexError> {
        let endpoint = call.endpoint;
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| PlexError::Config {
                detail: "base URL cannot carry a path".into(),
            })?
            .pop_if_empty()
            .extend(call.segments);
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(call.query);
        }
        let accept = match call.accept {
            Format::Json => "application/json",
            Format::Xml => "application/xml",
        };
        let mut request = self.client.request(call.method, url).header(ACCEPT, accept);
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(token.expose_secret())
                .map_err(|_| PlexError::Unauthorized)?;
            value.set_sensitive(true);
            request = request.header(X_PLEX_TOKEN, value);
        }
        if let Some(body) = call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let transport = |source: reqwest::Error| PlexError::Transport {
            endpoint,
            source: source.without_url(),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        tracing::debug!(endpoint, status = status.as_u16(), "plex call");
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Sends the call and returns the body of a 2xx response, or the classified error.
    pub(crate) async fn expect_success(
        &self,
        call: Call<'_>,
        token: Option<&SecretString>,
    ) -> Result<Vec<u8>, PlexError> {
        let endpoint = call.endpoint;
        let reply = self.send(call, token).await?;
        if reply.status.is_success() {
            Ok(reply.body)
        } else {
            Err(reply.into_error(endpoint, token))
        }
    }
}

impl Reply {
    pub(crate) fn into_error(
        self,
        endpoint: &'static str,
        token: Option<&SecretString>,
    ) -> PlexError {
        PlexError::from_response(
            endpoint,
            self.status,
            &self.headers,
            &self.body,
            token.map(ExposeSecret::expose_secret),
        )
    }
}

/// Parses a JSON success body, scrubbing the token from any decode message.
pub(crate) fn decode_json<T: serde::de::DeserializeOwned>(
    endpoint: &'static str,
    body: &[u8],
    token: Option<&SecretString>,
) -> Result<T, PlexError> {
    serde_json::from_slice(body).map_err(|e| decode_error(endpoint, &e.to_string(), token))
}

/// Parses an XML success body, scrubbing the token from any decode message.
pub(crate) fn decode_xml<T: serde::de::DeserializeOwned>(
    endpoint: &'static str,
    body: &[u8],
    token: Option<&SecretString>,
) -> Result<T, PlexError> {
    let text =
        std::str::from_utf8(body).map_err(|e| decode_error(endpoint, &e.to_string(), token))?;
    quick_xml::de::from_str(text).map_err(|e| decode_error(endpoint, &e.to_string(), token))
}

pub(crate) fn decode_error(
    endpoint: &'static str,
    detail: &str,
    token: Option<&SecretString>,
) -> PlexError {
    PlexError::Decode {
        endpoint,
        detail: super::error::redact(detail, token.map(ExposeSecret::expose_secret)),
    }
}

fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}
