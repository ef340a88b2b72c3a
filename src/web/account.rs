//! My Account: the subscriber's page, signed in with a one-time link from Discord.
//!
//! Server-rendered (templates under `pages/`), no JavaScript. Every handler calls the same service
//! functions as the bot. Rules it keeps:
//! - Each request reads the subscriber from its session, never from the URL or a form, so one
//!   subscriber can never see or act on another's account.
//! - Every POST carries the session's CSRF token; a missing or wrong one changes nothing (403).
//! - A sign-in link that is forged, expired or used opens no session (401).
//! - Pages never show tokens, codes or links' secrets, and are sent `no-store`.

use axum::Router;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::domain::{Actor, PlexEmail, ShareState, VerificationCode};
use crate::services::UserFacing;
use crate::services::access::{self, Reinvited};
use crate::services::account::{self, AccountStatus};
use crate::services::account_change;
use crate::services::account_change::{ChangeApplied, SignInOutcome};
use crate::services::proofs::ProofError;
use crate::services::settings;
use crate::services::sign_in::{self, Session, SignInError};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "usher_session";

/// The My Account routes.
pub fn routes() -> Router<App> {
    Router::new()
        .route("/account", get(show_account))
        .route("/account/login", get(login))
        .route("/account/logout", post(logout))
        .route("/account/change", get(change_form).post(change_submit))
        .route("/account/change/code", get(code_form).post(code_submit))
        .route("/account/change/resend", post(code_resend))
        .route("/account/change/plex", get(plex_return).post(plex_start))
        .route("/account/change/plex/check", post(plex_check))
        .route("/account/reinvite", post(reinvite))
        .layer(axum::middleware::map_response(page_headers))
}

/// Headers every account page carries: never cached, never framed, no scripts at all.
async fn page_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

/// A page to send back: a template with its context and status.
struct Page {
    status: StatusCode,
    template: &'static str,
    context: serde_json::Value,
}

impl Page {
    fn new(template: &'static str, context: serde_json::Value) -> Self {
        Self {
            status: StatusCode::OK,
            template,
            context,
        }
    }

    fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    fn render(self, app: &App) -> Response {
        match app.templates.render(self.template, &self.context) {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(err) => internal(&anyhow::Error::new(err)),
        }
    }
}

/// A message page (sign-in problems, signed out, CSRF refusals).
fn message(app: &App, status: StatusCode, title: &str, text: &str) -> Response {
    Page::new(
        "pages/message.html.j2",
        serde_json::json!({ "title": title, "message": text }),
    )
    .status(status)
    .render(app)
}

/// An unexpected failure: an opaque page, the cause logged under a reference.
fn internal(err: &anyhow::Error) -> Response {
    let reference = crate::crypto::random_token(4);
    tracing::error!(reference = %reference, error = format!("{err:#}"), "My Account request failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(format!(
            "<!doctype html><title>Something went wrong</title><p>Something went wrong on our side (ref {reference}). Try again in a minute.</p>"
        )),
    )
        .into_response()
}

/// An unexpected failure behind a page: answered with the opaque 500 page, the cause logged.
struct ServerFault(anyhow::Error);

impl IntoResponse for ServerFault {
    fn into_response(self) -> Response {
        internal(&self.0)
    }
}

/// The page door's one reading of a service error: its sentence for the person (shown in the
/// page that fits), or a [`ServerFault`] for an unexpected failure.
fn user_text<E: UserFacing>(err: E) -> Result<String, ServerFault> {
    err.user_message()
        .ok_or_else(|| ServerFault(anyhow::Error::new(err)))
}

const NOT_SIGNED_IN: &str = "You are not signed in. Run /account in Discord and use the \"Open My Account\" button: it signs you in for a week.";

/// The session of this request, or the page to answer with instead.
async fn require_session(app: &App, jar: &CookieJar) -> Result<Session, Response> {
    let Some(cookie) = jar.get(SESSION_COOKIE) else {
        return Err(message(
            app,
            StatusCode::UNAUTHORIZED,
            "Sign in",
            NOT_SIGNED_IN,
        ));
    };
    match sign_in::session(app, cookie.value()).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(message(
            app,
            StatusCode::UNAUTHORIZED,
            "Sign in",
            NOT_SIGNED_IN,
        )),
        Err(err) => Err(internal(&err)),
    }
}

/// A request's live session; without one the request is answered with the sign-in page.
struct SignedIn(Session);

impl FromRequestParts<App> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Response> {
        require_session(app, &CookieJar::from_headers(&parts.headers))
            .await
            .map(SignedIn)
    }
}

/// The refusal page when a form's CSRF token is not the session's; `None` when it is.
fn csrf_refusal(app: &App, session: &Session, csrf: &str) -> Option<Response> {
    if constant_time_eq(csrf.as_bytes(), session.csrf_token.as_bytes()) {
        return None;
    }
    tracing::warn!(subscriber = %session.subscriber, "My Account form refused: CSRF token missing or wrong");
    Some(message(
        app,
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form did not come from your current My Account page, so nothing was changed. Reload My Account and try again.",
    ))
}

/// Compares two byte strings without an early exit (CSRF tokens).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Hand-written on purpose: four lines, and the only constant-time compare this door needs.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the account page template gets.
#[derive(Serialize)]
#[allow(clippy::struct_excessive_bools)] // independent facts the template shows side by side
struct AccountView<'a> {
    csrf: &'a str,
    name: &'a str,
    plan: Option<&'a str>,
    paid_until: Option<String>,
    permanent: bool,
    active: bool,
    plex_email: Option<&'a str>,
    server: Option<&'a str>,
    invite: Option<&'a str>,
    flagged: bool,
    code_pending: bool,
    waiting_for_room: bool,
    can_reinvite: bool,
    notice: Option<&'a str>,
    error: Option<&'a str>,
}

fn account_page(
    session: &Session,
    status: &AccountStatus,
    notice: Option<&str>,
    error: Option<&str>,
) -> Page {
    let view = AccountView {
        csrf: &session.csrf_token,
        name: &status.name,
        plan: status.plan.as_deref(),
        paid_until: status
            .paid_until
            .map(|t| t.format("%-d %B %Y, %H:%M UTC").to_string()),
        permanent: status.permanent,
        active: status.active,
        plex_email: status.plex_email.as_ref().map(PlexEmail::as_str),
        server: status.server.as_deref(),
        invite: status.invite.map(ShareState::as_str),
        flagged: status.flagged,
        code_pending: status.code_pending,
        waiting_for_room: status.waiting_for_room,
        can_reinvite: status.can_reinvite(),
        notice,
        error,
    };
    Page::new(
        "pages/account.html.j2",
        serde_json::to_value(view).unwrap_or_default(),
    )
}

/// The status of the session's subscriber, or the page to answer with instead.
async fn load_status(app: &App, session: &Session) -> Result<AccountStatus, Response> {
    match account::status_of(app, session.subscriber).await {
        Ok(Some(status)) => Ok(status),
        Ok(None) => Err(message(
            app,
            StatusCode::UNAUTHORIZED,
            "Sign in",
            "This account no longer exists here.",
        )),
        Err(err) => Err(internal(&err)),
    }
}

async fn show_account(State(app): State<App>, SignedIn(session): SignedIn) -> Response {
    match load_status(&app, &session).await {
        Ok(status) => account_page(&session, &status, None, None).render(&app),
        Err(page) => page,
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    #[serde(default)]
    token: String,
}

async fn login(State(app): State<App>, jar: CookieJar, Query(q): Query<LoginQuery>) -> Response {
    match sign_in::sign_in(&app, &q.token).await {
        Ok(session) => {
            let secure = app.settings.public_url().scheme() == "https";
            let max_age = (session.expires_at - app.clock.now())
                .to_std()
                .ok()
                .and_then(|d| time_duration(d.as_secs()));
            let mut cookie = Cookie::build((SESSION_COOKIE, session.cookie))
                .path("/account")
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(secure)
                .build();
            if let Some(max_age) = max_age {
                cookie.set_max_age(max_age);
            }
            (jar.add(cookie), Redirect::to("/account")).into_response()
        }
        Err(SignInError::Unexpected(err)) => internal(&err),
        Err(err) => {
            tracing::info!(reason = %err, "My Account sign-in refused");
            message(
                &app,
                StatusCode::UNAUTHORIZED,
                "This link does not work",
                "This sign-in link is not valid, has expired (links last 15 minutes) or was already used. Run /account in Discord for a fresh one.",
            )
        }
    }
}

fn time_duration(secs: u64) -> Option<time::Duration> {
    i64::try_from(secs).ok().map(time::Duration::seconds)
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(app): State<App>,
    SignedIn(session): SignedIn,
    jar: CookieJar,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Some(page) = csrf_refusal(&app, &session, &form.csrf) {
        return page;
    }
    if let Some(cookie) = jar.get(SESSION_COOKIE)
        && let Err(err) = sign_in::sign_out(&app, cookie.value()).await
    {
        return internal(&err);
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/account"));
    let page = message(
        &app,
        StatusCode::OK,
        "Signed out",
        "You are signed out. Run /account in Discord to sign in again.",
    );
    (jar, page).into_response()
}

/// The change-account form (the email for a code, and/or Plex sign-in, as the admins offer),
/// with an optional error.
async fn email_form(app: &App, session: &Session, error: Option<&str>, email: &str) -> Page {
    let offered = match settings::current(app).await {
        Ok(now) => now.proof_methods,
        Err(_) => crate::services::proofs::Methods {
            email_code: true,
            plex_sign_in: false,
        },
    };
    Page::new(
        "pages/change_email.html.j2",
        serde_json::json!({
            "csrf": session.csrf_token, "error": error, "email": email,
            "email_code": offered.email_code, "plex_sign_in": offered.plex_sign_in,
        }),
    )
}

/// The Plex sign-in page: the link to open, and "I've signed in".
fn plex_page(session: &Session, url: &url::Url, notice: Option<&str>, error: Option<&str>) -> Page {
    Page::new(
        "pages/change_plex.html.j2",
        serde_json::json!({
            "csrf": session.csrf_token, "url": url.as_str(), "notice": notice, "error": error,
            "minutes": crate::services::proofs::SIGN_IN_MINUTES,
        }),
    )
}

/// Starts a Plex sign-in for the change; plex.tv sends the browser back to
/// `/account/change/plex` once the person approved.
async fn plex_start(
    State(app): State<App>,
    SignedIn(session): SignedIn,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Some(page) = csrf_refusal(&app, &session, &form.csrf) {
        return page;
    }
    let actor = Actor::Subscriber(session.subscriber);
    let back = app.settings.public_link("account/change/plex");
    match account_change::start_sign_in(&app, &actor, session.subscriber, Some(&back)).await {
        Ok(started) => plex_page(&session, &started.url, None, None).render(&app),
        Err(err) => match user_text(err) {
            Ok(text) => email_form(&app, &session, Some(&text), "")
                .await
                .status(StatusCode::BAD_REQUEST)
                .render(&app),
            Err(fault) => fault.into_response(),
        },
    }
}

/// Where plex.tv sends the browser back after the sign-in (also the page's own refresh).
async fn plex_return(State(app): State<App>, SignedIn(session): SignedIn) -> Response {
    finish_plex(&app, &session).await
}

/// "I've signed in".
async fn plex_check(
    State(app): State<App>,
    SignedIn(session): SignedIn,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Some(page) = csrf_refusal(&app, &session, &form.csrf) {
        return page;
    }
    finish_plex(&app, &session).await
}

/// Applies the session's pending sign-in if Plex has the approval, or shows where it stands.
async fn finish_plex(app: &App, session: &Session) -> Response {
    let pending = match account_change::pending_sign_in(app, session.subscriber).await {
        Ok(pending) => pending,
        Err(err) => {
            return user_text(err).map_or_else(IntoResponse::into_response, |_| {
                Redirect::to("/account").into_response()
            });
        }
    };
    let Some((request, url)) = pending else {
        // Applied by the watching job already, refused (the DM and the page say why), or none.
        return Redirect::to("/account").into_response();
    };
    match account_change::finish_sign_in(app, request, Some(session.subscriber)).await {
        Ok(SignInOutcome::Applied(applied)) => done_page(app, session, &applied).await,
        Ok(SignInOutcome::Waiting) => {
            let text = ProofError::SignInPending.user_message();
            plex_page(session, &url, text.as_deref(), None).render(app)
        }
        Ok(SignInOutcome::Settled) => Redirect::to("/account").into_response(),
        Err(err) => match user_text(err) {
            Ok(text) => refuse_on_account(app, session, &text).await,
            Err(fault) => fault.into_response(),
        },
    }
}

/// The confirmation after a change.
async fn done_page(app: &App, session: &Session, applied: &ChangeApplied) -> Response {
    let status = match load_status(app, session).await {
        Ok(status) => status,
        Err(page) => return page,
    };
    Page::new(
        "pages/change_done.html.j2",
        serde_json::json!({
            "plex_email": status.plex_email,
            "server": applied.server.and(status.server),
            "plan": status.plan,
            "not_paid": !applied.paid_up,
        }),
    )
    .render(app)
}

/// The code form, with an optional notice or error.
fn code_page(session: &Session, notice: Option<&str>, error: Option<&str>) -> Page {
    Page::new(
        "pages/change_code.html.j2",
        serde_json::json!({ "csrf": session.csrf_token, "notice": notice, "error": error }),
    )
}

async fn change_form(State(app): State<App>, SignedIn(session): SignedIn) -> Response {
    match account_change::can_start(&app, session.subscriber).await {
        Ok(()) => email_form(&app, &session, None, "").await.render(&app),
        Err(err) => match user_text(err) {
            Ok(text) => refuse_on_account(&app, &session, &text).await,
            Err(fault) => fault.into_response(),
        },
    }
}

/// The account page with an error at the top (status 409: the request does not fit the state).
async fn refuse_on_account(app: &App, session: &Session, error: &str) -> Response {
    match load_status(app, session).await {
        Ok(status) => account_page(session, &status, None, Some(error))
            .status(StatusCode::CONFLICT)
            .render(app),
        Err(page) => page,
    }
}

#[derive(Deserialize)]
struct EmailForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

async fn change_submit(
    State(app): State<App>,
    SignedIn(session): SignedIn,
    axum::Form(form): axum::Form<EmailForm>,
) -> Response {
    if let Some(page) = csrf_refusal(&app, &session, &form.csrf) {
        return page;
    }
    let email = match PlexEmail::parse(&form.email) {
        Ok(email) => email,
        Err(err) => {
            let text = format!("That email does not look right: {err}.");
            return email_form(&app, &session, Some(&text), form.email.trim())
                .await
                .status(StatusCode::BAD_REQUEST)
                .render(&app);
        }
    };
    let actor = Actor::Subscriber(session.subscriber);
    match account_change::request_change(&app, &actor, session.subscriber, &email).await {
        Ok(_) => Redirect::to("/account/change/code").into_response(),
        Err(err) => match user_text(err) {
            Ok(text) => email_form(&app, &session, Some(&text), form.email.trim())
                .await
                .status(StatusCode::BAD_REQUEST)
                .render(&app),
            Err(fault) => fault.into_response(),
        },
    }
}

async fn code_form(State(app): State<App>, SignedIn(session): SignedIn) -> Response {
    match load_status(&app, &session).await {
        Ok(status) if status.code_pending => code_page(&session, None, None).render(&app),
        Ok(_) => {
            let text = ProofError::NoPendingRequest.user_message();
            refuse_on_account(&app, &session, &text.unwrap_or_default()).await
        }
        Err(page) => page,
    }
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

async fn code_submit(
    State(app): State<App>,
    SignedIn(session): SignedIn,
    axum::Form(form): axum::Form<CodeForm>,
) -> Response {
    if let Some(page) = csrf_refusal(&app, &session, &form.csrf) {
        return page;
    }
    let Ok(code) = VerificationCode::parse(&form.code) else {
        return code_page(
            &session,
            None,
            Some("The code is the 6 digits from the email we sent to your new address."),
        )
        .status(StatusCode::BAD_REQUEST)
        .render(&app);
    };
    let actor = Actor::Subscriber(session.subscriber);
    match account_change::verify_change(&app, &actor, session.subscriber, &code).await {
        Ok(applied) => done_page(&app, &session, &applied).await,
        Err(err @ (ProofError::WrongCode(_) | ProofError::Expired)) => {
            code_page(&session, None, err.user_message().as_deref())
                .status(StatusCode::BAD_REQUEST)
                .render(&app)
        }
        Err(err) => match user_text(err) {
            Ok(text) => refuse_on_account(&app, &session, &text).await,
            Err(fault) => fault.into_response(),
        },
    }
}

async fn code_resend(
    State(app): State<App>,
    SignedIn(session): SignedIn,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Some(page) = csrf_refusal(&app, &session, &form.csrf) {
        return page;
    }
    let actor = Actor::Subscriber(session.subscriber);
    match account_change::resend_code(&app, &actor, session.subscriber).await {
        Ok(_) => code_page(
            &session,
            Some("A new code is on its way; the old one no longer works."),
            None,
        )
        .render(&app),
        Err(err @ ProofError::ResendTooSoon(_)) => {
            code_page(&session, None, err.user_message().as_deref())
                .status(StatusCode::TOO_MANY_REQUESTS)
                .render(&app)
        }
        Err(err) => match user_text(err) {
            Ok(text) => refuse_on_account(&app, &session, &text).await,
            Err(fault) => fault.into_response(),
        },
    }
}

async fn reinvite(
    State(app): State<App>,
    SignedIn(session): SignedIn,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Some(page) = csrf_refusal(&app, &session, &form.csrf) {
        return page;
    }
    let actor = Actor::Subscriber(session.subscriber);
    let (notice, error) = match access::reinvite(&app, &actor, session.subscriber).await {
        Ok(Reinvited::Invited(server)) => (
            Some(format!(
                "An invite to {server} is on its way. Accept it at https://app.plex.tv (Settings → Manage Library Access) or in the Plex app."
            )),
            None,
        ),
        Ok(Reinvited::Waiting(plan)) => (
            None,
            Some(format!(
                "No server has room for your plan {plan} right now; the admins were told, and you will be invited as soon as one has room."
            )),
        ),
        Err(err) => {
            return match user_text(err) {
                Ok(text) => refuse_on_account(&app, &session, &text).await,
                Err(fault) => fault.into_response(),
            };
        }
    };
    match load_status(&app, &session).await {
        Ok(status) => {
            account_page(&session, &status, notice.as_deref(), error.as_deref()).render(&app)
        }
        Err(page) => page,
    }
}
